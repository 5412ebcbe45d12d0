import ArgumentParser
import PTShareCore

extension PTShare {
    public struct Run: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Fork workers that map one shared object, measure their page tables, compare with the model.",
            discussion: """
                Exit status: 0 pass, 1 fail, 4 skip (kselftest's convention), 64 bad usage (EX_USAGE), 3 the run
                could not complete (the message says why), 128+N interrupted by signal N.
                """)

        @Option(
            help: "What backs the mapping: memfd, tmpfs, hugetlbfs, anon-shared, dax (a file on a -o dax=always mount)."
        )
        public var backing: Backing = .memfd

        @Option(
            help:
                "Directory for file backings (tmpfs default /dev/shm, hugetlbfs and dax default the first such mount).")
        public var path: String?

        @Option(help: "Mapping size: bytes, or with a K, M, G, T suffix (binary units).")
        public var size: String = "64M"

        @Option(help: "Number of worker processes.")
        public var workers: Int = 64

        @Option(
            help:
                "none: MAP_SHARED; pt: MAP_SHARED_VALIDATE | MAP_SHARED_PT, once a probe proved the kernel honours it."
        )
        public var share: ShareMode = .none

        @Option(
            help: "How workers fault the mapping in: none, read, write, populate (MADV_POPULATE_READ), populate-write.")
        public var touch: TouchMode = .populate

        @Option(
            help:
                "auto (kernel chooses), same (one aligned address for all, MAP_FIXED_NOREPLACE), same-1G (at the start of a free 1 GiB span of its own: the same tables every run), same+2M (moved by a skew), or 0xADDRESS."
        )
        public var address: String = "auto"

        @Flag(
            help:
                "prctl(PR_SET_THP_DISABLE) for the workers: no PMD leaf (THP or DAX), every chunk PTE-mapped, as where no huge page or 2 MiB-aligned extent can be had."
        )
        public var thpDisable = false

        @Option(help: "Allowed relative deviation from the model (0.10 = 10 %).")
        public var tolerance: Double = 0.10

        @Option(help: "Write the JSON report (schema ptshare.run.v1) to this file.")
        public var json: String?

        @Flag(help: "Print only the verdict line.")
        public var quiet = false

        @Option(help: "How many workers' smaps to read, spread evenly (0: none).")
        public var smapsWorkers: Int = 8

        @Option(help: "Keep the workers mapped this many seconds after measuring.")
        public var hold: Int = 0

        @Option(help: "Seconds allowed for all workers to reach each phase.")
        public var phaseTimeout: Int = 600

        @Option(help: "Ask the ptshare_probe module which tables map each worker: auto (when loaded), on, off.")
        public var tables: TablesMode = .auto

        @Flag(
            help:
                "First run the unshared variant (share none; hugetlbfs: address moved by 2M) and report the savings.")
        public var baseline = false

        @Option(help: "How many workers map and touch at the same time (default: online CPUs).")
        public var mapConcurrency: Int?

        @Option(help: "Run the workers on the CPUs of these NUMA nodes (a list like 0, 0-1 or 0,2).")
        public var cpunodebind: String?

        @Option(help: "Allocate the file's pages and the workers' page tables only from these NUMA nodes.")
        public var membind: String?

        @Option(help: "Interleave the file's pages and the workers' page tables over these NUMA nodes.")
        public var interleave: String?

        @OptionGroup public var flag: FlagOptions

        public init() {}

        /// Everything a run needs from the command line, or the message naming what is wrong.
        public func scenario() throws -> Scenario {
            let bytes: UInt64
            do { bytes = try ByteSize.parse(size).bytes } catch {
                throw ValidationError("--size: \(error.description)")
            }
            guard let addr = AddressMode.parse(address) else {
                throw ValidationError(
                    "--address \(address): expected auto, same or a hexadecimal address like 0x7f0000000000")
            }
            var s = Scenario(
                backing: backing, path: path, size: bytes, workers: workers, share: share, touch: touch, address: addr,
                mapSharedPTValue: try flag.resolve(), tolerance: tolerance, thpDisabled: thpDisable)
            do { try s.validate() } catch { throw ValidationError(error.description) }
            // Last: the node lists are read against the machine, the rest needs none.
            s.placement = try placement()
            return s
        }

        /// The node lists, each read by libnuma against this machine's nodes: a node it does not
        /// have is bad usage, not a failed run.
        func placement(machine: () throws(NumaError) -> NumaMachine = NumaMachine.current) throws -> NumaPlacement {
            if membind != nil && interleave != nil {
                throw ValidationError(
                    "--membind \(membind!) and --interleave \(interleave!): pick one (a task has one memory policy)")
            }
            guard cpunodebind != nil || membind != nil || interleave != nil else { return .none }
            let m: NumaMachine
            do { m = try machine() } catch { throw ValidationError("NUMA: \(error.description)") }
            func nodes(_ text: String?, _ option: String) throws -> [Int]? {
                guard let text else { return nil }
                do { return try NodeList.parse(text, option: option, machine: m) } catch {
                    throw ValidationError(error.description)
                }
            }
            var p = NumaPlacement(cpuNodes: try nodes(cpunodebind, "--cpunodebind"))
            if let b = try nodes(membind, "--membind") { p.memory = .bind(b) }
            if let i = try nodes(interleave, "--interleave") { p.memory = .interleave(i) }
            return p
        }

        public mutating func validate() throws {
            _ = try scenario()
            guard smapsWorkers >= 0 else { throw ValidationError("--smaps-workers \(smapsWorkers): must be 0 or more") }
            guard hold >= 0 && hold <= 86_400 else {
                throw ValidationError("--hold \(hold): must be between 0 and 86400 seconds")
            }
            if let c = mapConcurrency, c < 1 {
                throw ValidationError("--map-concurrency \(c): must be at least 1")
            }
            guard phaseTimeout > 0 else {
                throw ValidationError("--phase-timeout \(phaseTimeout): must be at least 1 second")
            }
        }

        public func run() throws {
            let options = RunOptions(
                scenario: try scenario(), smapsWorkers: smapsWorkers, holdSeconds: hold,
                phaseTimeoutSeconds: phaseTimeout, mapConcurrency: mapConcurrency ?? RunOptions.defaultMapConcurrency,
                tables: tables)
            let report: RunReport
            do {
                report = baseline ? try Runner.runWithBaseline(options) : try Runner.run(options)
            } catch {
                printError(error.description)
                throw ExitCode(error.exitCode)
            }
            if let json {
                do { try writeFileAtomically(json, try JSONOutput.encode(report)) } catch {
                    printError("writing \(json): \(error)")
                    throw ExitCode(3)
                }
            }
            if quiet {
                print("verdict: \(report.verdict.rawValue.uppercased()): \(report.reason)")
            } else {
                print(TextReport.render(report), terminator: "")
            }
            let code = report.verdict.exitCode
            if code != 0 { throw ExitCode(code) }
        }
    }
}
