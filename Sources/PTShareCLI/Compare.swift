import ArgumentParser
import PTShareCore

extension PTShare {
    public struct Compare: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Compare two bench or run results, per point and metric, and fail on a regression.",
            discussion: """
                A and B are each a bench folder (or its bench.json), a run report (run --json), or a folder of \
                run reports. Per metric: base mean ± %stddev, %change, new mean ± %stddev, and whether the \
                difference is significant (Welch's t-test where both sides have 3 samples or more, else \
                disjoint min–max bands). A regression is a significant change in the bad direction beyond \
                its threshold; exit status 1 when there is one, 0 when not, 64 bad usage, 3 unreadable input.
                """)

        @Argument(help: "The base: bench folder, bench.json, run report, or folder of run reports.")
        public var base: String

        @Argument(help: "The new results, in the same forms.")
        public var new: String

        @Option(help: "Fail when a metric regresses by more than this many percent.")
        public var failAbove: Double?

        @Option(
            name: .customLong("threshold"),
            help: ArgumentHelp("A metric's own threshold in percent (repeatable).", valueName: "METRIC=PCT"))
        public var thresholds: [String] = []

        @Option(help: "Compare only these metrics, comma-separated.")
        public var metrics: String?

        @Flag(help: "Markdown tables instead of plain text.")
        public var markdown = false

        @Flag(
            help:
                "Fail (exit 1) when a point and metric of the base has no sample in the new results: a point that was skipped or failed there."
        )
        public var failOnMissing = false

        public init() {}

        func parsed() throws -> (Thresholds, Set<String>?) {
            let known = CompareInput.metricNames
            var per: [String: Double] = [:]
            for t in thresholds {
                let kv = t.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, let pct = Double(kv[1]), pct >= 0 else {
                    throw ValidationError("--threshold \(t): expected METRIC=PCT, like page_table_bytes=1")
                }
                guard known.contains(kv[0]) else {
                    throw ValidationError(
                        "--threshold \(t): unknown metric \"\(kv[0])\" (\(known.joined(separator: ", ")))")
                }
                per[kv[0]] = pct
            }
            if let f = failAbove, f < 0 { throw ValidationError("--fail-above \(f): must be 0 or more") }
            var only: Set<String>?
            if let metrics {
                let names = metrics.split(separator: ",").map { String($0).trimmingCharacters(in: " ") }
                for n in names where !known.contains(n) {
                    throw ValidationError("--metrics: unknown metric \"\(n)\" (\(known.joined(separator: ", ")))")
                }
                only = Set(names)
            }
            return (Thresholds(default: failAbove, perMetric: per), only)
        }

        public mutating func validate() throws { _ = try parsed() }

        public func run() throws {
            let (t, only) = try parsed()
            let a: BenchReport
            let b: BenchReport
            do {
                a = try CompareInput.load(base)
                b = try CompareInput.load(new)
            } catch {
                printError("ptshare compare: \(error)")
                throw ExitCode(3)
            }
            let c = Comparison.compare(
                base: CompareInput.sampled(a, only: only), new: CompareInput.sampled(b, only: only), thresholds: t)
            print("base: \(base) (\(a.kernel.release)); new: \(new) (\(b.kernel.release))")
            print(markdown ? c.renderMarkdown() : c.renderText(), terminator: "")
            if c.rows.isEmpty {
                printError("ptshare compare: no point and metric appear on both sides: nothing was compared")
                throw ExitCode(3)
            }
            // A gate must not pass because the point it guards did not run (the flag refused, a
            // worker died): listed above under "not compared", and fatal here when asked.
            let missing = c.unpaired.filter { u in
                guard case .sampled = u.base else { return false }
                if case .sampled = u.new { return false }
                return true
            }
            if failOnMissing && !missing.isEmpty {
                printError(
                    "ptshare compare: \(missing.count) point/metric pair(s) of the base have no sample in the new "
                        + "results (--fail-on-missing): "
                        + missing.prefix(5).map { "\($0.point): \($0.metric.name)" }.joined(separator: "; "))
                throw ExitCode(1)
            }
            if c.exitCode != 0 { throw ExitCode(c.exitCode) }
        }
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
