/// Which way a metric should move: page-table bytes and spawn times should shrink, a count of
/// shared tables should grow. A regression is a significant move the wrong way.
public enum Polarity: String, Codable, Sendable {
    case lowerIsBetter, higherIsBetter
}

/// What a compared number is: its name (the row's label and the key for per-metric thresholds),
/// how to print it, and which direction is bad.
public struct MetricInfo: Sendable, Equatable, Hashable, Codable {
    public enum Unit: String, Codable, Sendable {
        case bytes, seconds, nanoseconds, percent, count
    }

    public var name: String
    public var unit: Unit
    public var polarity: Polarity

    public init(name: String, unit: Unit, polarity: Polarity) {
        self.name = name
        self.unit = unit
        self.polarity = polarity
    }
}

/// Every run's value of one metric at one scenario point, as one side of a comparison read it
/// from its reports.
public struct Sampled: Sendable, Equatable {
    /// Names the scenario, e.g. "memfd 64M × 1000, share pt": rows pair on (point, metric name).
    public var point: String
    public var metric: MetricInfo
    public var values: [Double]

    public init(point: String, metric: MetricInfo, values: [Double]) {
        self.point = point
        self.metric = metric
        self.values = values
    }
}

/// How far (in percent of the base) a metric may get worse before the comparison fails. A
/// metric with no threshold is shown but never fails: a reader must opt in to a gate.
public struct Thresholds: Sendable, Equatable {
    /// `--fail-above`: applies to every metric without its own entry.
    public var `default`: Double?
    /// By metric name; overrides the default, in either direction.
    public var perMetric: [String: Double]

    public init(default fallback: Double? = nil, perMetric: [String: Double] = [:]) {
        self.default = fallback
        self.perMetric = perMetric
    }

    public func threshold(for metric: String) -> Double? {
        perMetric[metric] ?? self.default
    }
}

/// `ptshare compare A B`: the same metrics at the same points from two sets of runs (a stock and
/// a patched kernel, say), each row saying how much the mean moved, whether that is more than
/// run-to-run noise, and whether it fails a threshold. Printed the way lkp-tests/0-day
/// "compare" prints, since that is what kernel developers are used to reading:
///
///            base ±%stddev     %change         new ±%stddev  metric
///
/// Pure: built from the samples, rendered to text; the CLI does the reading and the exit.
public struct Comparison: Sendable {
    /// Welch's t-test is significant below this p.
    public static let alpha = 0.05
    /// Both sides need this many samples for Welch's t-test; fewer, and the t-test's normality
    /// assumption rests on too little, so disjoint min–max bands decide instead.
    public static let welchMinimumSamples = 3

    /// How a row decided whether its change is real.
    public enum Method: String, Sendable, Codable {
        /// Welch's t-test, p < `alpha`: both sides had at least `welchMinimumSamples` runs.
        case welch
        /// The min–max ranges of the two sides do not overlap.
        case bands
    }

    /// What a row amounts to, worst first.
    public enum Mark: String, Sendable, Codable {
        /// Significant, the wrong way for the metric, beyond its threshold: fails the compare.
        case regression
        /// Significant, the right way, beyond its threshold.
        case improvement
        /// Significant, but within the threshold or the metric has none.
        case significant
        /// Within run-to-run noise, whatever its size.
        case notSignificant
    }

    /// One metric at one point, measured on both sides.
    public struct Row: Sendable, Equatable {
        public var point: String
        /// The base side's, when the two sides disagree on unit or polarity.
        public var metric: MetricInfo
        public var base: Statistics.Summary
        public var new: Statistics.Summary
        /// (new − base) / |base| × 100 of the means; ±infinity when the base is 0 and the new is
        /// not, never NaN.
        public var percentChange: Double
        public var method: Method
        /// The t-test, for rows decided by `.welch`.
        public var welch: Statistics.WelchResult?
        public var significant: Bool
        /// In percent; nil when no threshold applies to the metric.
        public var threshold: Double?
        public var mark: Mark
    }

    /// What one side held for a (point, metric) that could not be compared.
    public enum Presence: Sendable, Equatable {
        /// The side has no such row.
        case absent
        /// The row is there with no values.
        case empty
        case sampled(Statistics.Summary)
    }

    /// A (point, metric) present on one side only, or with no values on one side: listed
    /// rather than dropped, since a metric that vanished is news of its own.
    public struct Unpaired: Sendable, Equatable {
        public var point: String
        public var metric: MetricInfo
        public var base: Presence
        public var new: Presence
    }

    public var rows: [Row]
    public var unpaired: [Unpaired]
    public var thresholds: Thresholds

    public init(rows: [Row], unpaired: [Unpaired], thresholds: Thresholds) {
        self.rows = rows
        self.unpaired = unpaired
        self.thresholds = thresholds
    }

    public var regressions: [Row] { rows.filter { $0.mark == .regression } }
    public var improvements: [Row] { rows.filter { $0.mark == .improvement } }
    /// What `ptshare compare` exits with: 1 when any row regressed, else 0.
    public var exitCode: Int32 { regressions.isEmpty ? 0 : 1 }

    /// The methods the rows used, in `Method` order.
    public var methods: [Method] {
        [Method.welch, .bands].filter { m in rows.contains { $0.method == m } }
    }

    // MARK: Building

    private struct Key: Hashable {
        var point: String
        var metric: String
    }

    /// Pairs rows by (point, metric name), in the base's order with rows only in the new side
    /// after. A key given twice on one side has its values joined (runs split over reports).
    public static func compare(base: [Sampled], new: [Sampled], thresholds: Thresholds) -> Comparison {
        let (baseOrder, baseByKey) = collect(base)
        let (newOrder, newByKey) = collect(new)
        let order = baseOrder + newOrder.filter { baseByKey[$0] == nil }
        var rows: [Row] = []
        var unpaired: [Unpaired] = []
        for key in order {
            let b = baseByKey[key]
            let n = newByKey[key]
            guard let metric = (b ?? n)?.metric else { continue }
            let bs = b.flatMap { Statistics.summary($0.values) }
            let ns = n.flatMap { Statistics.summary($0.values) }
            if let bs, let ns {
                rows.append(row(point: key.point, metric: metric, base: bs, new: ns, thresholds: thresholds))
            } else {
                unpaired.append(
                    Unpaired(
                        point: key.point, metric: metric, base: presence(b, bs), new: presence(n, ns)))
            }
        }
        return Comparison(rows: rows, unpaired: unpaired, thresholds: thresholds)
    }

    private static func collect(_ xs: [Sampled]) -> ([Key], [Key: Sampled]) {
        var order: [Key] = []
        var byKey: [Key: Sampled] = [:]
        for x in xs {
            let key = Key(point: x.point, metric: x.metric.name)
            if byKey[key] == nil {
                order.append(key)
                byKey[key] = x
            } else {
                byKey[key]?.values += x.values
            }
        }
        return (order, byKey)
    }

    private static func presence(_ s: Sampled?, _ summary: Statistics.Summary?) -> Presence {
        guard s != nil else { return .absent }
        guard let summary else { return .empty }
        return .sampled(summary)
    }

    /// One row's change, significance and mark.
    public static func row(
        point: String, metric: MetricInfo, base: Statistics.Summary, new: Statistics.Summary, thresholds: Thresholds
    ) -> Row {
        let change = percentChange(base: base.mean, new: new.mean)
        let useWelch = base.n >= welchMinimumSamples && new.n >= welchMinimumSamples
        let welch = useWelch ? Statistics.welch(base, new) : nil
        let significant: Bool
        if let welch {
            significant = welch.p < alpha
        } else {
            significant = Statistics.bandsDisjoint(base, new)
        }
        let threshold = thresholds.threshold(for: metric.name)
        return Row(
            point: point, metric: metric, base: base, new: new, percentChange: change,
            method: useWelch ? .welch : .bands, welch: welch, significant: significant, threshold: threshold,
            mark: mark(change: change, significant: significant, polarity: metric.polarity, threshold: threshold))
    }

    /// (new − base) / |base| × 100. A base of 0 has no percentages: 0 → 0 is no change, and
    /// anything else is ±infinity, beyond every threshold, rather than NaN.
    public static func percentChange(base: Double, new: Double) -> Double {
        if base == 0 {
            if new == 0 { return 0 }
            return new > 0 ? .infinity : -.infinity
        }
        return (new - base) / base.magnitude * 100
    }

    /// Regression or improvement needs all three: significance, a threshold, and a change
    /// beyond it; which of the two follows from the direction and the metric's polarity.
    public static func mark(change: Double, significant: Bool, polarity: Polarity, threshold: Double?) -> Mark {
        guard significant else { return .notSignificant }
        guard let threshold, change.magnitude > threshold else { return .significant }
        let worse = polarity == .lowerIsBetter ? change > 0 : change < 0
        return worse ? .regression : .improvement
    }
}

// MARK: Rendering

extension Comparison {
    /// The sentence on how significance was decided, naming only the methods the rows used.
    public var methodLine: String {
        let welch = "Welch's t-test p < \(Self.formatThreshold(Self.alpha))"
        let n = Self.welchMinimumSamples
        switch methods {
        case [.welch]:
            return "significance: \(welch) (n ≥ \(n) on both sides)"
        case [.bands]:
            return "significance: disjoint min–max bands (fewer than \(n) runs on a side)"
        default:
            return "significance: \(welch) where n ≥ \(n) on both sides, else disjoint min–max bands"
        }
    }

    /// The sentence on what fails: the default and every per-metric threshold.
    public var thresholdLine: String {
        let per = thresholds.perMetric.keys.sorted().compactMap { name in
            thresholds.perMetric[name].map { "\(name) \(Self.formatThreshold($0))%" }
        }
        switch (thresholds.default, per.isEmpty) {
        case (nil, true):
            return "thresholds: none (no metric can fail)"
        case (nil, false):
            return "thresholds: " + per.joined(separator: ", ") + " (no other metric can fail)"
        case (let d?, true):
            return "thresholds: \(Self.formatThreshold(d))% for every metric"
        case (let d?, false):
            return "thresholds: \(Self.formatThreshold(d))% (--fail-above), " + per.joined(separator: ", ")
        }
    }

    /// lkp-style columns under one header, each point a heading over its rows, then the
    /// unpaired metrics and the regressions.
    public func renderText() -> String {
        let header = ["base", "±%stddev", "%change", "new", "±%stddev"]
        let cells = rows.map { r in
            [
                Self.format(r.base.mean, r.metric.unit), Self.spread(r.base), Self.formatChange(r.percentChange),
                Self.format(r.new.mean, r.metric.unit), Self.spread(r.new),
            ]
        }
        // Widths of `base`, `%change` and `new` at least as in lkp's header; the ± columns
        // are left-aligned so that the signs line up under the header's.
        var widths = [11, 8, 11, 11, 8]
        for c in cells {
            for (i, s) in c.enumerated() { widths[i] = Swift.max(widths[i], s.count) }
        }
        let metricWidth = rows.map(\.metric.name.count).max() ?? 0
        func line(_ c: [String], metric: String, tail: String) -> String {
            let s =
                pad(c[0], widths[0]) + " " + pad(c[1], widths[1], left: true) + " " + pad(c[2], widths[2]) + " "
                + pad(c[3], widths[3]) + " " + pad(c[4], widths[4], left: true) + "  "
                + pad(metric, metricWidth, left: true) + "  " + tail
            return trimmingTrailingSpaces(s)
        }
        var out = [methodLine + " (~: not significant)", thresholdLine, ""]
        out.append(line(header, metric: "metric", tail: ""))
        for (point, indices) in groups() {
            out.append(point)
            for i in indices {
                let r = rows[i]
                out.append(line(cells[i], metric: r.metric.name, tail: Self.markText(r) + "  " + Self.evidence(r)))
            }
        }
        if !unpaired.isEmpty {
            out.append("")
            out.append("not compared (\(unpaired.count)):")
            for u in unpaired { out.append("  " + Self.describe(u)) }
        }
        out.append("")
        out.append(contentsOf: regressionLines(bullet: "  "))
        return out.joined(separator: "\n") + "\n"
    }

    /// One table per point, for a pull request or a benchmark write-up.
    public func renderMarkdown() -> String {
        var out = [methodLine + " (~: not significant).", "", thresholdLine + ".", ""]
        for (point, indices) in groups() {
            out.append("### " + Self.escape(point))
            out.append("")
            out.append("| metric | base | ±%stddev | %change | new | ±%stddev | mark |")
            out.append("|---|---:|---:|---:|---:|---:|---|")
            for i in indices {
                let r = rows[i]
                let mark = r.mark == .regression ? "**\(Self.markText(r))**" : Self.markText(r)
                let cells = [
                    Self.escape(r.metric.name), Self.format(r.base.mean, r.metric.unit), Self.spread(r.base, width: 0),
                    Self.formatChange(r.percentChange), Self.format(r.new.mean, r.metric.unit),
                    Self.spread(r.new, width: 0), mark + " (" + Self.evidence(r) + ")",
                ]
                out.append("| " + cells.joined(separator: " | ") + " |")
            }
            out.append("")
        }
        if !unpaired.isEmpty {
            out.append("Not compared (\(unpaired.count)):")
            out.append("")
            for u in unpaired { out.append("- " + Self.escape(Self.describe(u))) }
            out.append("")
        }
        out.append(contentsOf: regressionLines(bullet: "- ").map { $0.hasPrefix("- ") ? Self.escape($0) : $0 })
        return out.joined(separator: "\n") + "\n"
    }

    /// The footer: every regression with its change, threshold and evidence.
    func regressionLines(bullet: String) -> [String] {
        let r = regressions
        guard !r.isEmpty else { return ["regressions: none"] }
        return ["regressions: \(r.count)"]
            + r.map { row in
                let threshold = row.threshold.map { Self.formatThreshold($0) + "%" } ?? "none"
                return bullet + "\(row.point): \(row.metric.name) \(Self.formatChange(row.percentChange)) "
                    + "(threshold \(threshold), \(Self.evidence(row)))"
            }
    }

    /// Row indices grouped by point, points in order of first appearance.
    private func groups() -> [(String, [Int])] {
        var order: [String] = []
        var byPoint: [String: [Int]] = [:]
        for (i, r) in rows.enumerated() {
            if byPoint[r.point] == nil { order.append(r.point) }
            byPoint[r.point, default: []].append(i)
        }
        return order.map { ($0, byPoint[$0] ?? []) }
    }

    static func markText(_ r: Row) -> String {
        switch r.mark {
        case .regression: return "REGRESSION"
        case .improvement: return "improvement"
        case .significant: return "significant"
        case .notSignificant: return "~"
        }
    }

    /// Why the row is (not) significant: its p-value, or whether the bands overlap.
    static func evidence(_ r: Row) -> String {
        if let w = r.welch {
            return w.p < 0.001 ? "p<0.001" : "p=" + fixed(w.p, decimals: 3)
        }
        return r.significant ? "bands disjoint" : "bands overlap"
    }

    static func describe(_ u: Unpaired) -> String {
        func side(_ name: String, _ p: Presence) -> String {
            switch p {
            case .absent: return "\(name) missing"
            case .empty: return "\(name) no values"
            case .sampled(let s): return "\(name) \(format(s.mean, u.metric.unit)) (n=\(s.n))"
            }
        }
        return "\(u.point): \(u.metric.name): " + side("base", u.base) + ", " + side("new", u.new)
    }

    // MARK: Number formatting

    /// A mean in the metric's unit: bytes in binary units, times with 3 significant digits
    /// (nanoseconds moved up to µs, ms or s), percentages with one decimal.
    static func format(_ v: Double, _ unit: MetricInfo.Unit) -> String {
        guard v.isFinite else { return "\(v)" }
        switch unit {
        case .bytes:
            guard v.magnitude < 9e18 else { return "\(v) B" }
            return ByteSize.human(Int64(v.rounded()))
        case .seconds:
            return significantDigits(v, 3) + " s"
        case .nanoseconds:
            for (unit, scale) in [("s", 1e9), ("ms", 1e6), ("µs", 1e3)] where v.magnitude >= scale {
                return significantDigits(v / scale, 3) + " " + unit
            }
            return significantDigits(v, 3) + " ns"
        case .percent:
            return fixed(v, decimals: 1) + "%"
        case .count:
            if v == v.rounded(), v.magnitude < 9e18 { return "\(Int64(v))" }
            return significantDigits(v, 3)
        }
    }

    /// "+12.3%", "-4.0%", "0.0%"; "+inf%" / "-inf%" from a zero base.
    static func formatChange(_ change: Double) -> String {
        if change.isInfinite { return change > 0 ? "+inf%" : "-inf%" }
        guard !change.isNaN else { return "nan%" }
        let s = fixed(change, decimals: 1)
        return (change > 0 && s != "0.0" ? "+" : "") + s + "%"
    }

    /// lkp's "±  2%": relative stddev in whole percent, the number right-aligned in `width`
    /// (0: unpadded). Empty for a single run, which shows no spread; "±inf%" for a spread
    /// around a zero mean.
    static func spread(_ s: Statistics.Summary, width: Int = 4) -> String {
        guard s.n >= 2 else { return "" }
        guard let rel = s.relativeStddev else { return s.stddev == 0 ? "±" + pad("0%", width) : "±inf%" }
        let pct = rel * 100
        let text = pct.isFinite && pct < 1e15 ? "\(Int64(pct.rounded()))%" : "inf%"
        return "±" + pad(text, width)
    }

    /// A threshold or alpha in percent without trailing zeros: 5, 2.5, 0.25.
    static func formatThreshold(_ v: Double) -> String {
        var s = fixed(v, decimals: 4)
        guard s.contains(".") else { return s }
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    /// `v` rounded to `digits` significant digits, never fewer integer digits than it has
    /// (12345 stays 12345). The exponent comes from the integer part's digits or by scaling up,
    /// not from log10; a rounding that carries into a new leading digit (9.996 → "10.00") is
    /// caught by counting the printed digits and drops one decimal ("10.0").
    static func significantDigits(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite, v != 0 else { return v == 0 ? "0" : "\(v)" }
        let m = v.magnitude
        guard m < 1e15 else { return "\(v)" }
        var exponent = 0
        if m >= 1 {
            exponent = String(Int64(m)).count - 1
        } else {
            var scaled = m
            while scaled < 1 {
                scaled *= 10
                exponent -= 1
            }
        }
        let decimals = Swift.max(0, digits - 1 - exponent)
        let s = fixed(v, decimals: decimals)
        if count(significantIn: s) > digits, decimals > 0 {
            let fewer = fixed(v, decimals: decimals - 1)
            if count(significantIn: fewer) >= digits { return fewer }
        }
        return s
    }

    /// Digits from the first non-zero one on: "0.00123" has 3, "10.0" has 3, "12345" has 5.
    private static func count(significantIn s: String) -> Int {
        let digits = s.filter(\.isNumber)
        return digits.drop { $0 == "0" }.count
    }

    static func escape(_ s: String) -> String {
        s.replacingAll("|", with: "\\|")
    }
}

/// `formatFixed` where it is safe: it scales through Int64, which traps past 9.2e18, so a
/// 1e20 % change from a near-zero base or a 1e-300 s mean prints as Swift spells a Double.
private func fixed(_ v: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    guard v.isFinite, decimals <= 15, (v.magnitude * scale).rounded() < 1e15 else { return "\(v)" }
    return formatFixed(v, decimals: decimals)
}

private func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: Swift.max(0, width - s.count))
    return left ? s + fill : fill + s
}

private func trimmingTrailingSpaces(_ s: String) -> String {
    var t = Substring(s)
    while t.last == " " { t.removeLast() }
    return String(t)
}

extension String {
    /// Foundation-free replacement of a single character.
    fileprivate func replacingAll(_ c: Character, with r: String) -> String {
        var out = ""
        for ch in self {
            if ch == c { out += r } else { out.append(ch) }
        }
        return out
    }
}
