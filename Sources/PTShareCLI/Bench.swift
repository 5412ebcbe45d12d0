import ArgumentParser
import Glibc
import PTShareCore

extension BenchShare: ExpressibleByArgument {}

extension PTShare {
    public struct Bench: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Sweep workers × sizes × share modes × backings; write bench.json, summary.md and index.html.",
            discussion: """
                Every point is a real `run` (the same workers, probes, model and verdict), repeated --repeat \
                times. Share modes: none (MAP_SHARED, the baseline), pt (MAP_SHARED_PT), thp (shmem THP: \
                shmem_enabled set to always for the point, as root, and restored; the other modes run with \
                never), pt+thp (the flag with shmem THP always), hugetlb-aligned and hugetlb-skewed (--backing hugetlbfs). A spec file adds to the lists: \
                one `key = value` a line (workers, sizes, shares, backings, repeat, fragment). Exit status: 0 \
                every sample completed and met its model, 1 a sample failed or missed its model, 3 the sweep \
                could not start (the message says why, with numbers), 64 bad usage.
                """)

        @Option(help: "Worker counts, comma-separated (10,100,1000).")
        public var workers: String?

        @Option(help: "Mapping sizes, comma-separated (64M,256M).")
        public var size: String?

        @Option(help: "Share modes, comma-separated: none, pt, thp, pt+thp, hugetlb-aligned, hugetlb-skewed.")
        public var share: String?

        @Option(help: "Backings, comma-separated: memfd, tmpfs, hugetlbfs, anon-shared, dax.")
        public var backing: String?

        @Option(help: "A spec file whose lists are added to the flags'.")
        public var spec: String?

        @Option(name: .customLong("repeat"), help: "Runs per point.")
        public var repeats: Int?

        @Flag(
            help:
                "First leave free memory in single 4 KiB pages (a held child gives back one page in N), so shmem THP must compact or fall back, as on a long-running server."
        )
        public var fragment = false

        @Option(help: "How workers fault the mapping in: none, read, write, populate, populate-write.")
        public var touch: TouchMode = .populate

        @Option(help: "Directory for file backings (tmpfs, hugetlbfs, dax).")
        public var path: String?

        @Option(help: "Ask the ptshare_probe module for distinct tables: auto, on, off.")
        public var tables: TablesMode = .auto

        @Option(help: "How many workers map and touch at the same time (default: online CPUs).")
        public var mapConcurrency: Int?

        @Option(help: "Seconds allowed for all workers to reach each phase.")
        public var phaseTimeout: Int = 900

        @Option(help: "Folder for bench.json, summary.md and index.html.")
        public var out: String = "ptshare-results/bench-\(timestampForPath())"

        @Option(
            help:
                "Run nothing: render summary.md and index.html again from DIR/bench.json (after a change to the report's form)."
        )
        public var render: String?

        @OptionGroup public var flag: FlagOptions

        public init() {}

        /// The sweep from the flags and the spec file, validated.
        public func sweep(readFile: (String) throws -> String = { try ProcFS.read($0) }) throws -> BenchSpec {
            var file = BenchSpecFile()
            if let spec {
                let text: String
                do { text = try readFile(spec) } catch { throw ValidationError("--spec \(spec): \(error)") }
                do { file = try BenchSpecFile.parse(text, source: spec) } catch {
                    throw ValidationError(error.description)
                }
            }
            func list<T>(_ text: String?, _ option: String, _ item: (String) -> T?) throws -> [T] {
                guard let text else { return [] }
                do { return try BenchSpec.list(text, option: option, item) } catch {
                    throw ValidationError(error.description)
                }
            }
            let w = try list(workers, "--workers") { Int($0) } + file.workers
            let sizes = try list(size, "--size") { try? ByteSize.parse($0).bytes } + file.sizes
            let shares = try list(share, "--share") { BenchShare(rawValue: $0) } + file.shares
            let backings = try list(backing, "--backing") { Backing(rawValue: $0) } + file.backings
            var s = BenchSpec(
                workers: dedup(w.isEmpty ? [10, 100] : w), sizes: dedup(sizes.isEmpty ? [64 << 20] : sizes),
                shares: dedup(shares.isEmpty ? [.none, .pt] : shares),
                backings: dedup(backings.isEmpty ? [.memfd] : backings), repeats: repeats ?? file.repeats ?? 1,
                fragment: fragment || (file.fragment ?? false))
            s.touch = touch
            s.path = path
            s.tables = tables
            s.phaseTimeoutSeconds = phaseTimeout
            s.mapConcurrency = mapConcurrency ?? RunOptions.defaultMapConcurrency
            s.mapSharedPTValue = try flag.resolve()
            do { try s.validate() } catch { throw ValidationError(error.description) }
            guard s.mapConcurrency >= 1 else {
                throw ValidationError("--map-concurrency \(s.mapConcurrency): must be at least 1")
            }
            guard phaseTimeout >= 1 else { throw ValidationError("--phase-timeout \(phaseTimeout): at least 1 second") }
            return s
        }

        func dedup<T: Equatable>(_ xs: [T]) -> [T] {
            var out: [T] = []
            for x in xs where !out.contains(x) { out.append(x) }
            return out
        }

        public mutating func validate() throws { if render == nil { _ = try sweep() } }

        public func run() throws {
            if let dir = render {
                let report: BenchReport
                do { report = try JSONOutput.decodeBench(Array(try ProcFS.read(dir + "/bench.json").utf8)) } catch {
                    printError("ptshare bench --render: \(dir)/bench.json: \(error)")
                    throw ExitCode(3)
                }
                do {
                    try writeFileAtomically(dir + "/summary.md", Array(BenchSummary.render(report).utf8))
                    try writeFileAtomically(dir + "/index.html", Array(BenchHTML.render(report).utf8))
                } catch {
                    printError("ptshare bench --render: writing \(dir): \(error)")
                    throw ExitCode(3)
                }
                printStderr("ptshare bench: rendered \(dir)/summary.md, index.html from bench.json")
                return
            }
            let s = try sweep()
            let terminal = isatty(2) == 1
            var lastWidth = 0
            let progress = { (p: BenchProgress) in
                let eta = p.etaSeconds.map { ", ETA \(formatFixed($0, decimals: 0)) s" } ?? ""
                let line =
                    "[\(p.index + 1)/\(p.total)] \(p.label) #\(p.repeatIndex + 1), "
                    + "\(formatFixed(p.elapsedSeconds, decimals: 0)) s elapsed\(eta)"
                if terminal {
                    let pad = String(repeating: " ", count: max(0, lastWidth - line.count))
                    printStderrRaw("\r" + line + pad)
                    lastWidth = line.count
                } else {
                    printStderr("ptshare bench: " + line)
                }
            }
            let log = { (m: String) in
                if terminal && lastWidth > 0 {
                    printStderrRaw("\n")
                    lastWidth = 0
                }
                printStderr("ptshare bench: " + m)
            }
            let report: BenchReport
            do {
                report = try PTShareCore.Bench.run(
                    s, command: CommandLine.arguments, accelerator: getenv("PTSHARE_ACCEL").map { String(cString: $0) },
                    progress: progress, log: log)
            } catch {
                if terminal && lastWidth > 0 { printStderrRaw("\n") }
                printError("ptshare bench: \(error)")
                throw ExitCode(3)
            }
            if terminal && lastWidth > 0 { printStderrRaw("\n") }
            let summary = BenchSummary.render(report)
            do {
                try makeDirectories(out)
                try writeFileAtomically(out + "/bench.json", try JSONOutput.encode(report))
                try writeFileAtomically(out + "/summary.md", Array(summary.utf8))
                try writeFileAtomically(out + "/index.html", Array(BenchHTML.render(report).utf8))
            } catch {
                printError("ptshare bench: writing \(out): \(error)")
                throw ExitCode(3)
            }
            print(summary, terminator: "")
            printStderr("ptshare bench: wrote \(out)/bench.json, summary.md, index.html")
            let failed = report.points.contains { p in
                p.samples.contains { $0.error != nil || $0.metrics?.verdict == .fail }
            }
            if failed { throw ExitCode(1) }
        }
    }
}

/// Without a newline: the progress line rewrites itself with "\r".
func printStderrRaw(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}
