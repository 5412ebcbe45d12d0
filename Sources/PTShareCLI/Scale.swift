import ArgumentParser
import PTShareCore

extension PTShare {
    public struct Scale: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Time sharer start, hole punch, truncate and exit as a file's sharers grow to thousands.",
            discussion: """
                One driver maps and fills a memfd, then adds sharers step by step (each maps it and reads \
                a word per 2 MiB chunk); at each step: the new sharers' start time, 4 KiB hole punches and \
                one-page truncates that clear a page every sharer maps, PageTables against the PTE tables \
                the mapping needs. Then all sharers exit at once. With MAP_SHARED_PT (default) or --plain \
                (MAP_SHARED). Example, in the guest: ptshare vm --kernel patched --memory 8G -- scale \
                --sharers 1,10,100,1000,10000
                """)

        @Option(help: "memfd size, a multiple of 2M.")
        public var size: String = "256M"

        @Option(help: "Sharer counts, increasing, comma-separated.")
        public var sharers: String = "1,10,100,1000"

        @Flag(help: "Map with plain MAP_SHARED (every sharer has tables of its own).")
        public var plain = false

        @Option(help: "Hole punches timed per step.")
        public var punches: Int = 8

        @Option(help: "One-page truncates timed per step.")
        public var truncates: Int = 4

        @Option(help: "Write the report as JSON to this file.")
        public var json: String?

        @OptionGroup public var flag: FlagOptions

        public init() {}

        func options() throws -> ScaleOptions {
            let bytes: UInt64
            do { bytes = try ByteSize.parse(size).bytes } catch { throw ValidationError("--size: \(error)") }
            let steps = sharers.split(separator: ",").map { Int($0.filter { $0 != " " }) }
            guard !steps.isEmpty, steps.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw ValidationError("--sharers \(sharers): positive counts, comma-separated")
            }
            let counts = steps.map { $0! }
            guard counts == counts.sorted(), Set(counts).count == counts.count else {
                throw ValidationError("--sharers \(sharers): counts must increase")
            }
            guard punches >= 1, truncates >= 1 else { throw ValidationError("--punches and --truncates: at least 1") }
            return ScaleOptions(
                size: bytes, steps: counts, flag: plain ? 0 : try flag.resolve(), punches: punches, truncates: truncates
            )
        }

        public mutating func validate() throws { _ = try options() }

        public func run() throws {
            let o = try options()
            let report: ScaleReport
            do {
                report = try ScaleBench.run(o) { printStderr("ptshare " + $0) }
            } catch {
                printError("ptshare scale: \(error)")
                throw ExitCode(error.exitCode)
            }
            print("\(report.mode), \(ByteSize(report.size)) memfd")
            print(
                "| sharers | start per sharer | hole punch | truncate | PageTables | the mappings' PTE tables "
                    + "| other tables per sharer |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            for s in report.steps {
                print(
                    "| \(s.sharers) | \(formatFixed(s.startMicrosPerSharer, decimals: 0)) µs | "
                        + "\(formatFixed(s.punchMicros, decimals: 0)) µs | \(formatFixed(s.truncateMicros, decimals: 0)) µs | "
                        + "\(ByteSize(s.pageTablesBytes)) | \(ByteSize(s.modelPTEBytes)) | \(formatFixed(Double(s.otherBytesPerSharer) / 1024, decimals: 1)) KiB |"
                )
            }
            print(
                "exit of all \(report.steps.last?.sharers ?? 0) sharers: \(formatFixed(report.exitMillis, decimals: 1)) ms; "
                    + "the driver's munmap: \(formatFixed(report.driverUnmapMicros, decimals: 0)) µs")
            if let json {
                do { try writeFileAtomically(json, try JSONOutput.encode(report)) } catch {
                    printError("ptshare scale: --json \(json): \(error)")
                    throw ExitCode(3)
                }
            }
        }
    }
}
