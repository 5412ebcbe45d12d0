import CPTShare
import Glibc

/// The default verification suite: stable test names for CI and for tools that read KTAP.
public struct SuiteOptions: Sendable {
    /// What the kernel is expected to say about MAP_SHARED_PT.
    public enum Expectation: String, Sendable, CaseIterable {
        /// Whatever the probe says, as long as `run --share pt` agrees with it.
        case auto
        case supported
        case unsupported
    }

    public var workers: Int
    public var memfdSize: UInt64
    public var hugetlbSize: UInt64
    public var tolerance: Double
    /// Upper bound of the harness's own page tables per worker.
    public var controlBoundBytes: Int64
    /// Least savings of the aligned hugetlb run against the skewed one.
    public var minimumHugetlbSavings: Double
    public var expectSharedPT: Expectation
    public var mapSharedPTValue: UInt32
    public var outDirectory: String
    /// Run only these tests (all when empty).
    public var only: [String]
    /// The probe module's file, for kmod.badinput's unload/load cycles.
    public var modulePath: String = "/lib/modules/ptshare_probe.ko"
    public var moduleCycles: Int = 1000
    /// Size of the sharedpt.*.savings and sharedpt.memfd.tables scenarios (a multiple of 2 MiB).
    public var sharedPTSize: UInt64 = 256 << 20
    /// Least share, of the savings the model gives a `--share pt` run against its unshared
    /// baseline (every PTE table shared, PMD tables per worker), that it must measure.
    public var minimumSharedPTSavings: Double = 0.95
    /// How long sharedpt.stress runs.
    public var stressSeconds: Int = 60
    /// How far PageTables may stay above its reading before a sharedpt.* test once the test is
    /// over (and in sharedpt.teardown.no_leak, after each scenario).
    public var teardownNoiseBytes: Int64 = LeakCheck.settleNoiseBytes
    /// How the sharedpt.* tests ask the kernel whether it takes the flag value. The harness's
    /// own tests put a stand-in here that answers yes, so that with a flag value of 0 the
    /// bodies run on plain MAP_SHARED_VALIDATE / MAP_SHARED mappings.
    var sharedPTProbe: @Sendable (_ value: UInt32) throws(RunError) -> KernelFacts.SharedPT = {
        v throws(RunError) in try KernelProbe.mapSharedPT(value: v)
    }

    public init(
        workers: Int = 200, memfdSize: UInt64 = 64 << 20, hugetlbSize: UInt64 = 1 << 30, tolerance: Double = 0.10,
        controlBoundBytes: Int64 = 80 << 10, minimumHugetlbSavings: Double = 0.90, expectSharedPT: Expectation = .auto,
        mapSharedPTValue: UInt32 = MapSharedPT.defaultValue, outDirectory: String, only: [String] = []
    ) {
        self.workers = workers
        self.memfdSize = memfdSize
        self.hugetlbSize = hugetlbSize
        self.tolerance = tolerance
        self.controlBoundBytes = controlBoundBytes
        self.minimumHugetlbSavings = minimumHugetlbSavings
        self.expectSharedPT = expectSharedPT
        self.mapSharedPTValue = mapSharedPTValue
        self.outDirectory = outDirectory
        self.only = only
    }
}

extension SuiteOptions {
    /// The rules for the sharedpt.* options; messages name the flag, the value and what is allowed.
    public func validate() throws(ValidationMessage) {
        guard sharedPTSize > 0 && sharedPTSize % Geometry.pmdSize == 0 else {
            throw ValidationMessage(
                "--shared-pt-size \(ByteSize(sharedPTSize)): must be a non-zero multiple of 2M (MAP_SHARED_PT maps whole PTE tables)"
            )
        }
        guard stressSeconds >= 1 && stressSeconds <= 86400 else {
            throw ValidationMessage("--stress-seconds \(stressSeconds): must be between 1 and 86400")
        }
        guard minimumSharedPTSavings > 0 && minimumSharedPTSavings < 1 else {
            throw ValidationMessage(
                "minimum MAP_SHARED_PT savings \(minimumSharedPTSavings): must be between 0 and 1 (0.95 = 95 %)")
        }
    }
}

public enum Suite {
    public static let tests: [(name: String, run: @Sendable (SuiteOptions) -> KTAPResult)] =
        [
            ("probe.map_shared_pt", probeMapSharedPT),
            ("memfd.baseline.model", memfdBaseline),
            ("hugetlb.pmd_share.savings", hugetlbPMDShare),
            ("control.overhead", controlOverhead),
            ("tables.memfd.baseline.distinct", tablesMemfd),
            ("tables.hugetlb.pmd_shared", tablesHugetlb),
            ("dax.baseline.model", daxBaseline),
            ("kmod.badinput", kmodBadInput),
            ("numa.pagetables.per_node", numaPageTablesPerNode),
        ] + sharedPTTests

    public static var testNames: [String] { tests.map(\.name) }

    /// Runs the selected tests in order, handing each KTAP chunk to `emit` as soon as it is known.
    public static func run(_ o: SuiteOptions, emit: (String) -> Void) -> [KTAPResult] {
        let selected = tests.filter { o.only.isEmpty || o.only.contains($0.name) }
        emit(KTAP.header(count: selected.count))
        // SIGPIPE ignored before the first test: a write to a sharer that died is an EPIPE that
        // test reports, not the end of the suite (and of its KTAP totals). Only SIGPIPE: the
        // stop signals still end a suite run from a terminal.
        var ignored: SystemCallError?
        do { try Sys.ignoreSIGPIPE() } catch { ignored = error }
        var results: [KTAPResult] = []
        for (i, t) in selected.enumerated() {
            if let e = ignored {
                let r = KTAPResult(name: t.name, status: .fail, diagnostics: ["\(t.name): not run: \(e)"])
                results.append(r)
                emit(KTAP.result(r, number: i + 1))
                continue
            }
            let r = t.name.hasPrefix("sharedpt.") ? withTeardownCheck(t.name, o) { t.run(o) } : t.run(o)
            results.append(r)
            emit(KTAP.result(r, number: i + 1))
        }
        emit(KTAP.totals(results))
        return results
    }

    /// A sharedpt.* test between two settled PageTables readings: a kernel that leaks a shared
    /// table passes every check inside the test, and only PageTables afterwards shows it. Where
    /// the kernel refuses the flag the test runs nothing, so nothing is measured.
    static func withTeardownCheck(_ name: String, _ o: SuiteOptions, _ body: () -> KTAPResult) -> KTAPResult {
        if needsSharedPT(name, o) != nil { return body() }
        let before: LeakCheck.Reading
        do { before = try LeakCheck.read() } catch {
            return KTAPResult(
                name: name, status: .fail, diagnostics: ["\(name): PageTables before the test: \(error)"])
        }
        let r = body()
        do {
            return teardownVerdict(r, LeakCheck.judge(before, try LeakCheck.read(), noise: o.teardownNoiseBytes))
        } catch {
            return teardownVerdict(r, nil, error: "\(error)")
        }
    }

    /// Pure: a test's result with the teardown's outcome folded in. A leak (or a reading that
    /// could not be taken) turns any result into FAIL with the line saying why; a reading
    /// that did not settle is noted and leaves the result as it was.
    static func teardownVerdict(_ r: KTAPResult, _ outcome: LeakCheck.Outcome?, error: String? = nil) -> KTAPResult {
        var out = r
        guard let outcome else {
            out.diagnostics.append("\(r.name): PageTables after the test: \(error ?? "not read") -- FAILED")
            out.status = .fail
            return out
        }
        switch outcome.status {
        case .fail:
            out.diagnostics.append("\(r.name): teardown: \(outcome.line) -- FAILED")
            out.status = .fail
        case .pass, .skip:
            out.diagnostics.append("\(r.name): teardown: \(outcome.line)")
        }
        return out
    }

    // MARK: - Tests

    static func probeMapSharedPT(_ o: SuiteOptions) -> KTAPResult {
        let name = "probe.map_shared_pt"
        let probe: KernelFacts.SharedPT
        do { probe = try KernelProbe.mapSharedPT(value: o.mapSharedPTValue) } catch {
            return KTAPResult(name: name, status: .fail, diagnostics: ["probe failed: \(error)"])
        }
        return judgeProbe(name, expectation: o.expectSharedPT, release: release(), probe: probe) {
            let s = Scenario(
                backing: .memfd, size: 4 << 20, workers: 2, share: .pt, touch: .populate, address: .same,
                mapSharedPTValue: o.mapSharedPTValue, tolerance: o.tolerance)
            do {
                let r = try Runner.run(RunOptions(scenario: s, smapsWorkers: 2))
                return .completed(r, unsaved: save(r, o, "\(name).json"))
            } catch let RunError.sharedPTUnsupported(value, errno, release) {
                return .refused("\(RunError.sharedPTUnsupported(value: value, errno: errno, release: release))")
            } catch {
                return .failed("\(error)")
            }
        }
    }

    static func memfdBaseline(_ o: SuiteOptions) -> KTAPResult {
        let name = "memfd.baseline.model"
        let s = Scenario(
            backing: .memfd, size: o.memfdSize, workers: o.workers, touch: .populate, tolerance: o.tolerance)
        return verdictTest(name, o, s) { _ in nil }
    }

    static func controlOverhead(_ o: SuiteOptions) -> KTAPResult {
        let name = "control.overhead"
        let s = Scenario(backing: .memfd, size: o.memfdSize, workers: o.workers, touch: .none, tolerance: o.tolerance)
        return verdictTest(name, o, s, tables: .off) { r in controlOverheadLine(name, o, r) }
    }

    /// N workers × the hugetlb size on a 2 MiB hugetlbfs at one 1 GiB-aligned address (same file
    /// offset), or the KTAP result (skip or fail) saying why it cannot run here.
    static func alignedHugetlbScenario(_ name: String, _ o: SuiteOptions) -> Result<Scenario, KTAPResultBox> {
        let page = Geometry.pmdSize
        let mounts: [MountEntry]
        do { mounts = try ProcFS.mounts() } catch {
            return .failure(.init(KTAPResult(name: name, status: .fail, diagnostics: ["\(name): \(error)"])))
        }
        guard
            let mount = mounts.first(where: {
                $0.fsType == "hugetlbfs" && ($0.option("pagesize").map { $0 == "2M" } ?? true)
            })
        else {
            return .failure(
                .init(
                    KTAPResult(
                        name: name,
                        status: .skip("no hugetlbfs with 2M pages is mounted (mount -t hugetlbfs none /dev/hugepages)"))
                ))
        }
        let sharing = KernelProbe.pmdSharing(machine: machine())
        guard let enabled = sharing.enabled else {
            return .failure(
                .init(
                    KTAPResult(
                        name: name,
                        status: .skip("cannot tell whether hugetlb PMD sharing is compiled in: \(sharing.basis)"))))
        }
        guard enabled else {
            return .failure(
                .init(KTAPResult(name: name, status: .skip("mainline PMD sharing is compiled out: \(sharing.basis)"))))
        }
        // The same check run's preflight makes; short pages are a SKIP here, with its message.
        do {
            try BackingFile.checkHugePages(
                pool: "/sys/kernel/mm/hugepages/hugepages-2048kB", pageSize: page, size: o.hugetlbSize)
        } catch {
            if case .preflight(let why) = error { return .failure(.init(KTAPResult(name: name, status: .skip(why)))) }
            return .failure(.init(KTAPResult(name: name, status: .fail, diagnostics: ["\(name): \(error)"])))
        }
        return .success(
            Scenario(
                backing: .hugetlbfs, path: mount.mountPoint, size: o.hugetlbSize, workers: o.workers,
                touch: .populateWrite, address: .same, tolerance: o.tolerance))
    }

    /// For the tests that need kmod/ptshare_probe: nil when it is usable; otherwise SKIP when this
    /// system has no module to load, FAIL when one was shipped (the guest's) but is not loaded or
    /// speaks another interface.
    static func needsProbeModule(_ name: String, _ o: SuiteOptions) -> KTAPResult? {
        switch TableProbe.state() {
        case .ready: return nil
        case .incompatible(let v):
            return KTAPResult(
                name: name, status: .fail,
                diagnostics: ["\(name): ptshare_probe speaks interface \(v), this ptshare \(PTSHARE_PROBE_VERSION)"])
        case .notLoaded:
            if access(o.modulePath, R_OK) == 0 {
                return KTAPResult(
                    name: name, status: .fail,
                    diagnostics: ["\(name): \(o.modulePath) is here but ptshare_probe is not loaded (did insmod fail?)"]
                )
            }
            return KTAPResult(
                name: name, status: .skip("the ptshare_probe module is not loaded (\(TableProbe.directory))"))
        }
    }

    static func hugetlbPMDShare(_ o: SuiteOptions) -> KTAPResult {
        let name = "hugetlb.pmd_share.savings"
        let page = Geometry.pmdSize
        let aligned: Scenario
        switch alignedHugetlbScenario(name, o) {
        case .success(let s): aligned = s
        case .failure(let box): return box.result
        }
        var skewed = aligned
        skewed.address = .sameSkewed(page)
        let a: RunReport
        let u: RunReport
        do {
            u = try Runner.run(RunOptions(scenario: skewed))
            a = try Runner.run(RunOptions(scenario: aligned))
        } catch {
            return KTAPResult(name: name, status: .fail, diagnostics: ["\(name): run failed: \(error)"])
        }
        let unsaved = [save(u, o, "\(name).skewed.json"), save(a, o, "\(name).json")].compactMap { $0 }
        return judgeHugetlbPMDShare(name, o, aligned: a, skewed: u, unsaved: unsaved)
    }

    static func tablesMemfd(_ o: SuiteOptions) -> KTAPResult {
        let name = "tables.memfd.baseline.distinct"
        if let r = needsProbeModule(name, o) { return r }
        let s = Scenario(
            backing: .memfd, size: o.memfdSize, workers: o.workers, touch: .populate, tolerance: o.tolerance)
        return verdictTest(name, o, s, tables: .on) { r in tablesLine(name, r) }
    }

    static func tablesHugetlb(_ o: SuiteOptions) -> KTAPResult {
        let name = "tables.hugetlb.pmd_shared"
        if let r = needsProbeModule(name, o) { return r }
        let s: Scenario
        switch alignedHugetlbScenario(name, o) {
        case .success(let a): s = a
        case .failure(let box): return box.result
        }
        return verdictTest(name, o, s, tables: .on) { r in hugetlbTablesLine(name, o, r) }
    }

    static func tablesLine(_ name: String, _ r: RunReport) -> Extra {
        guard let t = r.tables else { return .fail("\(name): no table census in the report") }
        let line =
            "\(name): \(t.distinctPteTables) distinct PTE tables (model \(t.expectedDistinctPteTables)), "
            + "\(t.distinctPmdTables) distinct PMD tables (model \(t.expectedDistinctPmdTables)); "
            + "query of \(t.workersQueried) workers took \(t.queryMilliseconds) ms"
        return t.matchesModel ? .pass(line) : .fail(line)
    }

    /// The module's documented errors, then unload/load/query cycles with kernel memory measured
    /// around them, and the kernel log checked for BUG/WARNING/Oops.
    static func kmodBadInput(_ o: SuiteOptions) -> KTAPResult {
        let name = "kmod.badinput"
        if let r = needsProbeModule(name, o) { return r }
        let log = KernelLog.open()
        var diag: [String] = []
        var ok = true
        let me = getpid()
        let page = Suite.touchedPage()
        guard let unusedPid = Suite.unusedPid() else {
            return KTAPResult(name: name, status: .fail, diagnostics: ["\(name): no unused pid found below pid_max"])
        }
        var cases: [(String, Int32, (TableProbe) throws(SystemCallError) -> Void)] = [
            (
                "unknown pid \(unusedPid)", ESRCH,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: unusedPid, start: page, end: page + 4096)
                }
            ),
            (
                "empty range", EINVAL,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: page, end: page, pteSlots: 1, pmdSlots: 1)
                }
            ),
            (
                "inverted range", EINVAL,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: page + 4096, end: page, pteSlots: 1, pmdSlots: 1)
                }
            ),
            (
                "range over 64 GiB", EINVAL,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: 1 << 40, end: (1 << 40) + (64 << 30) + (2 << 20))
                }
            ),
            (
                "range beyond user space", EINVAL,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: 0xffff_8000_0000_0000, end: 0xffff_8000_0020_0000)
                }
            ),
            (
                "wrong interface version", EINVAL,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: page, end: page + 4096, pteSlots: 1, pmdSlots: 1, version: 99)
                }
            ),
            (
                "too few PTE slots", EINVAL,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: 1 << 40, end: (1 << 40) + (8 << 20), pteSlots: 2, pmdSlots: 1)
                }
            ),
            (
                "too few PMD slots", EINVAL,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: 1 << 40, end: (1 << 40) + (2 << 30), pteSlots: 1024, pmdSlots: 1)
                }
            ),
            (
                "bad user pointer", EFAULT,
                { p throws(SystemCallError) in
                    _ = try p.query(pid: me, start: page, end: page + 4096, pteSlots: 1, pmdSlots: 1, pteBuffer: 16)
                }
            ),
            ("unknown ioctl", ENOTTY, { p throws(SystemCallError) in try p.rawIoctl(0x7001) }),
            (
                "bad pointer to the query itself", EFAULT,
                { p throws(SystemCallError) in
                    try p.rawIoctl(ptshare_PROBE_IOC_QUERY, argument: 16)
                }
            ),
        ]
        // pid 2 is kthreadd (no mm) outside a PID namespace; inside one it may be anything.
        if ((try? ProcFS.read("/proc/2/comm")) ?? "").trimmingWhitespace() == "kthreadd" {
            cases.insert(
                (
                    "kernel thread (pid 2, no mm)", ESRCH,
                    { p throws(SystemCallError) in
                        _ = try p.query(pid: 2, start: page, end: page + 4096)
                    }
                ), at: 1)
        } else {
            diag.append("\(name): kernel-thread case not run: pid 2 is not kthreadd here")
        }
        do {
            let probe = try TableProbe()
            for (what, want, call) in cases {
                do {
                    try call(probe)
                    diag.append("\(name): \(what): succeeded, expected \(ErrnoName.of(want))")
                    ok = false
                } catch {
                    let good = error.errno == want
                    ok = ok && good
                    diag.append("\(name): \(what): \(error.errnoName)\(good ? "" : ", expected \(ErrnoName.of(want))")")
                }
            }
        } catch {
            return KTAPResult(
                name: name, status: .fail, diagnostics: ["\(name): cannot open \(TableProbe.queryPath): \(error)"])
        }
        if access(o.modulePath, R_OK) != 0 {
            let problems = log.problems()
            diag += problems.map { "\(name): kernel log: \($0)" }
            let status: KTAPResult.Status =
                ok && problems.isEmpty
                ? .skip("bad-input cases passed; no \(o.modulePath) for the load/unload cycles") : .fail
            return KTAPResult(name: name, status: status, diagnostics: diag)
        }
        // A few cycles first so that caches the module touches have grown to their steady size.
        do {
            try moduleCycles(8, path: o.modulePath, page: page)
            guard let before = kernelMemory() else { throw SystemCallError("read", errno: EIO, path: "/proc/meminfo") }
            let t0 = Sys.monotonicNanoseconds()
            try moduleCycles(o.moduleCycles, path: o.modulePath, page: page)
            let secs = Double(Sys.monotonicNanoseconds() - t0) / 1e9
            guard let after = kernelMemory() else { throw SystemCallError("read", errno: EIO, path: "/proc/meminfo") }
            let grown = after - before
            let bound: Int64 = 128 << 10
            diag.append(
                "\(name): \(o.moduleCycles) cycles (unload, load, query a touched page, a 64 GiB range and a "
                    + "short-lived child) in \(formatFixed(secs, decimals: 1)) s; SUnreclaim+VmallocUsed+Percpu "
                    + "\(ByteSize.human(before)) -> \(ByteSize.human(after)) (\(ByteSize.human(grown)), bound \(ByteSize.human(bound)))"
            )
            ok = ok && grown <= bound
        } catch {
            diag.append("\(name): module cycle failed: \(error)")
            ok = false
            // Leave the module loaded for whatever runs next.
            if TableProbe.loadedVersion() == nil, let fd = try? Sys.open(o.modulePath, O_RDONLY | O_CLOEXEC) {
                try? Sys.finitModule(fd, path: o.modulePath)
                Sys.close(fd)
            }
        }
        let problems = log.problems()
        diag += problems.map { "\(name): kernel log: \($0)" }
        return KTAPResult(name: name, status: ok && problems.isEmpty ? .pass : .fail, diagnostics: diag)
    }

    /// Unload, load from `path`, then query: a page this process wrote (must be a PTE table), a
    /// 64 GiB range (big buffers: a leak shows in VmallocUsed) and a child that exits right after
    /// (a leaked mm or task reference shows in SUnreclaim).
    static func moduleCycles(_ count: Int, path: String, page: UInt64) throws(SystemCallError) {
        for _ in 0..<count {
            try Sys.deleteModule(TableProbe.moduleName)
            let fd = try Sys.open(path, O_RDONLY | O_CLOEXEC)
            defer { Sys.close(fd) }
            try Sys.finitModule(fd, path: path)
            let probe = try TableProbe()
            let m = try probe.query(pid: getpid(), start: page, end: page + 4096)
            guard m.pte.first?.kind == .table else {
                throw SystemCallError(
                    "ioctl(PTSHARE_PROBE_IOC_QUERY)", errno: EIO, value: "no PTE table for a touched page")
            }
            _ = try probe.query(pid: getpid(), start: 1 << 40, end: (1 << 40) + (64 << 30))
            let child = ptshare_fork_sleeper()
            guard child > 0 else { throw SystemCallError("fork", errno: errno) }
            defer {
                kill(child, SIGKILL)
                var st: Int32 = 0
                _ = waitpid(child, &st, 0)
            }
            _ = try probe.query(pid: child, start: page, end: page + 4096)
        }
    }

    /// A page of this process that is mapped and written: its PTE table must exist.
    static func touchedPage() -> UInt64 {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 8192, alignment: 4096)
        p.storeBytes(of: 1, as: UInt8.self)
        return UInt64(UInt(bitPattern: p))
    }

    /// A pid that no process has, checked with kill(pid, 0).
    static func unusedPid() -> Int32? {
        let max = Int32(((try? ProcFS.integer("/proc/sys/kernel/pid_max")) ?? 32768) - 1)
        for pid in stride(from: max, to: max - 1000, by: -1) where kill(pid, 0) != 0 && errno == ESRCH {
            return pid
        }
        return nil
    }

    /// Unreclaimable kernel memory a module leak would show in, folded first; nil when it cannot
    /// be read (which fails the test rather than comparing zeros).
    static func kernelMemory() -> Int64? {
        _ = ProcFS.refreshVMStats()
        guard let m = try? ProcFS.meminfo() else { return nil }
        var total: Int64 = 0
        for key in ["SUnreclaim", "VmallocUsed", "Percpu"] {
            guard let v = m.fields[key] else { return nil }
            total += Int64(v)
        }
        return total
    }

    // MARK: - Helpers

    struct KTAPResultBox: Error {
        let result: KTAPResult
        init(_ r: KTAPResult) { result = r }
    }

    enum Extra: Equatable {
        case pass(String)
        case fail(String)
    }

    /// One run, saved, then judged by `judgeVerdict`: passes when its verdict passes and
    /// `extra` (if any) agrees.
    static func verdictTest(
        _ name: String, _ o: SuiteOptions, _ s: Scenario, tables: TablesMode = .auto, extra: (RunReport) -> Extra?
    ) -> KTAPResult {
        let r: RunReport
        do { r = try Runner.run(RunOptions(scenario: s, tables: tables)) } catch {
            return KTAPResult(name: name, status: .fail, diagnostics: ["\(name): run failed: \(error)"])
        }
        return judgeVerdict(name, s, r, unsaved: save(r, o, "\(name).json"), extra: extra)
    }

    /// Writes a scenario's JSON; nil, or why it could not (which fails the test: the results
    /// folder must hold what the KTAP says ran).
    static func save(_ r: RunReport, _ o: SuiteOptions, _ file: String) -> String? {
        do {
            try writeFileAtomically(o.outDirectory + "/" + file, try JSONOutput.encode(r))
            return nil
        } catch {
            return "could not write \(o.outDirectory)/\(file): \(error)"
        }
    }

    static func release() -> String { (try? Sys.uname().release) ?? "unknown" }
    static func machine() -> String { (try? Sys.uname().machine) ?? "unknown" }
}
