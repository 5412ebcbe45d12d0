import ArgumentParser
import PTShareCore

extension VMOptions.Accel: ExpressibleByArgument {}

extension PTShare {
    public struct VM: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "vm",
            abstract: "Boot the test kernel in QEMU and run a ptshare command in the guest.",
            discussion: """
                Example: ptshare vm --kernel stock -- suite --ktap
                The kernel is built (or reused from the cache) by scripts/kernel-build.sh, the initramfs by \
                scripts/initramfs.sh. Exit status: the guest command's; 1 when the console shows a kernel \
                problem (BUG, WARNING, Oops, panic, lockup, hung task, GPF); 3 when the VM could not run.
                """)

        @Option(help: "stock, patched, patched-debug, or the path of a bzImage.")
        public var kernel: String = "stock"

        @Option(help: "Guest memory.")
        public var memory: String = "4G"

        @Option(help: "Guest CPUs.")
        public var cpus: Int = 2

        @Option(help: "Guest NUMA nodes, memory and CPUs split evenly (1: no NUMA topology).")
        public var numa: Int = 1

        @Option(help: "Seconds before QEMU is killed and the run fails.")
        public var timeout: Int = 600

        @Option(help: "Results folder (default a new folder under ./ptshare-results/).")
        public var out: String?

        @Option(help: "auto (KVM only when a probe boot with it reaches init), kvm, tcg.")
        public var accel: VMOptions.Accel = .auto

        @Option(help: "2 MiB huge pages reserved at boot.")
        public var hugepages: Int = 600

        @Option(
            help:
                "Guest RAM turned into an emulated pmem disk (/dev/pmem0), which the guest formats and mounts at /mnt/pmem; a multiple of 2M, 0 for none."
        )
        public var pmem: String = "64M"

        @Argument(parsing: .postTerminator, help: "The ptshare command to run in the guest, after --.")
        public var guestArguments: [String] = []

        public init() {}

        func options() throws -> VMOptions {
            let mem: UInt64
            do { mem = try ByteSize.parse(memory).bytes } catch { throw ValidationError("--memory: \(error)") }
            guard cpus >= 1 && cpus <= 64 else { throw ValidationError("--cpus \(cpus): must be between 1 and 64") }
            guard numa >= 1 && numa <= 8 else { throw ValidationError("--numa \(numa): must be between 1 and 8") }
            guard mem / UInt64(numa) >= 256 << 20 else {
                throw ValidationError("--numa \(numa) with --memory \(ByteSize(mem)): each node needs at least 256M")
            }
            guard timeout >= 1 else { throw ValidationError("--timeout \(timeout): must be at least 1 second") }
            guard hugepages >= 0 else { throw ValidationError("--hugepages \(hugepages): must be 0 or more") }
            let pmemBytes: UInt64
            do { pmemBytes = try ByteSize.parse(pmem).bytes } catch { throw ValidationError("--pmem: \(error)") }
            // memmap= takes any size, but a 2M multiple keeps the range fit for fs-dax mappings with PMD leaves.
            guard pmemBytes % Geometry.pmdSize == 0 else {
                throw ValidationError("--pmem \(ByteSize(pmemBytes)): must be a multiple of 2M, or 0 for no pmem disk")
            }
            guard !guestArguments.isEmpty else {
                throw ValidationError("no guest command: give one after --, e.g. ptshare vm -- suite --ktap")
            }
            guard let root = VirtualMachine.findRoot() else {
                throw ValidationError(
                    "cannot find scripts/kernel-build.sh above the working directory or the executable; run from the ptshare checkout or set PTSHARE_ROOT"
                )
            }
            let k: VMOptions.Kernel =
                ["stock", "patched", "patched-debug"].contains(kernel) ? .flavour(kernel) : .image(kernel)
            return VMOptions(
                kernel: k, memoryBytes: mem, cpus: cpus, timeoutSeconds: timeout,
                outDirectory: out ?? "ptshare-results/vm-\(timestampForPath())", accel: accel, hugepages: hugepages,
                pmemBytes: pmemBytes, guestArguments: guestArguments, root: root, numaNodes: numa)
        }

        public mutating func validate() throws { _ = try options() }

        public func run() throws {
            let o = try options()
            let r: VMResult
            do {
                r = try VirtualMachine.run(o) { printStderr("ptshare vm: " + $0) }
            } catch {
                // Only a guest that ran has output of this run; earlier errors leave the folder's old files.
                switch error {
                case .timeout, .noReport, .kernelProblems, .qemuFailed:
                    if let text = try? ProcFS.read(o.outDirectory + "/output.txt") { print(text, terminator: "") }
                default: break
                }
                printError(error.description)
                printStderr("ptshare vm: results (incomplete) in \(o.outDirectory)")
                throw ExitCode(error.exitCode)
            }
            // The guest command's own output (KTAP for the suite) belongs on our stdout.
            if let text = try? ProcFS.read(o.outDirectory + "/output.txt") { print(text, terminator: "") }
            printStderr(
                "ptshare vm: \(r.accel), boot \(r.bootSeconds.map { formatFixed($0, decimals: 1) + " s" } ?? "n/a"), "
                    + "total \(formatFixed(r.totalSeconds, decimals: 1)) s; guest exit status \(r.guestExitStatus); "
                    + "results in \(o.outDirectory)")
            if r.guestExitStatus != 0 { throw ExitCode(r.guestExitStatus) }
        }
    }
}
