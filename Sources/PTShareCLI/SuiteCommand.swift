import ArgumentParser
import Glibc
import PTShareCore

extension SuiteOptions.Expectation: ExpressibleByArgument {}

extension PTShare {
    public struct Suite: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Run the default verification suite: \(PTShareCore.Suite.testNames.joined(separator: ", ")).",
            discussion: """
                Prints KTAP version 1 with --ktap (a compact list otherwise) and writes one JSON report per \
                scenario into the results folder. Exit status 1 when any test fails.
                """)

        @Flag(help: "Print KTAP version 1 (plan, ok/not ok, # SKIP reasons, totals).")
        public var ktap = false

        @Option(help: "Results folder (default $PTSHARE_OUT, else a new folder under ./ptshare-results/).")
        public var out: String?

        @Option(help: "Workers per scenario.")
        public var workers: Int = 200

        @Option(help: "Size of the memfd scenarios.")
        public var memfdSize: String = "64M"

        @Option(help: "Size of the hugetlb scenario (1 GiB spans are what PMD sharing shares).")
        public var hugetlbSize: String = "1G"

        @Option(help: "Allowed relative deviation from the model.")
        public var tolerance: Double = 0.10

        // 52 KiB measured with the guest binary of 2026-11-29; 68 KiB on 2026-11-30 (stock, two
        // NUMA nodes, the binary that links libnuma), cause not isolated: the bound follows.
        @Option(help: "Upper bound of the harness's own page tables per worker.")
        public var controlBound: String = "80K"

        @Option(help: "Size of the sharedpt.*.savings and sharedpt.memfd.tables scenarios (a multiple of 2M).")
        public var sharedPtSize: String = "256M"

        @Option(help: "Seconds that sharedpt.stress runs.")
        public var stressSeconds: Int = 60

        @Option(help: "What MAP_SHARED_PT should be: auto, supported, unsupported.")
        public var expectMapSharedPt: SuiteOptions.Expectation = .auto

        @Option(name: .customLong("test"), help: "Run only this test (repeatable).")
        public var tests: [String] = []

        @Flag(help: "A SKIP fails the suite (exit status 1) unless the test is given with --allow-skip.")
        public var failOnSkip = false

        @Option(
            name: .customLong("allow-skip"),
            help: "With --fail-on-skip: this test may SKIP (repeatable); its skip reason is printed.")
        public var allowSkip: [String] = []

        @Flag(
            help:
                "With --fail-on-skip: a SKIP because the kernel lacks MAP_SHARED_PT is allowed, any other fails (the stock path)."
        )
        public var allowUnsupportedSkips = false

        @OptionGroup public var flag: FlagOptions

        public init() {}

        func options() throws -> SuiteOptions {
            func size(_ flag: String, _ text: String) throws -> UInt64 {
                do { return try ByteSize.parse(text).bytes } catch { throw ValidationError("\(flag): \(error)") }
            }
            guard workers >= 1 && workers <= Scenario.maxWorkers else {
                throw ValidationError("--workers \(workers): must be between 1 and \(Scenario.maxWorkers)")
            }
            guard tolerance > 0 && tolerance < 1 else {
                throw ValidationError("--tolerance \(tolerance): must be between 0 and 1 (0.10 = 10 %)")
            }
            for t in tests where !PTShareCore.Suite.testNames.contains(t) {
                throw ValidationError(
                    "--test \(t): unknown; the tests are \(PTShareCore.Suite.testNames.joined(separator: ", "))")
            }
            for t in allowSkip where !PTShareCore.Suite.testNames.contains(t) {
                throw ValidationError(
                    "--allow-skip \(t): unknown; the tests are \(PTShareCore.Suite.testNames.joined(separator: ", "))")
            }
            if !allowSkip.isEmpty && !failOnSkip {
                throw ValidationError("--allow-skip needs --fail-on-skip (without it every SKIP is allowed)")
            }
            if allowUnsupportedSkips && !failOnSkip {
                throw ValidationError(
                    "--allow-unsupported-skips needs --fail-on-skip (without it every SKIP is allowed)")
            }
            var o = SuiteOptions(
                workers: workers, memfdSize: try size("--memfd-size", memfdSize),
                hugetlbSize: try size("--hugetlb-size", hugetlbSize), tolerance: tolerance,
                controlBoundBytes: Int64(try size("--control-bound", controlBound)), expectSharedPT: expectMapSharedPt,
                mapSharedPTValue: try flag.resolve(), outDirectory: out ?? defaultResultsDirectory("suite"), only: tests
            )
            o.sharedPTSize = try size("--shared-pt-size", sharedPtSize)
            o.stressSeconds = stressSeconds
            do { try o.validate() } catch { throw ValidationError(error.description) }
            return o
        }

        public mutating func validate() throws { _ = try options() }

        public func run() throws {
            let o = try options()
            do { try makeDirectories(o.outDirectory) } catch {
                printError(error.description)
                throw ExitCode(3)
            }
            let results = PTShareCore.Suite.run(o) { chunk in
                if ktap {
                    print(chunk, terminator: "")
                } else {
                    for line in chunk.split(separator: "\n") {
                        if line.hasPrefix("ok ") || line.hasPrefix("not ok ") || line.hasPrefix("# ") {
                            print(line.hasPrefix("# ") ? "    " + line.dropFirst(2) : "" + line)
                        }
                    }
                }
                fflush(nil)  // streamed: each KTAP line as soon as its test ends
            }
            let policy = SkipPolicy(failOnSkip: failOnSkip, allowed: allowSkip, allowUnsupported: allowUnsupportedSkips)
                .judge(results)
            for line in policy.lines { print(ktap ? "# " + line : "    " + line) }
            printStderr("ptshare suite: results in \(o.outDirectory)")
            if results.contains(where: { $0.status == .fail }) || policy.fails { throw ExitCode(1) }
        }
    }
}
