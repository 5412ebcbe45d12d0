import CPTShare
import Glibc

/// The sharedpt.* tests: MAP_SHARED_PT saves what it claims (savings, tables), behaves as the
/// series documents (semantics), refuses what it must (negative) and survives a storm (stress).
extension Suite {
    static let sharedPTTests: [(name: String, run: @Sendable (SuiteOptions) -> KTAPResult)] = [
        ("sharedpt.memfd.savings", sharedPTMemfdSavings),
        ("sharedpt.memfd.tables", sharedPTMemfdTables),
        ("sharedpt.tmpfs.savings", sharedPTTmpfsSavings),
        ("sharedpt.anon.savings", sharedPTAnonSavings),
        ("sharedpt.anon.tables", sharedPTAnonTables),
        ("sharedpt.anon.fork_inherit", SharedPTSemantics.anonForkInherit),
        ("sharedpt.anon.teardown", SharedPTTeardown.anon),
        ("sharedpt.anon.stress", SharedPTStress.anonRun),
        ("sharedpt.dax.savings", sharedPTDaxSavings),
        ("sharedpt.dax.tables", sharedPTDaxTables),
        ("sharedpt.dax.coherence", SharedPTSemantics.daxCoherence),
        ("sharedpt.dax.truncate", SharedPTSemantics.daxTruncate),
        ("sharedpt.dax.map_sync", SharedPTSemantics.daxMapSync),
        ("sharedpt.dax.stress", SharedPTStress.daxRun),
        ("sharedpt.dax.teardown", SharedPTTeardown.dax),
        ("sharedpt.semantics.coherence", SharedPTSemantics.coherence),
        ("sharedpt.semantics.munmap_isolation", SharedPTSemantics.munmapIsolation),
        ("sharedpt.semantics.creator_exit", SharedPTSemantics.creatorExit),
        ("sharedpt.semantics.fork", SharedPTSemantics.fork),
        ("sharedpt.semantics.truncate", SharedPTSemantics.truncate),
        ("sharedpt.semantics.holepunch", SharedPTSemantics.holePunch),
        ("sharedpt.semantics.mremap", SharedPTSemantics.mremap),
        ("sharedpt.semantics.madvise_dontneed", SharedPTSemantics.madviseDontNeed),
        ("sharedpt.semantics.madvise_hugepage", SharedPTSemantics.madviseHugePage),
        ("sharedpt.semantics.madvise_pageout", SharedPTSemantics.madvisePageout),
        ("sharedpt.semantics.unaligned_merge", SharedPTSemantics.unalignedMerge),
        ("sharedpt.semantics.partial_munmap", SharedPTSemantics.partialMunmap),
        ("sharedpt.semantics.ro_rw_isolation", SharedPTSemantics.roRwIsolation),
        ("sharedpt.semantics.different_addresses", SharedPTSemantics.differentAddresses),
        ("sharedpt.semantics.offset_mismatch", SharedPTSemantics.offsetMismatch),
        ("sharedpt.semantics.madvise_collapse", SharedPTSemantics.madviseCollapse),
        ("sharedpt.semantics.madvise_mergeable", SharedPTSemantics.madviseMergeable),
        ("sharedpt.semantics.madvise_remove", SharedPTSemantics.madviseRemove),
        ("sharedpt.semantics.map_fixed", SharedPTSemantics.mapFixed),
        ("sharedpt.semantics.stale_tlb", SharedPTSemantics.staleTLB),
        ("sharedpt.unshare.mprotect", SharedPTSemantics.unshareMprotect),
        ("sharedpt.unshare.mlock", SharedPTSemantics.unshareMlock),
        ("sharedpt.unshare.mlockall", SharedPTSemantics.unshareMlockall),
        ("sharedpt.unshare.userfaultfd", SharedPTSemantics.unshareUserfaultfd),
        ("sharedpt.unshare.split", SharedPTSemantics.unshareSplit),
        ("sharedpt.unshare.notifier", SharedPTSemantics.unshareNotifier),
        ("sharedpt.unshare.soft_dirty", SharedPTSemantics.unshareSoftDirty),
        ("sharedpt.accounting.rss", SharedPTSemantics.accountingRSS),
        ("sharedpt.accounting.move_all", SharedPTSemantics.accountingMoveAll),
        ("sharedpt.thp.mixed", SharedPTSemantics.thpMixed),
        ("sharedpt.reclaim.swap", SharedPTSemantics.reclaimSwap),
        ("sharedpt.memcg.charge", SharedPTSemantics.memcgCharge),
        ("sharedpt.oom.sharer", SharedPTSemantics.oomSharer),
        ("sharedpt.migrate.compaction", SharedPTSemantics.compaction),
        ("sharedpt.migrate.move_pages", SharedPTSemantics.migrateMovePages),
        ("sharedpt.memory_failure.hwpoison", SharedPTSemantics.hwpoison),
        ("sharedpt.numa.balancing", SharedPTSemantics.numaBalancing),
        ("sharedpt.kselftest", SharedPTSemantics.kselftest),
        ("sharedpt.hint_rounding", SharedPTSemantics.hintRounding),
        ("sharedpt.scale.truncate", SharedPTSemantics.scaleTruncate),
        ("sharedpt.saturation", SharedPTSemantics.saturation),
        ("sharedpt.negative.private", SharedPTNegative.privateMapping),
        ("sharedpt.negative.anonymous", SharedPTNegative.anonymous),
        ("sharedpt.negative.misaligned_address", SharedPTNegative.misalignedAddress),
        ("sharedpt.negative.misaligned_length", SharedPTNegative.misalignedLength),
        ("sharedpt.negative.misaligned_offset", SharedPTNegative.misalignedOffset),
        ("sharedpt.negative.non_shmem", SharedPTNegative.nonShmem),
        ("sharedpt.stress", SharedPTStress.run),
        ("sharedpt.pressure.stress", SharedPTStress.pressureRun),
        ("sharedpt.teardown.no_leak", SharedPTTeardown.noLeak),
    ]

    /// The SKIP reason for a kernel without MAP_SHARED_PT; the tests quote it exactly.
    public static func sharedPTUnsupportedReason(release: String, errno: String) -> String {
        "\(sharedPTUnsupportedPrefix)\(release): \(errno)"
    }

    /// How every SKIP for want of the flag begins (SkipPolicy's `allowUnsupported`).
    public static let sharedPTUnsupportedPrefix = "MAP_SHARED_PT not supported by kernel "

    /// What a sharedpt.* test does when the probe has answered: nil (run it) when the flag is
    /// supported; otherwise SKIP with the reason, or FAIL when `--expect-map-shared-pt supported`.
    public static func sharedPTGate(
        _ name: String, expectation: SuiteOptions.Expectation, supported: Bool, release: String, errno: String?,
        detail: String
    ) -> KTAPResult? {
        if supported { return nil }
        let why = sharedPTUnsupportedReason(release: release, errno: errno ?? "refused")
        if expectation == .supported {
            return KTAPResult(
                name: name, status: .fail,
                diagnostics: ["\(name): \(why) (expected supported)", "\(name): \(detail)"])
        }
        return KTAPResult(name: name, status: .skip(why))
    }

    /// Asks `o.sharedPTProbe` (the running kernel), then `sharedPTGate`. A probe that cannot run
    /// fails the test.
    static func needsSharedPT(_ name: String, _ o: SuiteOptions) -> KTAPResult? {
        let probe: KernelFacts.SharedPT
        do { probe = try o.sharedPTProbe(o.mapSharedPTValue) } catch {
            return KTAPResult(name: name, status: .fail, diagnostics: ["\(name): MAP_SHARED_PT probe failed: \(error)"])
        }
        return sharedPTGate(
            name, expectation: o.expectSharedPT, supported: probe.supported, release: release(), errno: probe.errno,
            detail: probe.detail)
    }

    // MARK: - Savings and tables

    /// `--share pt` at one 2 MiB-aligned address in every worker, populated.
    static func sharedPTScenario(_ backing: Backing, _ o: SuiteOptions) -> Scenario {
        Scenario(
            backing: backing, size: o.sharedPTSize, workers: o.workers, share: .pt, touch: .populate,
            address: .same, mapSharedPTValue: o.mapSharedPTValue, tolerance: o.tolerance)
    }

    static func sharedPTMemfdSavings(_ o: SuiteOptions) -> KTAPResult {
        sharedPTSavings("sharedpt.memfd.savings", o, sharedPTScenario(.memfd, o))
    }

    static func sharedPTTmpfsSavings(_ o: SuiteOptions) -> KTAPResult {
        sharedPTSavings("sharedpt.tmpfs.savings", o, sharedPTScenario(.tmpfs, o))
    }

    /// The unshared baseline, then the shared run (both saved), judged by `judgeSharedPTSavings`.
    /// Without the census, but for DAX, whose model needs it (Runner.pmdMappedBytes).
    static func sharedPTSavings(_ name: String, _ o: SuiteOptions, _ s: Scenario) -> KTAPResult {
        if let r = needsSharedPT(name, o) { return r }
        let b: RunReport
        let shared: RunReport
        let tables: TablesMode = s.backing == .dax ? .on : .off
        do {
            b = try Runner.run(RunOptions(scenario: Runner.baselineScenario(of: s), tables: tables))
            shared = try Runner.run(RunOptions(scenario: s, tables: tables))
        } catch {
            return KTAPResult(name: name, status: .fail, diagnostics: ["\(name): run failed: \(error)"])
        }
        let unsaved = [
            save(b, o, "\(name).baseline.json"), save(Runner.withBaseline(shared, baseline: b), o, "\(name).json"),
        ].compactMap { $0 }
        return judgeSharedPTSavings(name, o, s, baseline: b, shared: shared, unsaved: unsaved)
    }

    static func sharedPTMemfdTables(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.memfd.tables"
        // Unsupported first: under --expect-map-shared-pt supported that fails, module or not.
        if let r = needsSharedPT(name, o) { return r }
        if let r = needsProbeModule(name, o) { return r }
        return verdictTest(name, o, sharedPTScenario(.memfd, o), tables: .on) { r in sharedPTTablesLine(name, o, r) }
    }
}

/// Check lines of one sharedpt.* test: each names what was done and what came of it.
struct Checks {
    let name: String
    private(set) var lines: [String] = []
    private(set) var ok = true
    /// Why the test could not prove what it is about (no census possible here): with every
    /// check passing it ends as SKIP with this reason, never as a pass.
    private(set) var unprovenReason: String?

    init(_ name: String) { self.name = name }

    mutating func expect(_ condition: Bool, _ line: String) {
        lines.append("\(name): \(line)" + (condition ? "" : " -- FAILED"))
        ok = ok && condition
    }

    mutating func note(_ line: String) { lines.append("\(name): \(line)") }

    /// What ended the test's steps early: a failed step already said what failed; anything else
    /// (a sharer that died, a system call) fails the test here.
    mutating func stopped(by error: SharedPTError) {
        if case .stepFailed = error {
            note("the remaining steps depend on the one that failed")
        } else {
            expect(false, "\(error)")
        }
    }

    mutating func unproven(_ why: String) {
        note(why)
        if unprovenReason == nil { unprovenReason = why }
    }

    /// A call expected to succeed (no errno, no SIGBUS).
    @discardableResult
    mutating func succeeds(_ what: String, _ r: SharerReply) -> Bool {
        let good = r.succeeded
        expect(good, "\(what): " + (good ? "ok" : Checks.describe(r)))
        return good
    }

    /// A call expected to fail with `want`.
    mutating func fails(_ what: String, _ r: SharerReply, _ want: Int32) {
        if r.succeeded {
            expect(false, "\(what): succeeded, expected \(ErrnoName.of(want))")
        } else {
            expect(
                r.error == want,
                "\(what): \(Checks.describe(r))" + (r.error == want ? "" : ", expected \(ErrnoName.of(want))"))
        }
    }

    /// A CHECK walk with `seed`: every page's first word as filled.
    mutating func intact(_ what: String, _ r: SharerReply, seed: UInt64) {
        if r.error == EBADMSG {
            expect(
                false,
                "\(what): page at offset \(hex(r.value)) holds \(hex(r.found)), expected \(hex(seed + r.value / Geometry.page))"
            )
        } else {
            succeeds(what, r)
        }
    }

    /// A CHECK_ZERO walk: every byte 0.
    mutating func zeroes(_ what: String, _ r: SharerReply) {
        if r.error == EBADMSG {
            expect(false, "\(what): byte at offset \(hex(r.value)) is \(hex(r.found)), expected 0 (stale data)")
        } else {
            succeeds(what, r)
        }
    }

    /// A READ that must raise SIGBUS.
    mutating func sigbus(_ what: String, _ r: SharerReply) {
        expect(r.sigbus, "\(what): " + (r.sigbus ? "SIGBUS" : "no SIGBUS (\(Checks.describe(r)))"))
    }

    /// A READ that must return `want`.
    mutating func reads(_ what: String, _ r: SharerReply, _ want: UInt64) {
        if !r.succeeded {
            expect(false, "\(what): \(Checks.describe(r))")
        } else {
            expect(r.value == want, "\(what): \(hex(r.value))" + (r.value == want ? "" : ", expected \(hex(want))"))
        }
    }

    static func describe(_ r: SharerReply) -> String {
        if r.signal != 0 { return "\(WorkerPool.signalName(r.signal)) at offset \(hex(r.value))" }
        if r.error == 0 { return "ok" }
        return "\(ErrnoName.of(r.error)) (errno \(r.error))"
    }

    func result() -> KTAPResult {
        if ok, let why = unprovenReason { return KTAPResult(name: name, status: .skip(why), diagnostics: lines) }
        return KTAPResult(name: name, status: ok ? .pass : .fail, diagnostics: lines)
    }
}

/// What the sharers of a sharedpt test map.
enum SharedPTBacking: Sendable {
    case memfd
    /// A file in this directory of a -o dax=always mount, every chunk PTE-mapped.
    case dax(String)
    /// MAP_SHARED | MAP_ANONYMOUS, mapped once by its creator (sharer 0, the stress driver)
    /// before it forks the others.
    case anon

    var isMemfd: Bool {
        if case .memfd = self { return true }
        return false
    }

    var what: String {
        switch self {
        case .memfd: "memfd"
        case .dax: "DAX file"
        case .anon: "anonymous shared mapping"
        }
    }

    /// The fixture of a test on this backing. For `.anon` its memfd goes unused (nothing is
    /// allocated in it); `preallocate` is for a memfd.
    func fixture(size: UInt64, flag: UInt32, preallocate: Bool = true) throws(SharedPTError) -> SharedPTFixture {
        switch self {
        case .memfd: try SharedPTFixture(size: size, flag: flag, preallocate: preallocate)
        case .dax(let directory): try SharedPTFixture(daxDirectory: directory, size: size, flag: flag)
        case .anon: try SharedPTFixture(size: size, flag: flag, preallocate: false)
        }
    }
}

/// A filled memfd (or DAX file) and the sharers of one semantics test; every sharer is killed
/// and reaped and the file closed at the end.
final class SharedPTFixture {
    let fd: Int32
    let size: UInt64
    let flag: UInt32
    let name: String
    private(set) var sharers: [Sharer] = []
    private var extraFds: [Int32] = []
    /// The driver's PR_SET_THP_DISABLE setting before a DAX fixture turned it on, restored at
    /// the end; nil for a memfd.
    private var thpWas: Bool?

    /// `preallocate`: fallocate the whole file here, charged to the driver's cgroup; without
    /// it, whichever sharer first touches a page allocates it (and its cgroup pays).
    init(size: UInt64, flag: UInt32, preallocate: Bool = true) throws(SharedPTError) {
        do { fd = try Sys.memfdCreate("ptshare-sharedpt", flags: UInt32(ptshare_MFD_CLOEXEC)) } catch {
            throw .system(error)
        }
        name = "memfd:ptshare-sharedpt"
        self.size = size
        self.flag = flag
        do {
            try Sys.ftruncate(fd, size, path: name)
            if preallocate { try Sys.fallocate(fd, offset: 0, length: size, path: name) }
        } catch { throw .system(error) }
    }

    /// A file in `directory` on a -o dax=always mount, unlinked, written with zeroes (so that
    /// faults only install entries) and checked to be DAX. The driver, and so every sharer
    /// spawned later, runs under PR_SET_THP_DISABLE until the fixture ends: DAX then maps every
    /// chunk with PTEs, through the tables the flag shares, as where the file's blocks are not
    /// 2 MiB-aligned on the device (with them, a PMD leaf needs no table: sharedpt.dax.tables).
    init(daxDirectory directory: String, size: UInt64, flag: UInt32) throws(SharedPTError) {
        let path = "\(directory)/ptshare-sharedpt.\(getpid()).data"
        do throws(SystemCallError) {
            fd = try Sys.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC)
        } catch { throw .system(error) }
        name = path
        self.size = size
        self.flag = flag
        do throws(SystemCallError) {
            try Sys.unlink(path)
            try BackingFile(fd: fd, name: path, leafSize: Geometry.page, hugepagePool: nil).fillDAX(size)
            thpWas = try Sys.setTHPDisabled(true)
        } catch {
            // Every stored property is set: deinit runs and closes fd.
            throw .system(error)
        }
    }

    deinit {
        for s in sharers.reversed() { s.kill() }
        for e in extraFds { Sys.close(e) }
        Sys.close(fd)
        if let w = thpWas { _ = try? Sys.setTHPDisabled(w) }
    }

    func spawn(_ count: Int, spares: Int = 1) throws(SharedPTError) -> [Sharer] {
        var out: [Sharer] = []
        for _ in 0..<count {
            let s = try Sharer.spawn(spares: spares)
            sharers.append(s)
            out.append(s)
        }
        return out
    }

    /// A second fd of the same file opened read-only (a mapping of it has no VM_MAYWRITE);
    /// closed with the fixture. Sharers spawned after this inherit it.
    func openReadOnly() throws(SharedPTError) -> Int32 {
        do {
            let ro = try Sys.open("/proc/self/fd/\(fd)", O_RDONLY | O_CLOEXEC)
            extraFds.append(ro)
            return ro
        } catch { throw .system(error) }
    }

    /// Another memfd of the same size, never mapped with the flag (a plain mapping for a
    /// premise); closed with the fixture. Only sharers spawned after this inherit it.
    func scratch(size: UInt64? = nil) throws(SharedPTError) -> Int32 {
        do {
            let m = try Sys.memfdCreate("ptshare-sharedpt-plain", flags: UInt32(ptshare_MFD_CLOEXEC))
            extraFds.append(m)
            try Sys.ftruncate(m, size ?? self.size, path: "memfd:ptshare-sharedpt-plain")
            return m
        } catch { throw .system(error) }
    }

    /// Kills and reaps every sharer now (before a cgroup they were in is removed).
    func killSharers() {
        for s in sharers.reversed() { s.kill() }
        sharers = []
    }

    /// The path /proc/PID/maps shows for a mapping of this file (an unlinked DAX file's has
    /// " (deleted)" after it).
    var mapsPath: String { name.hasPrefix("/") ? name : "/" + name }

    /// Keeps a sharer made elsewhere (a fork child) for teardown.
    func adopt(_ s: Sharer) { sharers.append(s) }

    /// MAP_SHARED_VALIDATE | flag: only the validated form asks for shared tables (plain
    /// MAP_SHARED ignores the bit, as any flag it does not know). Flag 0 is the harness's
    /// self-test on plain mappings: MAP_SHARED.
    func flags(_ index: Int) -> Int32 {
        flag == 0 ? MAP_SHARED : ptshare_MAP_SHARED_VALIDATE | Int32(bitPattern: flag)
    }

    func truncate(to length: UInt64) throws(SharedPTError) {
        do { try Sys.ftruncate(fd, length, path: name) } catch { throw .system(error) }
    }

    func punchHole(offset: UInt64, length: UInt64) throws(SharedPTError) {
        do { try Sys.punchHole(fd, offset: offset, length: length, path: name) } catch { throw .system(error) }
    }
}
