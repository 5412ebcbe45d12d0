import CPTShare
import Glibc

/// Boots the test kernel in QEMU with the ptshare initramfs, runs one ptshare command in the
/// guest, and brings back its output, results and exit status.
public struct VMOptions: Sendable {
    public enum Kernel: Sendable, Equatable, CustomStringConvertible {
        /// Built (or reused) by scripts/kernel-build.sh: stock, patched, patched-debug.
        case flavour(String)
        case image(String)

        public var description: String {
            switch self {
            case .flavour(let f): return f
            case .image(let p): return p
            }
        }
    }

    public enum Accel: String, Sendable, CaseIterable {
        /// KVM when a probe boot with it reaches init, else TCG.
        case auto
        case kvm
        case tcg
    }

    public var kernel: Kernel
    public var memoryBytes: UInt64
    public var cpus: Int
    public var timeoutSeconds: Int
    public var outDirectory: String
    public var accel: Accel
    /// 2 MiB huge pages reserved at boot (hugepages= on the kernel command line).
    public var hugepages: Int
    /// Guest RAM handed to the legacy pmem driver as /dev/pmem0 (memmap= on the kernel command
    /// line); 0 for none.
    public var pmemBytes: UInt64
    public var guestArguments: [String]
    /// The checkout that holds scripts/.
    public var root: String
    /// NUMA nodes of the guest, memory and CPUs split evenly (ACPI SRAT from QEMU); 1 for none.
    public var numaNodes: Int

    public init(
        kernel: Kernel, memoryBytes: UInt64, cpus: Int, timeoutSeconds: Int, outDirectory: String, accel: Accel,
        hugepages: Int, pmemBytes: UInt64, guestArguments: [String], root: String, numaNodes: Int = 1
    ) {
        self.numaNodes = numaNodes
        self.kernel = kernel
        self.memoryBytes = memoryBytes
        self.cpus = cpus
        self.timeoutSeconds = timeoutSeconds
        self.outDirectory = outDirectory
        self.accel = accel
        self.hugepages = hugepages
        self.pmemBytes = pmemBytes
        self.guestArguments = guestArguments
        self.root = root
    }
}

public struct VMResult: Sendable {
    public var guestExitStatus: Int32
    public var accel: String
    public var accelNote: String
    public var bootSeconds: Double?
    public var totalSeconds: Double
    public var kernelImage: String
    public var consoleLog: String
}

public enum VMError: Error, CustomStringConvertible, Sendable {
    case notFound(String)
    case badArgument(String)
    case scriptFailed(script: String, status: String)
    case system(SystemCallError)
    case qemuFailed(status: String, log: String, tail: String)
    case timeout(seconds: Int, console: String, tail: String)
    case noReport(console: String, tail: String)
    case kernelProblems(lines: [String], console: String, guestStatus: Int32?)
    case interrupted(signal: Int32)

    public var description: String {
        switch self {
        case .notFound(let s), .badArgument(let s): return s
        case .scriptFailed(let script, let status): return "\(script) \(status); its messages are above"
        case .system(let e): return e.description
        case .qemuFailed(let status, let log, let tail):
            return "QEMU \(status) before the guest reported; \(log):\n\(tail)"
        case .timeout(let s, let console, let tail):
            return "the guest did not finish within \(s) s; QEMU killed. Console log \(console) ends:\n\(tail)"
        case .noReport(let console, let tail):
            return "the guest powered off without reporting an exit status; console log \(console) ends:\n\(tail)"
        case .kernelProblems(let lines, let console, let status):
            return "the kernel reported problems (guest exit status \(status.map(String.init) ?? "none")); "
                + "console log \(console):\n" + lines.joined(separator: "\n")
        case .interrupted(let sig): return "interrupted by signal \(sig); QEMU killed"
        }
    }

    /// 1 when the kernel misbehaved (a test failure), 128+signal when interrupted, else 3.
    public var exitCode: Int32 {
        switch self {
        case .kernelProblems: return 1
        case .interrupted(let sig): return 128 + sig
        default: return 3
        }
    }
}

public enum VirtualMachine {
    public static let qemu = "qemu-system-x86_64"

    /// The checkout holding scripts/kernel-build.sh: $PTSHARE_ROOT, else upwards from the
    /// working directory, else upwards from the executable.
    public static func findRoot() -> String? {
        if let r = getenv("PTSHARE_ROOT") { return String(cString: r) }
        var starts: [String] = []
        var buf = [CChar](repeating: 0, count: 4096)
        if getcwd(&buf, buf.count) != nil { starts.append(String(cString: buf)) }
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 {
            buf[n] = 0
            starts.append(String(cString: buf))
        }
        for start in starts {
            var dir = start
            while !dir.isEmpty && dir != "/" {
                if access(dir + "/scripts/kernel-build.sh", X_OK) == 0 { return dir }
                dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)])
            }
        }
        return nil
    }

    /// Guest-physical start of the pmem range. QEMU's pc machine maps all of a guest's memory
    /// from 0 when it has less than 3.5G, else the first 3G there and the rest above 4G, so 1G
    /// is RAM in every guest that passes checkMemory. Below it sits the kernel (loaded at 16M);
    /// above it QEMU puts the initramfs (under the lower of 2G, the bzImage's initrd_addr_max,
    /// and the top of low RAM) and the ACPI tables (at that top), which the range must not
    /// cover: the kernel would see them in memory that is no longer RAM.
    public static let pmemOffset: UInt64 = 1 << 30
    /// Room left between the range's end and where the initramfs and ACPI tables go.
    public static let pmemHeadroom: UInt64 = 256 << 20

    /// The kernel command line of a run (or of the KVM probe boot). `memmap=SIZE!OFFSET` marks
    /// that RAM as e820 persistent memory, which CONFIG_X86_PMEM_LEGACY turns into /dev/pmem0.
    public static func kernelCommandLine(hugepages: Int, pmemBytes: UInt64, bootProbe: Bool) -> String {
        var parts = ["console=ttyS0", "panic=-1", "hugepages=\(hugepages)"]
        if pmemBytes > 0 { parts.append("memmap=\(ByteSize(pmemBytes))!\(ByteSize(pmemOffset))") }
        if bootProbe { parts.append("ptshare.mode=bootprobe") }
        return parts.joined(separator: " ")
    }

    /// The guest memory must hold the huge pages, the pmem range and 512M for the kernel and
    /// the workers, and the range must lie in low RAM clear of the initramfs (see pmemOffset).
    public static func checkMemory(_ o: VMOptions) throws(VMError) {
        let huge = UInt64(o.hugepages) * Geometry.pmdSize
        let minimum = huge + o.pmemBytes + (512 << 20)
        if o.memoryBytes < minimum {
            let pmem = o.pmemBytes > 0 ? ", \(ByteSize(o.pmemBytes)) of pmem" : ""
            throw .badArgument(
                "--memory \(ByteSize(o.memoryBytes)): too little for \(o.hugepages) huge pages (\(ByteSize(huge)))\(pmem) "
                    + "plus 512M for the kernel and the workers; use --memory \(ByteSize(minimum)) or more, or fewer --hugepages"
                    + (o.pmemBytes > 0 ? " or a smaller --pmem" : ""))
        }
        guard o.pmemBytes > 0 else { return }
        let twoG: UInt64 = 2 << 30
        let lowTop = o.memoryBytes < (3584 << 20) ? o.memoryBytes : 3 << 30
        let ceiling = min(lowTop, twoG)
        let end = pmemOffset + o.pmemBytes + pmemHeadroom
        guard end > ceiling else { return }
        var fixes: [String] = []
        if ceiling >= pmemOffset + pmemHeadroom + Geometry.pmdSize {
            let room = ceiling - pmemOffset - pmemHeadroom
            fixes.append("--pmem \(ByteSize(room / Geometry.pmdSize * Geometry.pmdSize)) or less")
        }
        if end <= twoG { fixes.append("--memory \(ByteSize(end)) or more") }
        fixes.append("--pmem 0 for none")
        throw .badArgument(
            "--pmem \(ByteSize(o.pmemBytes)): the pmem range starts at guest-physical \(ByteSize(pmemOffset)) and must end "
                + "\(ByteSize(pmemHeadroom)) below \(ByteSize(ceiling)), under which QEMU loads the initramfs with --memory \(ByteSize(o.memoryBytes)); use "
                + fixes.joined(separator: ", or "))
    }

    public static func qemuArguments(
        kernel: String, initramfs: String, accel: VMOptions.Accel, cpus: Int, memoryBytes: UInt64,
        commandLine: String, console: String, share: String?, numaNodes: Int = 1
    ) -> [String] {
        var a = [qemu, "-machine", "pc", "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none"]
        a += accel == .kvm ? ["-accel", "kvm", "-cpu", "max"] : ["-accel", "tcg,thread=multi", "-cpu", "max"]
        a += ["-smp", smp(cpus: cpus, numaNodes: numaNodes), "-m", "\(memoryBytes >> 20)M"]
        a += numaArguments(nodes: numaNodes, cpus: cpus, memoryMiB: memoryBytes >> 20)
        a += ["-kernel", kernel, "-initrd", initramfs, "-append", commandLine, "-serial", "file:\(console)"]
        if let share {
            a += ["-virtfs", "local,path=\(share),mount_tag=ptshare,security_model=none,id=ptshare"]
        }
        return a
    }

    /// `-smp`: with NUMA nodes, one socket per node (or per CPU when there are fewer CPUs than
    /// nodes). QEMU's default puts every CPU in one socket, and a last-level cache that spans
    /// two nodes makes the guest's topology check warn at boot (smpboot.c topology_sane()).
    static func smp(cpus: Int, numaNodes: Int) -> String {
        guard numaNodes > 1 else { return "\(cpus)" }
        let sockets = cpus % numaNodes == 0 ? numaNodes : cpus
        return "\(cpus),sockets=\(sockets),cores=\(cpus / sockets),threads=1"
    }

    /// `-numa` nodes for QEMU's ACPI SRAT: node i gets an even share of the memory (in MiB, the
    /// last one the rest) and of the CPUs (none when there are fewer CPUs than nodes: a
    /// memory-only node). Nothing for one node.
    static func numaArguments(nodes: Int, cpus: Int, memoryMiB: UInt64) -> [String] {
        guard nodes > 1 else { return [] }
        var a: [String] = []
        let share = memoryMiB / UInt64(nodes)
        for i in 0..<nodes {
            let size = i == nodes - 1 ? memoryMiB - share * UInt64(nodes - 1) : share
            let first = i * cpus / nodes
            let end = (i + 1) * cpus / nodes
            let cpuList = end <= first ? "" : end - first == 1 ? ",cpus=\(first)" : ",cpus=\(first)-\(end - 1)"
            a += ["-object", "memory-backend-ram,id=ptshare-mem\(i),size=\(size)M"]
            a += ["-numa", "node,nodeid=\(i)\(cpuList),memdev=ptshare-mem\(i)"]
        }
        return a
    }

    public static func run(_ o: VMOptions, log: (String) -> Void) throws(VMError) -> VMResult {
        let start = Sys.monotonicNanoseconds()
        // Cheap input errors first, before QEMU is looked for or a kernel build starts.
        for a in o.guestArguments where a.contains("\n") {
            throw .badArgument(
                "guest argument \"\(a)\" contains a newline, which the guest's argument file cannot carry")
        }
        try checkMemory(o)
        if case .image = o.kernel { _ = try kernelImage(o) }
        guard onPath(qemu) else {
            throw .notFound("\(qemu) not found; install it: apt-get install -y qemu-system-x86")
        }
        do { try Sys.installStopHandlers() } catch { throw .system(error) }
        do { try makeDirectories(o.outDirectory) } catch { throw .system(error) }
        let out = absolute(o.outDirectory)

        let kernel = try kernelImage(o)
        log("kernel: \(kernel)")
        // The probe module is built for this kernel when its build tree sits beside it.
        let kernelDir = String(kernel[..<(kernel.lastIndex(of: "/") ?? kernel.startIndex)])
        var module: [String] = []
        if access(kernelDir + "/build/.config", R_OK) == 0 {
            module = [try script(o.root, "scripts/module-build.sh", [kernelDir])]
            log("probe module: \(module[0])")
            // The series' kselftest, when the kernel's source tree has it.
            let selftest = try script(o.root, "scripts/selftest-build.sh", [kernelDir])
            if selftest != "none" {
                module = ["--selftest", selftest] + module
                log("selftest: \(selftest)")
            }
        } else {
            log("probe module: none (no kernel build tree beside \(kernel)); tables tests will SKIP")
        }
        let initramfs = try script(o.root, "scripts/initramfs.sh", module)
        log("initramfs: \(initramfs)")

        // What to run, for the guest's init; stale results must not pass for new ones.
        for f in ["exit-status", "output.txt", "console.log", "qemu.log"] { _ = unlink(out + "/" + f) }
        do {
            try writeFileAtomically(out + "/.ptshare-args", Array(o.guestArguments.map { $0 + "\n" }.joined().utf8))
        } catch { throw .system(error) }

        var accel = o.accel
        var note = "requested"
        if o.accel == .auto {
            (accel, note) = probeKVM(kernel: kernel, initramfs: initramfs, out: out)
            if Sys.stopSignal != 0 { throw .interrupted(signal: Sys.stopSignal) }
        }
        log("accelerator: \(accel.rawValue) (\(note))")
        // The guest's init exports it as $PTSHARE_ACCEL: `bench` records what its times ran under.
        do { try writeFileAtomically(out + "/.ptshare-accel", Array((accel.rawValue + "\n").utf8)) } catch {
            throw .system(error)
        }

        let console = out + "/console.log"
        let args = qemuArguments(
            kernel: kernel, initramfs: initramfs, accel: accel, cpus: o.cpus, memoryBytes: o.memoryBytes,
            commandLine: kernelCommandLine(hugepages: o.hugepages, pmemBytes: o.pmemBytes, bootProbe: false),
            console: console, share: out, numaNodes: o.numaNodes)
        log("booting: \(args.joined(separator: " "))")
        let bootStart = Sys.monotonicNanoseconds()
        let pid: pid_t
        do { pid = try Sys.spawn(args, stdout: out + "/qemu.log", stderr: out + "/qemu.log", ownGroup: true) } catch {
            throw .system(error)
        }
        var bootSeconds: Double?
        let status = try waitFor(pid, timeoutSeconds: o.timeoutSeconds) {
            if bootSeconds == nil, let text = try? ProcFS.read(console), text.contains("ptshare-init: kernel") {
                bootSeconds = Double(Sys.monotonicNanoseconds() - bootStart) / 1e9
                log("booted to init in \(formatFixed(bootSeconds!, decimals: 1)) s")
            }
        }
        let consoleText = (try? ProcFS.read(console)) ?? ""
        guard let status else {
            throw .timeout(seconds: o.timeoutSeconds, console: console, tail: ConsoleScan.tail(consoleText))
        }
        let guestStatus = (try? ProcFS.read(out + "/exit-status")).flatMap { Int32($0.trimmingWhitespace()) }
        let problems = ConsoleScan.problems(in: consoleText)
        if !problems.isEmpty {
            throw .kernelProblems(
                lines: problems.map { "\(console):\($0.line): \($0.text)" }, console: console, guestStatus: guestStatus)
        }
        guard let guestStatus else {
            if !status.succeeded {
                let q = (try? ProcFS.read(out + "/qemu.log")) ?? ""
                throw .qemuFailed(
                    status: status.description, log: out + "/qemu.log", tail: ConsoleScan.tail(q + consoleText))
            }
            throw .noReport(console: console, tail: ConsoleScan.tail(consoleText))
        }
        return VMResult(
            guestExitStatus: guestStatus, accel: accel.rawValue, accelNote: note, bootSeconds: bootSeconds,
            totalSeconds: Double(Sys.monotonicNanoseconds() - start) / 1e9, kernelImage: kernel, consoleLog: console)
    }

    /// Boots once with KVM and keeps it only if the guest reaches init quickly.
    static func probeKVM(kernel: String, initramfs: String, out: String) -> (VMOptions.Accel, String) {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { return (.tcg, "/dev/kvm is not usable") }
        let console = out + "/kvm-probe.log"
        let args = qemuArguments(
            kernel: kernel, initramfs: initramfs, accel: .kvm, cpus: 1, memoryBytes: 256 << 20,
            commandLine: kernelCommandLine(hugepages: 0, pmemBytes: 0, bootProbe: true), console: console, share: nil)
        let t0 = Sys.monotonicNanoseconds()
        guard
            let pid = try? Sys.spawn(
                args, stdout: out + "/kvm-probe.qemu.log", stderr: out + "/kvm-probe.qemu.log", ownGroup: true)
        else { return (.tcg, "KVM probe could not start QEMU") }
        var booted = false
        let status = try? waitFor(pid, timeoutSeconds: 20) {
            if !booted, let t = try? ProcFS.read(console), t.contains("PTSHARE-BOOT-OK") { booted = true }
        }
        let secs = formatFixed(Double(Sys.monotonicNanoseconds() - t0) / 1e9, decimals: 1)
        if booted { return (.kvm, "KVM probe boot reached init in \(secs) s") }
        let why = (status ?? nil).map { "QEMU \($0.description)" } ?? "no init within 20 s"
        return (.tcg, "KVM probe boot failed (\(why), see \(console)); falling back to TCG")
    }

    /// How a child ended, judged from its wait status by the wait macros (not from text).
    struct ChildExit: CustomStringConvertible {
        let status: Int32
        var succeeded: Bool { ptshare_wifexited(status) != 0 && ptshare_wexitstatus(status) == 0 }
        var description: String { WorkerPool.describe(status: status) }
    }

    /// Waits for a child; `tick` runs every 100 ms. Returns how it ended, or nil after the
    /// timeout (the child is then killed and reaped). A stop signal kills it and throws.
    static func waitFor(_ pid: pid_t, timeoutSeconds: Int, tick: () -> Void) throws(VMError) -> ChildExit? {
        let deadline = Sys.monotonicNanoseconds() + UInt64(timeoutSeconds) * 1_000_000_000
        while true {
            var st: Int32 = 0
            let r = Glibc.waitpid(pid, &st, WNOHANG)
            if r == pid { return ChildExit(status: st) }
            tick()
            if Sys.stopSignal != 0 {
                signalGroup(pid, SIGKILL)
                _ = Glibc.waitpid(pid, &st, 0)
                throw .interrupted(signal: Sys.stopSignal)
            }
            if Sys.monotonicNanoseconds() > deadline {
                signalGroup(pid, SIGTERM)
                Sys.sleep(milliseconds: 2000)
                signalGroup(pid, SIGKILL)
                _ = Glibc.waitpid(pid, &st, 0)
                return nil
            }
            Sys.sleep(milliseconds: 100)
        }
    }

    /// The child was started as a group leader (Sys.spawn ownGroup): signal everything it
    /// started, and the child itself in case it left the group.
    static func signalGroup(_ pid: pid_t, _ sig: Int32) {
        kill(-pid, sig)
        kill(pid, sig)
    }

    static func kernelImage(_ o: VMOptions) throws(VMError) -> String {
        switch o.kernel {
        case .image(let path):
            var st = stat()
            guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                throw .notFound("--kernel \(path): no such file (expected stock, patched, patched-debug or a bzImage)")
            }
            try checkConfig(besides: absolute(path), root: o.root)
            return absolute(path)
        case .flavour(let f):
            return try script(o.root, "scripts/kernel-build.sh", [f]) + "/bzImage"
        }
    }

    /// A kernel given by path is checked against kmod/ptshare.config when its config sits beside
    /// it (`config`, as the build cache keeps it, or `.config`); a missing option is an error.
    static func checkConfig(besides image: String, root: String) throws(VMError) {
        let dir = String(image[..<(image.lastIndex(of: "/") ?? image.startIndex)])
        guard
            let (text, path) = ["config", ".config"].lazy.compactMap({ name -> (String, String)? in
                (try? ProcFS.read(dir + "/" + name)).map { ($0, dir + "/" + name) }
            }).first
        else {
            printStderr("ptshare vm: note: no config beside \(image); its options are not checked before boot")
            return
        }
        guard let fragment = try? ProcFS.read(root + "/kmod/ptshare.config") else {
            throw .notFound("\(root)/kmod/ptshare.config not readable")
        }
        let config: KernelConfig
        do { config = try KernelConfig.parse(text, source: path) } catch {
            throw .badArgument("--kernel: \(error)")
        }
        let missing = FragmentCheck.missing(fragment: fragment, config: config)
        if !missing.isEmpty {
            throw .badArgument(
                "--kernel \(image): \(path) lacks what the guest needs (kmod/ptshare.config):\n"
                    + missing.joined(separator: "\n"))
        }
    }

    /// Runs one of the project's scripts; its stderr goes to ours, the last stdout line is its answer.
    static func script(_ root: String, _ name: String, _ args: [String]) throws(VMError) -> String {
        // mkstemp: a predictable name in /tmp written as root would follow a planted symlink.
        var template = Array("/tmp/ptshare-script.XXXXXX".utf8CString)
        let tfd = mkstemp(&template)
        guard tfd >= 0 else { throw .system(SystemCallError("mkstemp", errno: errno, path: "/tmp")) }
        Sys.close(tfd)
        let outFile = String(cString: template)
        defer { _ = unlink(outFile) }
        let pid: pid_t
        do {
            pid = try Sys.spawn(["bash", root + "/" + name] + args, stdout: outFile, stderr: nil, ownGroup: true)
        } catch {
            throw .system(error)
        }
        guard let status = try waitFor(pid, timeoutSeconds: 4 * 3600, tick: {}) else {
            throw .scriptFailed(script: name, status: "did not finish in 4 hours")
        }
        guard status.succeeded else { throw .scriptFailed(script: name, status: status.description) }
        let text = (try? ProcFS.read(outFile)) ?? ""
        guard let last = text.split(separator: "\n").last else {
            throw .scriptFailed(script: name, status: "printed no path")
        }
        return String(last)
    }

    static func onPath(_ program: String) -> Bool {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(program)", X_OK) == 0 }
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return path }
        return String(cString: buf) + "/" + path
    }
}
