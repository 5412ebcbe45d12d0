import Glibc

// Line charts as inline SVG for the HTML report. The report is a single file that must open offline and survive a
// black-and-white printout, so the renderer fetches nothing, runs no script, and tells series apart by marker and
// dash pattern before colour. Text widths are estimated (no font metrics without a browser); the layout leaves
// slack for that.

/// One measured value. `low` and `high` are the spread over repeats (min and max); when present they draw as an
/// error bar, so a reader sees how far a single run can be trusted.
public struct ChartPoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public var low: Double?
    public var high: Double?

    public init(x: Double, y: Double, low: Double? = nil, high: Double? = nil) {
        self.x = x
        self.y = y
        self.low = low
        self.high = high
    }
}

/// How one series looks. Marker and dash alone must identify a series on a grey printout; colour only helps on
/// screen.
public struct SeriesStyle: Sendable, Equatable {
    public enum Marker: String, Sendable, CaseIterable {
        case circle, square, triangle, diamond, cross, plus
    }

    public enum Dash: String, Sendable, CaseIterable {
        case solid, dashed, dotted, dashDot

        /// `stroke-dasharray` in user units for a 1–2 px line; nil for a solid line.
        var dashArray: String? {
            switch self {
            case .solid: return nil
            case .dashed: return "7 4"
            case .dotted: return "1.5 3"
            case .dashDot: return "8 3 1.5 3"
            }
        }
    }

    public var marker: Marker
    public var dash: Dash
    /// A CSS colour such as `#0072B2`. Written into the SVG escaped, never interpreted.
    public var color: String

    public init(marker: Marker, dash: Dash, color: String) {
        self.marker = marker
        self.dash = dash
        self.color = color
    }

    /// The Okabe–Ito colour-blind-safe palette without its yellow, which vanishes on white paper.
    static let colors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

    /// The style of the `i`th series. Markers cycle through 6 and dashes through 4, so the first 12 series differ in
    /// (marker, dash) even without colour, and the first 6 in marker alone.
    public static func palette(_ i: Int) -> SeriesStyle {
        func pick<T>(_ all: [T]) -> T { all[((i % all.count) + all.count) % all.count] }
        return SeriesStyle(marker: pick(Marker.allCases), dash: pick(Dash.allCases), color: pick(colors))
    }
}

/// One data set drawn as markers joined by a line, in the order its points are given.
public struct Series: Sendable, Equatable {
    public var name: String
    public var points: [ChartPoint]
    public var style: SeriesStyle

    public init(name: String, points: [ChartPoint], style: SeriesStyle) {
        self.name = name
        self.points = points
        self.style = style
    }
}

/// A model or limit drawn for comparison ("model, unshared", "physical limit: every PTE table once"): a thin grey
/// line without markers, so it never reads as a measurement, named in the legend.
public struct ReferenceLine: Sendable, Equatable {
    public enum Shape: Sendable, Equatable {
        /// Straight segments through the points (`low`/`high` are ignored).
        case polyline([ChartPoint])
        /// Across the whole plot at this y.
        case horizontal(y: Double)
    }

    public var name: String
    public var shape: Shape
    public var dash: SeriesStyle.Dash

    public init(name: String, points: [ChartPoint], dash: SeriesStyle.Dash = .dashed) {
        self.name = name
        self.shape = .polyline(points)
        self.dash = dash
    }

    public init(name: String, horizontalAt y: Double, dash: SeriesStyle.Dash = .dotted) {
        self.name = name
        self.shape = .horizontal(y: y)
        self.dash = dash
    }
}

/// A line chart with a title, two labelled axes, series, reference lines and a legend.
///
/// Axis ranges cover every series point (error bars included) and every reference line, so a model never runs off
/// the plot. Linear axes use ticks at 1, 2 or 5 × 10^k; a linear y axis always includes 0, so heights compare as
/// ratios, and a percent axis always spans at least 0–100 %. Log axes are padded out to whole tick steps:
/// decades for counts, percentages and times; for bytes, powers of two labelled exactly in binary units (1 KiB,
/// 32 KiB, 1 MiB, 32 MiB, 1 GiB: a step of 2^1, 2^2, 2^5 or 2^10, the smallest that fits), never a rounded
/// "9.5 MiB" for 10^7 B.
public struct Chart: Sendable {
    public enum Scale: Sendable, Equatable {
        case linear
        case log10
    }

    /// What the axis values are, which decides the tick labels.
    public enum AxisUnit: Sendable, Equatable {
        /// Plain numbers (workers): 10, 100, 1k, 10k, 1M.
        case count
        /// Bytes, labelled in binary units: 0 B, 512 KiB, 1 MiB.
        case bytes
        /// 0–100: 20 %.
        case percent
        /// Values in nanoseconds, labelled ns, µs, ms or s.
        case nanoseconds
        /// Values in seconds, labelled ns, µs, ms or s.
        case seconds
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xScale: Scale
    public var yScale: Scale
    public var xUnit: AxisUnit
    public var yUnit: AxisUnit
    public var series: [Series]
    public var lines: [ReferenceLine]

    public init(
        title: String, xLabel: String, yLabel: String, xScale: Scale = .linear, yScale: Scale = .linear,
        xUnit: AxisUnit = .count, yUnit: AxisUnit = .count, series: [Series] = [], lines: [ReferenceLine] = []
    ) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xScale = xScale
        self.yScale = yScale
        self.xUnit = xUnit
        self.yUnit = yUnit
        self.series = series
        self.lines = lines
    }

    /// The chart as an inline `<svg>` element for an HTML page, `width` × `height` user units; the height grows
    /// when a long legend would otherwise squeeze the plot below 120 units. Series are `<g class="series"
    /// data-name="…">`, the axes `<g class="axis x">` and `<g class="axis y">`, reference lines
    /// `<g class="reference" data-name="…">`, the legend `<g class="legend">`. A chart without a single finite
    /// series point renders a box saying "no data".
    public func svg(width: Int = 640, height: Int = 400) -> String {
        ChartRenderer(chart: self, width: Double(max(width, 240)), height: Double(max(height, 180))).render()
    }
}

// MARK: - Axes

/// One axis once its range is settled: where a value falls along it and what its ticks say.
struct ChartAxis {
    enum Mapping {
        case linear(lo: Double, hi: Double)
        /// `lo` and `hi` are exponents of `base`.
        case log(base: Double, lo: Double, hi: Double)
    }

    var mapping: Mapping
    var ticks: [(value: Double, label: String)]
    /// Values of the light in-between gridlines (log axes only).
    var minor: [Double]

    /// Where `v` falls: 0 at the low end, 1 at the high end. Nil when the axis cannot show it (≤ 0 on a log axis).
    func fraction(_ v: Double) -> Double? {
        switch mapping {
        case .linear(let lo, let hi):
            return (v - lo) / (hi - lo)
        case .log(let base, let lo, let hi):
            guard v > 0 else { return nil }
            return (ChartAxis.exponent(v, base: base) - lo) / (hi - lo)
        }
    }

    var isLog: Bool {
        if case .log = mapping { return true }
        return false
    }

    static func exponent(_ v: Double, base: Double) -> Double { base == 2 ? Glibc.log2(v) : Glibc.log10(v) }

    static func make(scale: Chart.Scale, unit: Chart.AxisUnit, values: [Double], includeZero: Bool, maxTicks: Int)
        -> ChartAxis
    {
        switch scale {
        case .linear: return linear(unit: unit, values: values, includeZero: includeZero, maxTicks: maxTicks)
        case .log10: return log(unit: unit, values: values, maxTicks: maxTicks)
        }
    }

    /// Ticks at every s-th power of the base, s the smallest step that keeps to `maxTicks`; the range is padded
    /// out to whole steps so that both ends carry a label.
    static func log(unit: Chart.AxisUnit, values: [Double], maxTicks: Int) -> ChartAxis {
        let binary = unit == .bytes
        let base = binary ? 2.0 : 10.0
        // Steps for bytes divide 10 (or are multiples of it), so 1 KiB, 1 MiB and 1 GiB are always ticks.
        let steps = binary ? [1, 2, 5, 10, 20, 30, 50, 100, 200, 500] : [1, 2, 3, 5, 10, 20, 50, 100]
        let exps = values.filter { $0 > 0 }.map { exponent($0, base: base) }
        // Nothing positive to show (every value 0): one step around 1 KiB or 1..10, so the axis still reads.
        let minE = exps.min() ?? (binary ? 10 : 0)
        let maxE = exps.max() ?? (binary ? 10 : 1)
        var chosen = (step: 1.0, lo: minE.rounded(.down), hi: minE.rounded(.down) + 1)
        for s in steps {
            let step = Double(s)
            var lo = ((minE + 1e-9) / step).rounded(.down) * step
            var hi = ((maxE - 1e-9) / step).rounded(.up) * step
            if hi <= lo {
                lo -= step
                hi += step
            }
            chosen = (step, lo, hi)
            if Int(((hi - lo) / step).rounded()) + 1 <= maxTicks { break }
        }
        let count = Int(((chosen.hi - chosen.lo) / chosen.step).rounded())
        var ticks: [(Double, String)] = []
        for k in 0...count {
            let v = Glibc.pow(base, chosen.lo + Double(k) * chosen.step)
            ticks.append((v, ChartLabels.exact(v, unit: unit)))
        }
        // Light lines between ticks: 2× and 5× within each decade, or each power of two for bytes.
        var minor: [Double] = []
        if binary {
            let fine = chosen.step <= 10 ? 1.0 : 10.0
            if chosen.step > 1 && (chosen.hi - chosen.lo) / fine <= 60 {
                var e = chosen.lo + fine
                while e < chosen.hi {
                    if (e - chosen.lo).truncatingRemainder(dividingBy: chosen.step) != 0 {
                        minor.append(Glibc.pow(2, e))
                    }
                    e += fine
                }
            }
        } else if chosen.step == 1 {
            var e = chosen.lo
            while e < chosen.hi {
                minor += [2 * Glibc.pow(10, e), 5 * Glibc.pow(10, e)]
                e += 1
            }
        } else if chosen.hi - chosen.lo <= 60 {
            var e = chosen.lo + 1
            while e < chosen.hi {
                if (e - chosen.lo).truncatingRemainder(dividingBy: chosen.step) != 0 { minor.append(Glibc.pow(10, e)) }
                e += 1
            }
        }
        return ChartAxis(
            mapping: .log(base: base, lo: chosen.lo, hi: chosen.hi), ticks: ticks.map { (value: $0.0, label: $0.1) },
            minor: minor)
    }

    /// "Nice" ticks at 1, 2 or 5 × 10^k (for bytes: × a power of 1024, so labels stay whole KiB or MiB).
    static func linear(unit: Chart.AxisUnit, values: [Double], includeZero: Bool, maxTicks: Int) -> ChartAxis {
        var lo = values.min() ?? 0
        var hi = values.max() ?? 1
        if includeZero || unit == .percent {
            lo = Swift.min(lo, 0)
            hi = Swift.max(hi, 0)
        }
        if unit == .percent { hi = Swift.max(hi, 100) }
        if hi <= lo {
            if lo == 0 {
                hi = 1
            } else {
                let pad = abs(lo) * 0.1
                lo -= pad
                hi += pad
            }
        }
        let divisor = unit == .bytes ? ChartLabels.binaryDivisor(Swift.max(abs(lo), abs(hi))) : 1
        var step = niceStep((hi - lo) / divisor / Double(Swift.max(1, maxTicks - 1))) * divisor
        if !step.isFinite || step <= 0 {
            lo = 0
            hi = 1
            step = 0.2
        }
        let first = (lo / step + 1e-9).rounded(.down)
        let last = Swift.max(first + 1, (hi / step - 1e-9).rounded(.up))
        let count = Swift.min(Int(last - first), 200)
        // Bytes keep the unit the step was made in: 200 KiB steps up to 1.2 MiB would otherwise read "0.2 MiB".
        // Counts switch to k only from 10k on: 500, 1000, 1500 read better than 0.5k, 1.0k, 1.5k.
        let shown: (divisor: Double, suffix: String) =
            unit == .bytes
            ? (divisor, ChartLabels.binaryUnit(divisor))
            : ChartLabels.display(
                Swift.max(abs(first * step), abs(last * step)) / (unit == .count ? 10 : 1), unit: unit)
        var decimals = Int((-Glibc.log10(step / shown.divisor) - 1e-9).rounded(.up))
        decimals = Swift.min(Swift.max(decimals, 0), 9)
        var ticks: [(value: Double, label: String)] = []
        for k in 0...count {
            let v = (first + Double(k)) * step
            ticks.append((v, v == 0 ? "0" : ChartLabels.fixed(v / shown.divisor, decimals) + shown.suffix))
        }
        return ChartAxis(
            mapping: .linear(lo: first * step, hi: (first + Double(count)) * step), ticks: ticks, minor: [])
    }

    /// The smallest of 1, 2, 5, 10 × 10^k that is ≥ `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw.isFinite, raw > 0 else { return .nan }
        let magnitude = Glibc.pow(10, Glibc.log10(raw).rounded(.down))
        let norm = raw / magnitude
        let nice: Double = norm <= 1 + 1e-9 ? 1 : norm <= 2 + 1e-9 ? 2 : norm <= 5 + 1e-9 ? 5 : 10
        return nice * magnitude
    }
}

/// Tick and legend wording for each axis unit.
enum ChartLabels {
    static let binaryUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]

    /// The largest power of 1024 (up to EiB) not above `magnitude`; 1 below 1 KiB.
    static func binaryDivisor(_ magnitude: Double) -> Double {
        var d = 1.0
        for _ in 1..<binaryUnits.count where magnitude >= d * 1024 { d *= 1024 }
        return d
    }

    static func binaryUnit(_ divisor: Double) -> String {
        var d = 1.0
        for name in binaryUnits {
            if d == divisor { return " " + name }
            d *= 1024
        }
        return " B"
    }

    /// The divisor and suffix that write a value of about `magnitude` in `unit`.
    static func display(_ magnitude: Double, unit: Chart.AxisUnit) -> (divisor: Double, suffix: String) {
        switch unit {
        case .bytes:
            let d = binaryDivisor(magnitude)
            return (d, binaryUnit(d))
        case .percent:
            return (1, " %")
        case .count:
            for (d, s) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] where magnitude >= d { return (d, s) }
            return (1, "")
        case .nanoseconds, .seconds:
            let perSecond = unit == .seconds ? 1.0 : 1e9
            for (d, s) in [(1.0, " s"), (1e-3, " ms"), (1e-6, " µs")] where magnitude >= d * perSecond {
                return (d * perSecond, s)
            }
            return (1e-9 * perSecond, " ns")
        }
    }

    /// `v` in the unit that suits it, with as few decimals as write it exactly (log ticks: 1 MiB, 32 KiB, 0.1 %).
    static func exact(_ v: Double, unit: Chart.AxisUnit) -> String {
        if v == 0 { return "0" }
        let shown = display(abs(v), unit: unit)
        let x = v / shown.divisor
        var decimals = 0
        var scale = 1.0
        while decimals < 6 {
            let s = x * scale
            if abs(s - s.rounded()) <= 1e-6 * Swift.max(1, abs(s)) { break }
            decimals += 1
            scale *= 10
        }
        return fixed(x, decimals) + shown.suffix
    }

    /// Fixed-point text that cannot trap: beyond what `formatFixed` holds in an Int64, Swift's own spelling.
    static func fixed(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return "?" }
        if abs(v) * Glibc.pow(10, Double(decimals)) >= 1e15 { return "\(v)" }
        return formatFixed(v, decimals: decimals)
    }

    /// What a value of 0 reads as on this axis, for the legend note on points drawn on a log axis.
    static func zero(_ unit: Chart.AxisUnit) -> String {
        switch unit {
        case .count: return "0"
        case .bytes: return "0 B"
        case .percent: return "0 %"
        case .nanoseconds: return "0 ns"
        case .seconds: return "0 s"
        }
    }

    /// What goes in brackets after an axis title: the unit, and "log scale" so a log axis is never mistaken.
    static func axisTitle(_ label: String, unit: Chart.AxisUnit, scale: Chart.Scale) -> String {
        var parts: [String] = []
        switch unit {
        case .count: break
        case .bytes: parts.append("bytes")
        case .percent: parts.append("%")
        case .nanoseconds, .seconds: parts.append("time")
        }
        if scale == .log10 { parts.append("log scale") }
        return parts.isEmpty ? label : label + " (" + parts.joined(separator: ", ") + ")"
    }
}

// MARK: - SVG text

/// Accumulates SVG. Every coordinate passes through `number`, which refuses non-finite values: an element holding
/// one is left out, and debug builds stop on it, because a NaN in the layout means the arithmetic here is wrong.
struct SVGWriter {
    private(set) var text = ""

    /// A coordinate with at most two decimals; nil when not finite (or so large that it cannot be a coordinate).
    static func number(_ v: Double) -> String? {
        guard v.isFinite, abs(v) < 1e9 else { return nil }
        var s = formatFixed(v, decimals: 2)
        while s.hasSuffix("0") && s.contains(".") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    /// Text for XML content or an attribute: the five special characters escaped, and control characters that XML
    /// 1.0 does not allow turned into spaces.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(c)
            default:
                if c.value < 0x20 || c.value == 0xFFFE || c.value == 0xFFFF {
                    out += " "
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out
    }

    private static func attributes(_ tag: String, _ attrs: [(String, String?)]) -> String? {
        var s = ""
        for (k, v) in attrs {
            guard let v else {
                assertionFailure("SVGChart: non-finite number for <\(tag) \(k)>; the element is left out")
                return nil
            }
            s += " " + k + "=\"" + escape(v) + "\""
        }
        return s
    }

    /// `<tag …/>`, or `<tag …>content</tag>`; left out when an attribute is nil (a non-finite number).
    mutating func element(_ tag: String, _ attrs: [(String, String?)], content: String? = nil) {
        guard let a = SVGWriter.attributes(tag, attrs) else { return }
        if let content {
            text += "<" + tag + a + ">" + SVGWriter.escape(content) + "</" + tag + ">\n"
        } else {
            text += "<" + tag + a + "/>\n"
        }
    }

    /// `<text>` made of runs, each a `<tspan>` with its own attributes (the legend's name and its grey note).
    mutating func text(_ attrs: [(String, String?)], runs: [(String, [(String, String)])]) {
        guard let a = SVGWriter.attributes("text", attrs) else { return }
        text += "<text" + a + ">"
        for (content, runAttrs) in runs {
            text +=
                "<tspan" + (SVGWriter.attributes("tspan", runAttrs) ?? "") + ">" + SVGWriter.escape(content)
                + "</tspan>"
        }
        text += "</text>\n"
    }

    mutating func open(_ tag: String, _ attrs: [(String, String)] = []) {
        text += "<" + tag + (SVGWriter.attributes(tag, attrs) ?? "") + ">\n"
    }

    mutating func close(_ tag: String) { text += "</" + tag + ">\n" }

    mutating func raw(_ s: String) { text += s }
}

/// Path data built from coordinates; `value` is nil when one of them was not finite.
struct SVGPath {
    private(set) var d = ""
    private(set) var finite = true

    var isEmpty: Bool { d.isEmpty }
    var value: String? { finite ? d : nil }

    mutating func move(_ x: Double, _ y: Double) { add("M", x, y) }
    mutating func line(_ x: Double, _ y: Double) { add("L", x, y) }

    private mutating func add(_ command: String, _ x: Double, _ y: Double) {
        guard let a = SVGWriter.number(x), let b = SVGWriter.number(y) else {
            finite = false
            return
        }
        d += (d.isEmpty ? "" : " ") + command + a + " " + b
    }
}

// MARK: - Rendering

private struct LegendEntry {
    enum Sample {
        case series(SeriesStyle)
        case reference(SeriesStyle.Dash)
    }
    var sample: Sample
    var name: String
    var note: String?
}

/// A series with the points that cannot be drawn at all (NaN, ±∞) taken out and counted for the legend.
private struct CleanSeries {
    var series: Series
    var points: [ChartPoint]
    var dropped: Int

    init(_ s: Series) {
        series = s
        points = []
        dropped = 0
        for p in s.points {
            guard p.x.isFinite && p.y.isFinite else {
                dropped += 1
                continue
            }
            points.append(
                ChartPoint(
                    x: p.x, y: p.y, low: p.low.flatMap { $0.isFinite ? $0 : nil },
                    high: p.high.flatMap { $0.isFinite ? $0 : nil }))
        }
    }
}

private struct ChartRenderer {
    let chart: Chart
    let width: Double
    var height: Double

    static let fontSize = 11.0
    /// Average advance of an 11 px sans-serif character, generous so that estimated boxes hold the real text.
    static let charWidth = 6.4
    static let referenceColor = "#555555"

    init(chart: Chart, width: Double, height: Double) {
        self.chart = chart
        self.width = width
        self.height = height
    }

    static func textWidth(_ s: String, size: Double = fontSize) -> Double {
        Double(s.count) * charWidth * size / fontSize
    }

    /// An id for the clip path, the same for the same chart, so two charts on one page do not share one by chance.
    var id: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let key = [chart.title, chart.xLabel, chart.yLabel, "\(width)x\(height)"] + chart.series.map(\.name)
        for b in key.joined(separator: "\u{1}").utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return "ptchart-" + String(h, radix: 16)
    }

    func render() -> String {
        let series = chart.series.map(CleanSeries.init)
        let hasData = series.contains { !$0.points.isEmpty }
        return hasData ? plot(series) : empty()
    }

    private func header(_ w: inout SVGWriter, height: Double) {
        let wi = SVGWriter.number(width) ?? "640"
        let he = SVGWriter.number(height) ?? "400"
        w.open(
            "svg",
            [
                ("xmlns", "http://www.w3.org/2000/svg"), ("class", "chart"), ("width", wi), ("height", he),
                ("viewBox", "0 0 \(wi) \(he)"), ("role", "img"), ("aria-labelledby", id + "-title"),
                ("font-family", "DejaVu Sans, Helvetica, Arial, sans-serif"), ("font-size", "11"),
            ])
        w.element("title", [("id", id + "-title")], content: chart.title.isEmpty ? "chart" : chart.title)
        w.element("rect", [("x", "0"), ("y", "0"), ("width", wi), ("height", he), ("fill", "#ffffff")])
        if !chart.title.isEmpty {
            w.element(
                "text",
                [
                    ("class", "chart-title"), ("x", SVGWriter.number(width / 2)), ("y", "18"),
                    ("text-anchor", "middle"), ("font-size", "14"), ("font-weight", "bold"),
                ], content: chart.title)
        }
    }

    private func empty() -> String {
        var w = SVGWriter()
        header(&w, height: height)
        let top = chart.title.isEmpty ? 12.0 : 30.0
        w.open("g", [("class", "empty")])
        w.element(
            "rect",
            [
                ("x", "12"), ("y", SVGWriter.number(top)), ("width", SVGWriter.number(width - 24)),
                ("height", SVGWriter.number(height - top - 12)), ("fill", "none"), ("stroke", "#888888"),
            ])
        w.element(
            "text",
            [
                ("x", SVGWriter.number(width / 2)), ("y", SVGWriter.number((top + height) / 2)),
                ("text-anchor", "middle"), ("font-size", "14"), ("fill", "#444444"),
            ], content: "no data")
        w.close("g")
        w.close("svg")
        return w.text
    }

    /// The values each axis must cover: every point, error bar and reference line.
    private func extents(_ series: [CleanSeries]) -> (x: [Double], y: [Double]) {
        var xs: [Double] = []
        var ys: [Double] = []
        for s in series {
            for p in s.points {
                xs.append(p.x)
                ys.append(p.y)
                if let l = p.low { ys.append(l) }
                if let h = p.high { ys.append(h) }
            }
        }
        for line in chart.lines {
            switch line.shape {
            case .polyline(let points):
                for p in points where p.x.isFinite && p.y.isFinite {
                    xs.append(p.x)
                    ys.append(p.y)
                }
            case .horizontal(let y):
                if y.isFinite { ys.append(y) }
            }
        }
        return (xs, ys)
    }

    private func legendEntries(_ series: [CleanSeries], x: ChartAxis, y: ChartAxis) -> [LegendEntry] {
        var entries: [LegendEntry] = []
        for s in series {
            var notes: [String] = []
            if y.isLog {
                let zeros = s.points.filter { $0.y == 0 }.count
                let negatives = s.points.filter { $0.y < 0 }.count
                if negatives > 0 {
                    notes.append("hollow: ≤ 0, drawn on the axis")
                } else if zeros > 0 {
                    notes.append("hollow: " + ChartLabels.zero(chart.yUnit) + ", drawn on the axis")
                }
            }
            if x.isLog && s.points.contains(where: { $0.x <= 0 }) {
                notes.append("hollow: x ≤ 0, drawn on the y axis")
            }
            if s.dropped > 0 {
                notes.append("\(s.dropped) not-finite point\(s.dropped == 1 ? "" : "s") left out")
            }
            entries.append(
                LegendEntry(
                    sample: .series(s.series.style), name: s.series.name,
                    note: notes.isEmpty ? nil : notes.joined(separator: "; ")))
        }
        for line in chart.lines {
            var note: String?
            if case .horizontal(let v) = line.shape, y.isLog, v <= 0 { note = "≤ 0, not drawable on a log axis" }
            entries.append(LegendEntry(sample: .reference(line.dash), name: line.name, note: note))
        }
        return entries
    }

    private struct LegendLayout {
        var rows: Int
        var columns: Int
        var columnWidth: Double
        var box: (x: Double, y: Double, width: Double, height: Double)
    }

    static let sampleWidth = 34.0
    static let legendRow = 17.0
    static let legendPad = 8.0

    static func entryText(_ e: LegendEntry) -> (name: String, note: String?) {
        (e.name, e.note.map { " (" + $0 + ")" })
    }

    private func legendLayout(_ entries: [LegendEntry], top: Double) -> LegendLayout {
        let pad = ChartRenderer.legendPad
        let widest =
            entries.map { e -> Double in
                let t = ChartRenderer.entryText(e)
                return ChartRenderer.sampleWidth + 6 + ChartRenderer.textWidth(t.name)
                    + ChartRenderer.textWidth(t.note ?? "", size: 10)
            }.max() ?? 0
        let columnWidth = widest + 18
        let available = width - 16 - 2 * pad
        let maxColumns = Swift.max(1, Swift.min(entries.count, Int(available / columnWidth)))
        let rows = (entries.count + maxColumns - 1) / Swift.max(1, maxColumns)
        let columns = (entries.count + rows - 1) / Swift.max(1, rows)
        let boxWidth = Swift.min(width - 16, Double(columns) * columnWidth - 18 + 2 * pad)
        let boxHeight = Double(rows) * ChartRenderer.legendRow + 2 * pad - 4
        return LegendLayout(
            rows: rows, columns: columns, columnWidth: columnWidth,
            box: ((width - boxWidth) / 2, top, boxWidth, boxHeight))
    }

    private func plot(_ series: [CleanSeries]) -> String {
        let (xs, ys) = extents(series)
        // First pass: the axes' kinds decide the legend notes; the legend's height decides the plot's.
        let probeX = ChartAxis.make(scale: chart.xScale, unit: chart.xUnit, values: xs, includeZero: false, maxTicks: 8)
        let probeY = ChartAxis.make(scale: chart.yScale, unit: chart.yUnit, values: ys, includeZero: true, maxTicks: 8)
        let entries = legendEntries(series, x: probeX, y: probeY)

        let top = chart.title.isEmpty ? 14.0 : 34.0
        let belowPlot = 46.0  // tick labels, then the x axis title
        var legend = legendLayout(entries, top: 0)
        var height = self.height
        var bottom = height - belowPlot - legend.box.height - 10
        if bottom - top < 120 {
            bottom = top + 120
            height = bottom + belowPlot + legend.box.height + 10
        }
        legend.box.y = bottom + belowPlot
        // A log y axis cannot hold 0 (shmem THP measures exactly 0 B of page tables). Such points go on the x axis,
        // which then gets its own "0 B" label below a break in the y axis, so nobody reads them as the lowest tick.
        var zeroValues: [Double] = []
        for p in series.flatMap(\.points) {
            zeroValues += [p.y, p.low ?? p.y].filter { $0 <= 0 }
        }
        let zeroBand = chart.yScale == .log10 && !zeroValues.isEmpty ? 22.0 : 0
        let logBottom = bottom - zeroBand
        let plotHeight = bottom - top
        let yAxis = ChartAxis.make(
            scale: chart.yScale, unit: chart.yUnit, values: ys, includeZero: true,
            maxTicks: Swift.max(3, Int((logBottom - top) / 30)))
        let zeroLabel = zeroValues.allSatisfy { $0 == 0 } ? ChartLabels.zero(chart.yUnit) : "≤ 0"
        let yLabelWidth =
            (yAxis.ticks.map(\.label) + (zeroBand > 0 ? [zeroLabel] : [])).map {
                ChartRenderer.textWidth($0)
            }.max() ?? 0
        let left = 12 + 14 + 10 + yLabelWidth + 8
        let right = width - 26
        let plotWidth = right - left
        let xAxis = ChartAxis.make(
            scale: chart.xScale, unit: chart.xUnit, values: xs, includeZero: false,
            maxTicks: Swift.max(3, Int(plotWidth / 70)))

        let px = { (v: Double) -> Double? in xAxis.fraction(v).map { left + $0 * plotWidth } }
        let py = { (v: Double) -> Double? in yAxis.fraction(v).map { logBottom - $0 * (logBottom - top) } }
        let n = SVGWriter.number

        var w = SVGWriter()
        header(&w, height: height)
        w.open("defs")
        w.open("clipPath", [("id", id + "-plot")])
        w.element(
            "rect",
            [("x", n(left - 2)), ("y", n(top - 2)), ("width", n(plotWidth + 4)), ("height", n(plotHeight + 4))])
        w.close("clipPath")
        w.close("defs")

        // Gridlines first, under everything.
        w.open("g", [("class", "grid"), ("stroke-width", "1"), ("fill", "none")])
        var minorPath = SVGPath()
        for v in xAxis.minor {
            guard let x = px(v) else { continue }
            minorPath.move(x, top)
            minorPath.line(x, logBottom)
        }
        for v in yAxis.minor {
            guard let y = py(v) else { continue }
            minorPath.move(left, y)
            minorPath.line(right, y)
        }
        if !minorPath.isEmpty { w.element("path", [("d", minorPath.value), ("stroke", "#eeeeee")]) }
        var majorPath = SVGPath()
        for t in xAxis.ticks {
            guard let x = px(t.value) else { continue }
            majorPath.move(x, top)
            majorPath.line(x, logBottom)
        }
        for t in yAxis.ticks {
            guard let y = py(t.value) else { continue }
            majorPath.move(left, y)
            majorPath.line(right, y)
        }
        if !majorPath.isEmpty { w.element("path", [("d", majorPath.value), ("stroke", "#d4d4d4")]) }
        w.close("g")

        // Axes: line, ticks, labels, title.
        let black: (String, String?) = ("stroke", "#000000")
        w.open("g", [("class", "axis x")])
        w.element("line", [("x1", n(left)), ("y1", n(bottom)), ("x2", n(right)), ("y2", n(bottom)), black])
        for t in xAxis.ticks {
            guard let x = px(t.value) else { continue }
            w.element("line", [("x1", n(x)), ("y1", n(bottom)), ("x2", n(x)), ("y2", n(bottom + 5)), black])
            w.element("text", [("x", n(x)), ("y", n(bottom + 18)), ("text-anchor", "middle")], content: t.label)
        }
        w.element(
            "text",
            [
                ("class", "axis-title"), ("x", n(left + plotWidth / 2)), ("y", n(bottom + 37)),
                ("text-anchor", "middle"),
            ], content: ChartLabels.axisTitle(chart.xLabel, unit: chart.xUnit, scale: chart.xScale))
        w.close("g")

        w.open("g", [("class", "axis y")])
        if zeroBand > 0 {
            // The y axis breaks between the log range and the 0 line: two short slashes, as on paper.
            let gapTop = logBottom + 7
            let gapBottom = bottom - 7
            w.element("line", [("x1", n(left)), ("y1", n(top)), ("x2", n(left)), ("y2", n(gapTop)), black])
            w.element("line", [("x1", n(left)), ("y1", n(gapBottom)), ("x2", n(left)), ("y2", n(bottom)), black])
            var slashes = SVGPath()
            for y in [gapTop, gapBottom] {
                slashes.move(left - 5, y + 2)
                slashes.line(left + 5, y - 2)
            }
            w.element("path", [("class", "break"), ("d", slashes.value), black])
            w.element("line", [("x1", n(left - 5)), ("y1", n(bottom)), ("x2", n(left)), ("y2", n(bottom)), black])
            w.element(
                "text", [("class", "zero"), ("x", n(left - 8)), ("y", n(bottom + 4)), ("text-anchor", "end")],
                content: zeroLabel)
        } else {
            w.element("line", [("x1", n(left)), ("y1", n(top)), ("x2", n(left)), ("y2", n(bottom)), black])
        }
        for t in yAxis.ticks {
            guard let y = py(t.value) else { continue }
            w.element("line", [("x1", n(left - 5)), ("y1", n(y)), ("x2", n(left)), ("y2", n(y)), black])
            w.element("text", [("x", n(left - 8)), ("y", n(y + 4)), ("text-anchor", "end")], content: t.label)
        }
        let titleX = 12 + 11.0
        let titleY = top + plotHeight / 2
        w.element(
            "text",
            [
                ("class", "axis-title"), ("x", n(titleX)), ("y", n(titleY)), ("text-anchor", "middle"),
                ("transform", n(titleX).flatMap { a in n(titleY).map { "rotate(-90 \(a) \($0))" } }),
            ], content: ChartLabels.axisTitle(chart.yLabel, unit: chart.yUnit, scale: chart.yScale))
        w.close("g")

        // Layers: series lines, then the thin reference lines over them (a model that matches the data to the
        // pixel must still show), then every marker on top.
        for s in series {
            let style = s.series.style
            w.open("g", [("class", "series"), ("data-name", s.series.name), ("clip-path", "url(#\(id)-plot)")])
            var line = SVGPath()
            var pen = false
            var bars = SVGPath()
            for p in s.points {
                guard let x = px(p.x), let y = py(p.y) else {
                    pen = false  // not on the scale: the line breaks rather than plunge to the axis
                    continue
                }
                if pen { line.line(x, y) } else { line.move(x, y) }
                pen = true
                if p.low != nil || p.high != nil {
                    let lowY = py(p.low ?? p.y) ?? bottom
                    let highY = py(p.high ?? p.y) ?? bottom
                    if lowY != highY {
                        bars.move(x, lowY)
                        bars.line(x, highY)
                        bars.move(x - 3.5, lowY)
                        bars.line(x + 3.5, lowY)
                        bars.move(x - 3.5, highY)
                        bars.line(x + 3.5, highY)
                    }
                }
            }
            if !line.isEmpty {
                var attrs: [(String, String?)] = [
                    ("class", "line"), ("d", line.value), ("fill", "none"), ("stroke", style.color),
                    ("stroke-width", "1.8"), ("stroke-linejoin", "round"),
                ]
                if let dash = style.dash.dashArray { attrs.append(("stroke-dasharray", dash)) }
                w.element("path", attrs)
            }
            if !bars.isEmpty {
                w.element(
                    "path",
                    [
                        ("class", "range"), ("d", bars.value), ("fill", "none"), ("stroke", style.color),
                        ("stroke-width", "1.2"),
                    ])
            }
            w.close("g")
        }

        for line in chart.lines {
            var path = SVGPath()
            switch line.shape {
            case .polyline(let points):
                var pen = false
                for p in points {
                    guard p.x.isFinite, p.y.isFinite, let x = px(p.x), let y = py(p.y) else {
                        pen = false
                        continue
                    }
                    if pen { path.line(x, y) } else { path.move(x, y) }
                    pen = true
                }
            case .horizontal(let v):
                if v.isFinite, let y = py(v) {
                    path.move(left, y)
                    path.line(right, y)
                }
            }
            w.open("g", [("class", "reference"), ("data-name", line.name), ("clip-path", "url(#\(id)-plot)")])
            if !path.isEmpty {
                var attrs: [(String, String?)] = [
                    ("d", path.value), ("fill", "none"), ("stroke", ChartRenderer.referenceColor),
                    ("stroke-width", "1.2"),
                ]
                if let dash = line.dash.dashArray { attrs.append(("stroke-dasharray", dash)) }
                w.element("path", attrs)
            }
            w.close("g")
        }

        // Markers are not clipped, so a point on the plot's edge, or a 0 on the axis, shows whole.
        for s in series {
            w.open("g", [("class", "markers"), ("data-name", s.series.name)])
            for p in s.points {
                // A value the log scale cannot place (≤ 0) sits on the axis, hollow: see the legend's note.
                let x = px(p.x)
                let y = py(p.y)
                ChartRenderer.marker(&w, s.series.style, x: x ?? left, y: y ?? bottom, hollow: x == nil || y == nil)
            }
            w.close("g")
        }

        drawLegend(&w, entries, legend)
        w.close("svg")
        return w.text
    }

    private func drawLegend(_ w: inout SVGWriter, _ entries: [LegendEntry], _ layout: LegendLayout) {
        let n = SVGWriter.number
        let pad = ChartRenderer.legendPad
        w.open("g", [("class", "legend")])
        w.element(
            "rect",
            [
                ("x", n(layout.box.x)), ("y", n(layout.box.y)), ("width", n(layout.box.width)),
                ("height", n(layout.box.height)), ("fill", "#ffffff"), ("stroke", "#999999"),
            ])
        for (i, e) in entries.enumerated() {
            let column = i / layout.rows
            let row = i % layout.rows
            let x0 = layout.box.x + pad + Double(column) * layout.columnWidth
            let y = layout.box.y + pad - 2 + Double(row) * ChartRenderer.legendRow + ChartRenderer.legendRow / 2
            let x1 = x0 + ChartRenderer.sampleWidth
            w.open("g", [("class", "legend-entry")])
            switch e.sample {
            case .series(let style):
                var attrs: [(String, String?)] = [
                    ("x1", n(x0)), ("y1", n(y)), ("x2", n(x1)), ("y2", n(y)), ("stroke", style.color),
                    ("stroke-width", "1.8"),
                ]
                if let dash = style.dash.dashArray { attrs.append(("stroke-dasharray", dash)) }
                w.element("line", attrs)
                ChartRenderer.marker(&w, style, x: (x0 + x1) / 2, y: y, hollow: false)
            case .reference(let dash):
                var attrs: [(String, String?)] = [
                    ("x1", n(x0)), ("y1", n(y)), ("x2", n(x1)), ("y2", n(y)), ("stroke", ChartRenderer.referenceColor),
                    ("stroke-width", "1.2"),
                ]
                if let d = dash.dashArray { attrs.append(("stroke-dasharray", d)) }
                w.element("line", attrs)
            }
            let t = ChartRenderer.entryText(e)
            var runs: [(String, [(String, String)])] = [(t.name, [])]
            if let note = t.note { runs.append((note, [("fill", "#444444"), ("font-size", "10")])) }
            w.text([("x", n(x1 + 6)), ("y", n(y + 4))], runs: runs)
            w.close("g")
        }
        w.close("g")
    }

    /// One marker, filled; hollow (white inside, or ringed for the stroke-only cross and plus) for a value drawn
    /// on the axis because the scale cannot place it.
    static func marker(_ w: inout SVGWriter, _ style: SeriesStyle, x: Double, y: Double, hollow: Bool) {
        let n = SVGWriter.number
        let r = 4.0
        let fill = hollow ? "#ffffff" : style.color
        let paint: [(String, String?)] = [
            ("fill", fill), ("stroke", style.color), ("stroke-width", hollow ? "1.6" : "1"),
        ]
        var path = SVGPath()
        switch style.marker {
        case .circle:
            w.element("circle", [("cx", n(x)), ("cy", n(y)), ("r", n(r * 0.9))] + paint)
            return
        case .square:
            let h = r * 0.85
            path.move(x - h, y - h)
            path.line(x + h, y - h)
            path.line(x + h, y + h)
            path.line(x - h, y + h)
        case .triangle:
            path.move(x, y - r * 1.1)
            path.line(x + r, y + r * 0.75)
            path.line(x - r, y + r * 0.75)
        case .diamond:
            path.move(x, y - r * 1.15)
            path.line(x + r, y)
            path.line(x, y + r * 1.15)
            path.line(x - r, y)
        case .cross, .plus:
            if hollow {
                w.element("circle", [("cx", n(x)), ("cy", n(y)), ("r", n(r + 1.5))] + paint)
            }
            let h = style.marker == .cross ? r * 0.8 : r
            if style.marker == .cross {
                path.move(x - h, y - h)
                path.line(x + h, y + h)
                path.move(x - h, y + h)
                path.line(x + h, y - h)
            } else {
                path.move(x - h, y)
                path.line(x + h, y)
                path.move(x, y - h)
                path.line(x, y + h)
            }
            w.element("path", [("d", path.value), ("fill", "none"), ("stroke", style.color), ("stroke-width", "2")])
            return
        }
        guard !path.isEmpty, let d = path.value else {
            assertionFailure("SVGChart: non-finite marker position")
            return
        }
        w.element("path", [("d", d + " Z")] + paint)
    }
}
