import CPTShare
import Glibc

public struct RunOptions: Sendable {
    public var scenario: Scenario
    /// How many workers' smaps to read (spread evenly, first and last included); 0 = none.
    public var smapsWorkers: Int
    /// Keep the workers mapped this long after measuring (for outside inspection).
    public var holdSeconds: Int
    public var phaseTimeoutSeconds: Int
    /// How many workers map and touch at once.
    public var mapConcurrency: Int
    /// Whether to ask the ptshare_probe module which tables map every worker's range.
    public var tables: TablesMode = .auto
    /// How far PageTables may stay above the base once every worker is reaped.
    public var teardownNoiseBytes: Int64 = LeakCheck.settleNoiseBytes
    /// Put every worker's mmap and touch time in the report (`worker_times`), not only their
    /// statistics: `bench` keeps every raw sample.
    public var keepWorkerTimes = false

    public init(
        scenario: Scenario, smapsWorkers: Int = 8, holdSeconds: Int = 0, phaseTimeoutSeconds: Int = 600,
        mapConcurrency: Int = RunOptions.defaultMapConcurrency, tables: TablesMode = .auto
    ) {
        self.mapConcurrency = mapConcurrency
        self.tables = tables
        self.scenario = scenario
        self.smapsWorkers = smapsWorkers
        self.holdSeconds = holdSeconds
        self.phaseTimeoutSeconds = phaseTimeoutSeconds
    }
}

/// `--tables`: auto uses the probe module when it is loaded; on requires it; off skips it.
public enum TablesMode: String, Sendable, CaseIterable {
    case auto, on, off
}

extension RunOptions {
    /// Online CPUs: one faulting worker per CPU keeps them busy without a runnable herd.
    public static var defaultMapConcurrency: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

public enum PTShareVersion {
    public static let string = "0.1.0"
}

/// One run, in the order the layout names: scenario → workers → probes → model → verdict → report.
public enum Runner {
    public static func run(_ o: RunOptions, progress: (String) -> Void = { _ in }) throws(RunError) -> RunReport {
        let binding = NumaBinding(o.scenario.placement)
        do throws(RunError) {
            do { return try measure(o, binding, progress: progress) } catch { throw binding.restoring(after: error) }
        } catch {
            // A stop signal interrupts whichever call was blocking (poll, read, waitpid); the
            // EINTR that call reports is the interruption, wherever it surfaced.
            if case .system(let e) = error, e.errno == EINTR, Sys.stopSignal != 0 {
                throw .interrupted(signal: Sys.stopSignal)
            }
            throw error
        }
    }

    /// One run, phase by phase: each phase is a function below, in the order they run.
    static func measure(_ o: RunOptions, _ binding: NumaBinding, progress: (String) -> Void) throws(RunError)
        -> RunReport
    {
        let s = o.scenario
        let k = try preflight(o)
        // In force while the file's pages are allocated (fallocate) and the workers are forked.
        try binding.apply()
        let (backing, pmdSharing, thp) = try makeBacking(s, machine: k.machine)
        defer { backing.close() }
        // The pool allocates its bookkeeping now, before a free range is picked below: a large
        // allocation made later could land in that range and make every MAP_FIXED_NOREPLACE fail.
        let pool = try WorkerPool(
            count: s.workers, plan: workerPlan(s, backing), phaseTimeoutSeconds: o.phaseTimeoutSeconds)
        defer { pool.teardown() }
        let place = try placement(s, pool)
        defer { if let a = place.anonMapping { try? Sys.munmap(a, s.size) } }

        var m = Measurements()
        // Inherited by the workers forked now; the driver's own setting comes back after.
        let thpWas: Bool?
        do { thpWas = s.thpDisabled ? try Sys.setTHPDisabled(true) : nil } catch { throw .system(error) }
        defer { if let w = thpWas { _ = try? Sys.setTHPDisabled(w) } }
        try spawn(s, pool, &m, progress: progress)
        try binding.restore()
        try control(pool, place, &m)
        try map(s, o, pool, &m, progress: progress)
        try measureMapped(o, pool, place, &m)
        if k.tablesVersion != nil {
            m.tableCounts = try measuring(pool) { () throws(RunError) in try tableCensus(pool, size: s.size) }
        }
        try pool.checkAllAlive()
        m.times.measured = Sys.monotonicNanoseconds()
        try teardown(o, pool, &m, progress: progress)

        let model = modelOf(s, backing, m, pmdSharing: pmdSharing)
        let (verdict, tables) = judge(s, o, k, m, model, pmdSharing: pmdSharing)
        return report(s, o, k, backing, place, m, model, verdict, tables, pmdSharing: pmdSharing, thp: thp)
    }

    // MARK: - Phases of a run

    /// What preflight found out about the kernel.
    struct KernelState {
        var release: String
        var machine: String
        /// The probe module's interface version, when it can count tables.
        var tablesVersion: Int?
        /// Why tables are not counted although the module is loaded.
        var tablesNote: String?
    }

    /// Where the workers map: the address they are told, the flags, and the driver's own
    /// anonymous mapping for anon-shared runs.
    struct Placement {
        var address: UInt64
        var flags: Int32
        var anonMapping: UInt64?
    }

    /// One probe point: settled PageTables, the driver's own VmPTE, each NUMA node's PageTables.
    struct Point {
        var sample: StableSample
        var driverVmPTE: Int64
        /// Per node: PageTables, or why it could not be read (the run goes on without it).
        var nodes: [Result<UInt64, MissingReading>]
        var pageTables: Int64 { Int64(sample.meminfo.pageTables ?? 0) }

        static func take(nodes: [Int], window: Int = 5, limitMs: Int = 3000) throws(RunError) -> Point {
            let sample = try Sampler.stablePageTables(window: window, limitMs: limitMs)
            return Point(
                sample: sample, driverVmPTE: try Runner.driverVmPTE(), nodes: nodes.map(Runner.nodePageTables))
        }
    }

    static func nodePageTables(_ node: Int) -> Result<UInt64, MissingReading> {
        do throws(RunError) {
            let n = try ProcFS.nodeMeminfo(node)
            guard let v = n.pageTables else { return .failure(MissingReading("no PageTables line in \(n.source)")) }
            return .success(v)
        } catch { return .failure(MissingReading(error.description)) }
    }

    typealias TableCounts = (pte: Int, pmd: Int, pmdLeaves: Int, pudLeaves: Int, milliseconds: Int)

    /// What the phases measured, filled in as they run.
    struct Measurements {
        var nodes: [Int] = []
        var base: Point!
        var control: Point!
        var mapped: Point!
        /// After every worker was reaped, settled like the base.
        var afterTeardown: Point!
        var vmpteControl: Int64 = 0
        var vmpteMapped: Int64 = 0
        /// What a worker already maps: tables present there are not the mapping's to pay for.
        var occupied: [Range<UInt64>] = []
        var reports: [WorkerReport] = []
        var mapAddress: UInt64 = 0
        var addresses: Set<UInt64> = []
        var smaps: RunReport.SmapsReport?
        var numaMaps: RunReport.NumaMapsReport?
        var tableCounts: TableCounts?
        var times = Times()

        struct Times {
            var spawnStart: UInt64 = 0
            var spawned: UInt64 = 0
            var mapStart: UInt64 = 0
            var mapped: UInt64 = 0
            var measured: UInt64 = 0
            var reaped: UInt64 = 0
        }
    }

    /// The scenario is valid, the stop handlers are in, the flag is supported when asked
    /// for, and the probe module is there when `--tables on` requires it.
    static func preflight(_ o: RunOptions) throws(RunError) -> KernelState {
        let s = o.scenario
        do { try s.validate() } catch { throw .preflight(error.description) }
        if !s.placement.isNone {
            let machine: NumaMachine
            do { machine = try NumaMachine.current() } catch { throw .numa(error) }
            do { try s.placement.check(on: machine) } catch { throw .preflight(error.description) }
        }
        do { try Sys.installStopHandlers() } catch { throw .system(error) }
        let (release, machine): (String, String)
        do { (release, machine) = try Sys.uname() } catch { throw .system(error) }

        if s.share == .pt {
            let probe = try KernelProbe.mapSharedPT(value: s.mapSharedPTValue)
            if !probe.supported {
                throw .sharedPTUnsupported(
                    value: s.mapSharedPTValue, errno: probe.errno == "EINVAL" ? EINVAL : EOPNOTSUPP, release: release)
            }
        }
        let probeState = o.tables == .off ? .notLoaded : TableProbe.state()
        var k = KernelState(release: release, machine: machine)
        switch probeState {
        case .ready(let v): k.tablesVersion = v
        case .incompatible(let v):
            k.tablesNote =
                "tables: not counted, ptshare_probe speaks interface \(v), this ptshare \(PTSHARE_PROBE_VERSION)"
        case .notLoaded: break
        }
        if o.tables == .on && k.tablesVersion == nil {
            throw .preflight(
                "--tables on: the ptshare_probe module is "
                    + (k.tablesNote != nil
                        ? "loaded with another interface version (\(k.tablesNote!))"
                        : "not loaded (no \(TableProbe.directory)/version); load kmod/ptshare_probe (insmod ptshare_probe.ko) and mount debugfs")
                    + ", or use --tables auto")
        }
        if s.backing == .dax && k.tablesVersion == nil {
            // No /proc file counts a DAX page (smaps and pagemap skip device pages), so whether
            // the kernel mapped a chunk by a PMD leaf, needing no PTE table, shows only in the
            // census; without it the model could not be given the kernel's choice.
            throw .preflight(
                "--backing dax: the model needs the table census to tell the kernel's 2 MiB PMD leaves from PTE "
                    + "tables (no /proc file counts DAX pages); load kmod/ptshare_probe"
                    + (o.tables == .off ? " and drop --tables off" : (k.tablesNote.map { " (\($0))" } ?? "")))
        }
        return k
    }

    /// The object to map, after the checks that it fits (huge pages, memory).
    static func makeBacking(_ s: Scenario, machine: String) throws(RunError) -> (
        BackingFile, KernelFacts.PMDSharing?, String?
    ) {
        let mounts = try ProcFS.mounts()
        let backingPlan = try BackingFile.plan(s, mounts: mounts)
        try Preflight.check(s, leafSize: backingPlan.leafSize, meminfo: try ProcFS.meminfo())
        let backing = try BackingFile.create(s, plan: backingPlan)
        let pmdSharing = s.backing == .hugetlbfs ? KernelProbe.pmdSharing(machine: machine) : nil
        // Informational in a run report: a malformed setting does not stop the run.
        let thp = (try? KernelProbe.shmemTHP()) ?? nil
        return (backing, pmdSharing, thp)
    }

    static func workerPlan(_ s: Scenario, _ backing: BackingFile) -> ptshare_worker_plan {
        var plan = ptshare_worker_plan()
        plan.fd = backing.fd
        plan.prot = PROT_READ | PROT_WRITE
        plan.touch = Int32(touchCode(s.touch).rawValue)
        plan.length = s.size
        plan.offset = 0
        plan.touch_stride = backing.leafSize
        return plan
    }

    /// Where and how the workers map; hands both to the pool.
    static func placement(_ s: Scenario, _ pool: WorkerPool) throws(RunError) -> Placement {
        let fixed: UInt64?
        switch s.address {
        case .auto: fixed = nil
        case .fixed(let a): fixed = a
        case .same, .sameSkewed:
            let align = s.size >= Geometry.pudSize ? Geometry.pudSize : Geometry.pmdSize
            var skew: UInt64 = 0
            if case .sameSkewed(let k) = s.address { skew = k }
            do { fixed = try AddressPlanner.freeRange(size: s.size + skew, alignment: align) + skew } catch {
                throw .system(error)
            }
        case .sameOwnSpan:
            let span = (s.size + Geometry.pudSize - 1) / Geometry.pudSize * Geometry.pudSize
            do { fixed = try AddressPlanner.freeRange(size: span, alignment: Geometry.pudSize) } catch {
                throw .system(error)
            }
        }
        // Only MAP_SHARED_VALIDATE asks for the flag (plain MAP_SHARED ignores the bit); with
        // it, MAP_SHARED_VALIDATE also takes MAP_FIXED_NOREPLACE, which it refuses otherwise.
        // Value 0 is the harness's self-test on plain mappings: MAP_SHARED.
        var flags =
            s.share == .pt && s.mapSharedPTValue != 0
            ? ptshare_MAP_SHARED_VALIDATE | Int32(bitPattern: s.mapSharedPTValue) : MAP_SHARED
        if fixed != nil { flags |= ptshare_MAP_FIXED_NOREPLACE }
        var address = fixed ?? 0
        var anonMapping: UInt64?
        if s.backing == .anonShared {
            // Mapped once here; the workers inherit the VMA and fault it in themselves.
            do {
                anonMapping = try Sys.mmap(
                    address, s.size, prot: PROT_READ | PROT_WRITE, flags: flags | MAP_ANONYMOUS, fd: -1, offset: 0,
                    path: "anonymous")
            } catch { throw .system(error) }
            address = anonMapping!
        }
        pool.setMapping(address: address, flags: flags)
        return Placement(address: address, flags: flags, anonMapping: anonMapping)
    }

    /// The base point, then the workers forked and settled.
    static func spawn(_ s: Scenario, _ pool: WorkerPool, _ m: inout Measurements, progress: (String) -> Void)
        throws(RunError)
    {
        progress("sampling PageTables before forking")
        m.nodes = ProcFS.numaNodes()
        // A longer quiet window at base: tables of processes that exited just before (an
        // earlier run's workers) are uncounted after an RCU grace period, not at exit.
        m.base = try Point.take(nodes: m.nodes, window: Sampler.baseWindow, limitMs: Sampler.baseLimitMs)
        progress("forking \(s.workers) workers")
        m.times.spawnStart = Sys.monotonicNanoseconds()
        try pool.spawn()
        m.times.spawned = Sys.monotonicNanoseconds()
    }

    /// The workers with nothing mapped: their own tables, and the spans they already occupy.
    static func control(_ pool: WorkerPool, _ place: Placement, _ m: inout Measurements) throws(RunError) {
        m.control = try Point.take(nodes: m.nodes)
        m.vmpteControl = try measuring(pool) { () throws(RunError) in try vmPTESum(pool.pids) }
        m.occupied = try measuring(pool) { () throws(RunError) in
            try ProcFS.smaps(pool.pids[0]).filter { e in Runner.holdsTables(e) && e.start != place.anonMapping }
                .map { $0.start..<$0.end }
        }
    }

    /// Every worker maps and touches; then the mapped point.
    static func map(
        _ s: Scenario, _ o: RunOptions, _ pool: WorkerPool, _ m: inout Measurements, progress: (String) -> Void
    ) throws(RunError) {
        progress("mapping and touching \(ByteSize(s.size)) in every worker")
        m.times.mapStart = Sys.monotonicNanoseconds()
        try pool.mapAndTouch(concurrency: o.mapConcurrency)
        m.times.mapped = Sys.monotonicNanoseconds()
        m.mapped = try Point.take(nodes: m.nodes)
    }

    /// Per-process readings while every worker is mapped: VmPTE, addresses, smaps.
    static func measureMapped(_ o: RunOptions, _ pool: WorkerPool, _ place: Placement, _ m: inout Measurements)
        throws(RunError)
    {
        m.vmpteMapped = try measuring(pool) { () throws(RunError) in try vmPTESum(pool.pids) }
        m.reports = pool.reports.compactMap { $0 }
        m.addresses = Set(m.reports.map(\.address))
        m.mapAddress = m.reports.first?.address ?? place.address
        let address = m.mapAddress
        m.smaps = try measuring(pool) { () throws(RunError) in
            try sampleSmaps(pool.pids, address: address, count: o.smapsWorkers)
        }
        m.numaMaps = try sampleNumaMaps(pool, count: o.smapsWorkers)
    }

    /// The optional hold, every worker released and reaped, then PageTables settled again
    /// like the base: whatever did not come back was leaked by the teardown.
    static func teardown(_ o: RunOptions, _ pool: WorkerPool, _ m: inout Measurements, progress: (String) -> Void)
        throws(RunError)
    {
        var held = 0
        while held < o.holdSeconds * 10 {
            if Sys.stopSignal != 0 { throw .interrupted(signal: Sys.stopSignal) }
            Sys.sleep(milliseconds: 100)
            try pool.checkAllAlive()
            held += 1
        }
        try pool.releaseAndReap()
        m.times.reaped = Sys.monotonicNanoseconds()
        progress("sampling PageTables after teardown")
        m.afterTeardown = try Point.take(nodes: m.nodes, window: Sampler.baseWindow, limitMs: Sampler.baseLimitMs)
    }

    /// What one worker maps by PMD leaves, which need no PTE table: THP's from smaps
    /// (ShmemPmdMapped, FilePmdMapped of the sampled workers' mapping); DAX's, which smaps does
    /// not count, from the census's PMD leaves over all workers, per worker.
    static func pmdMappedBytes(_ s: Scenario, _ m: Measurements) -> UInt64 {
        if s.backing == .dax {
            guard let c = m.tableCounts, s.workers > 0 else { return 0 }
            return UInt64(c.pmdLeaves / s.workers) * Geometry.pmdSize
        }
        return (m.smaps?.range["ShmemPmdMapped"] ?? 0) + (m.smaps?.range["FilePmdMapped"] ?? 0)
    }

    static func modelOf(_ s: Scenario, _ backing: BackingFile, _ m: Measurements, pmdSharing: KernelFacts.PMDSharing?)
        -> ModelResult
    {
        let pmdMapped = pmdMappedBytes(s, m)
        let input = ModelInput(
            workers: s.workers, address: m.mapAddress, size: s.size, fileOffset: 0, leafSize: backing.leafSize,
            touched: s.touch.faultsIn, share: s.share, hugetlbPMDSharing: pmdSharing?.enabled ?? false,
            occupied: m.occupied, pmdMappedBytes: pmdMapped)
        var model = PageTableModel.expected(input)
        if m.addresses.count > 1 {
            model.reason += "; workers got \(m.addresses.count) different addresses, modelled at the first"
        }
        return model
    }

    /// The driver is not part of the scenario: its own tables (its heap grows while it reads
    /// /proc) are taken out of every delta, exactly, from its VmPTE.
    static func delta(_ to: Point, _ from: Point) -> Int64 {
        to.pageTables - from.pageTables - (to.driverVmPTE - from.driverVmPTE)
    }

    static func teardownOutcome(_ o: RunOptions, _ m: Measurements) -> LeakCheck.Outcome {
        LeakCheck.judge(
            before: m.base.pageTables, after: m.afterTeardown.pageTables,
            driverChange: m.afterTeardown.driverVmPTE - m.base.driverVmPTE, noise: o.teardownNoiseBytes,
            settled: m.base.sample.stable && m.afterTeardown.sample.stable)
    }

    /// The model against the measurement, the table census against the model's count, and
    /// PageTables after teardown against the base.
    static func judge(
        _ s: Scenario, _ o: RunOptions, _ k: KernelState, _ m: Measurements, _ model: ModelResult,
        pmdSharing: KernelFacts.PMDSharing?
    ) -> (Verdict, RunReport.Tables?) {
        let attributed = delta(m.mapped, m.base) - delta(m.control, m.base)
        var verdict = Verdict.judge(
            attributed: attributed, model: model, workers: s.workers, tolerance: s.tolerance,
            samplingStable: m.base.sample.stable && m.control.sample.stable && m.mapped.sample.stable)
        var tables: RunReport.Tables?
        if let c = m.tableCounts, let v = k.tablesVersion {
            let expect = { (level: String) in model.level(level)?.distinctTables ?? 0 }
            let t = RunReport.Tables(
                interfaceVersion: v, workersQueried: s.workers, distinctPteTables: c.pte, distinctPmdTables: c.pmd,
                expectedDistinctPteTables: expect("pte"), expectedDistinctPmdTables: expect("pmd"),
                pmdLeafSteps: c.pmdLeaves, pudLeafSteps: c.pudLeaves, queryMilliseconds: c.milliseconds)
            tables = t
            verdict = verdict.judgingTables(t, faultedIn: s.touch.faultsIn)
        }
        if let note = k.tablesNote { verdict.reason += "; " + note }
        if s.backing == .hugetlbfs, let p = pmdSharing, p.enabled == nil,
            model.levels.contains(where: { $0.level == "pmd" && $0.spans > $0.alreadyPresent })
        {
            verdict = Verdict(
                status: .skip, reason: "cannot model hugetlb PMD sharing: \(p.basis)",
                allowedDeviationBytes: verdict.allowedDeviationBytes)
        }
        // Last, so that nothing above can hide a leak.
        return (LeakCheck.merge(verdict, teardownOutcome(o, m)), tables)
    }

    static func report(
        _ s: Scenario, _ o: RunOptions, _ k: KernelState, _ backing: BackingFile, _ place: Placement,
        _ m: Measurements, _ model: ModelResult, _ verdict: Verdict, _ tables: RunReport.Tables?,
        pmdSharing: KernelFacts.PMDSharing?, thp: String?
    ) -> RunReport {
        let w = Int64(s.workers)
        let rawDelta = delta(m.mapped, m.base)
        let controlDelta = delta(m.control, m.base)
        let attributed = rawDelta - controlDelta
        let leak = teardownOutcome(o, m)
        let measured = RunReport.Measured(
            pageTablesDeltaBytes: rawDelta,
            controlPageTablesDeltaBytes: controlDelta,
            attributedPageTableBytes: attributed,
            attributedPerWorkerBytes: attributed / w,
            controlPerWorkerBytes: controlDelta / w,
            driverVmpteBytes: .init(
                base: m.base.driverVmPTE, control: m.control.driverVmPTE, mapped: m.mapped.driverVmPTE,
                afterTeardown: m.afterTeardown.driverVmPTE),
            vmpteSumBytes: m.vmpteMapped, vmpteControlSumBytes: m.vmpteControl,
            vmpteAttributedBytes: m.vmpteMapped - m.vmpteControl,
            mappingAddress: hex(m.mapAddress), distinctMappingAddresses: m.addresses.count,
            meminfo: .init(
                base: .init(m.base.sample.meminfo), control: .init(m.control.sample.meminfo),
                mapped: .init(m.mapped.sample.meminfo), afterTeardown: .init(m.afterTeardown.sample.meminfo)),
            sampling: .init(
                base: .init(m.base.sample), control: .init(m.control.sample), mapped: .init(m.mapped.sample),
                afterTeardown: .init(m.afterTeardown.sample)),
            numaNodes: m.nodes.indices.map { i in
                let readings = [m.base.nodes[i], m.control.nodes[i], m.mapped.nodes[i], m.afterTeardown.nodes[i]]
                let (b, c, n, a) = (
                    try? readings[0].get(), try? readings[1].get(), try? readings[2].get(), try? readings[3].get()
                )
                let missing = readings.lazy.compactMap { r -> String? in
                    if case .failure(let e) = r { return e.reason }
                    return nil
                }.first
                return RunReport.NodeReport(
                    node: m.nodes[i], pageTables: .init(base: b, control: c, mapped: n, afterTeardown: a),
                    attributedBytes: (n != nil && c != nil) ? Int64(n!) - Int64(c!) : nil, pageTablesMissing: missing,
                    filePages: m.numaMaps?.reference?.pages(on: m.nodes[i]))
            },
            smaps: m.smaps,
            teardownLeakBytes: leak.leakBytes, teardownNoiseBytes: o.teardownNoiseBytes, numaMaps: m.numaMaps)
        let pmdMapped = pmdMappedBytes(s, m)
        let seconds = { (a: UInt64, b: UInt64) in Double(b - a) / 1e9 }
        let t = m.times
        return RunReport(
            tool: .init(version: PTShareVersion.string),
            kernel: .init(release: k.release, machine: k.machine, hugetlbPmdSharing: pmdSharing, shmemThp: thp),
            scenario: .init(
                backing: s.backing.rawValue, object: backing.name, sizeBytes: s.size, workers: s.workers,
                share: s.share.rawValue, touch: s.touch.rawValue, address: s.address.description,
                mapSharedPtValue: hex(UInt64(s.mapSharedPTValue)),
                mmapFlags: hex(UInt64(UInt32(bitPattern: place.flags))),
                leafPageSizeBytes: backing.leafSize, tolerance: s.tolerance,
                placement: s.placement.isNone ? nil : .init(s.placement), thpDisabled: s.thpDisabled ? true : nil),
            measured: measured,
            model: .init(
                expectedPageTableBytes: model.expectedPageTableBytes,
                unsharedPageTableBytes: model.unsharedPageTableBytes,
                perWorkerBytes: model.perWorkerBytes, sharedBytes: model.sharedBytes, levels: model.levels,
                reason: model.reason, occupiedRanges: m.occupied.count, pmdMappedBytes: pmdMapped),
            timings: .init(
                spawnSeconds: seconds(t.spawnStart, t.spawned), mapTouchSeconds: seconds(t.mapStart, t.mapped),
                readySeconds: seconds(t.spawnStart, t.spawned) + seconds(t.mapStart, t.mapped),
                measureSeconds: seconds(t.mapped, t.measured),
                teardownSeconds: seconds(t.measured, t.reaped) - Double(o.holdSeconds),
                mapNs: .init(m.reports.map(\.mapNanoseconds)), touchNs: .init(m.reports.map(\.touchNanoseconds))),
            verdict: verdict.status, reason: verdict.reason, allowedDeviationBytes: verdict.allowedDeviationBytes,
            tables: tables,
            workerTimes: o.keepWorkerTimes
                ? .init(mapNs: m.reports.map(\.mapNanoseconds), touchNs: m.reports.map(\.touchNanoseconds)) : nil)
    }

    /// Distinct page-table pages over every worker's mapping, as the probe module reports them.
    static func tableCensus(_ pool: WorkerPool, size: UInt64) throws(RunError)
        -> (pte: Int, pmd: Int, pmdLeaves: Int, pudLeaves: Int, milliseconds: Int)
    {
        let t0 = Sys.monotonicNanoseconds()
        var pte = Set<UInt64>()
        var pmd = Set<UInt64>()
        var pmdLeaves = 0
        var pudLeaves = 0
        do {
            let probe = try TableProbe()
            for (i, pid) in pool.pids.enumerated() {
                guard let address = pool.reports[i]?.address else { continue }
                // The module caps work per call; 1 GiB-aligned pieces never report a window twice.
                var lo = address
                while lo < address + size {
                    let hi = min(address + size, (lo / Geometry.pudSize + 1) * Geometry.pudSize + TableProbe.queryChunk)
                    let m = try probe.query(pid: pid, start: lo, end: hi)
                    for slot in m.pte where slot.kind == .table { pte.insert(slot.pfn) }
                    for slot in m.pmd where slot.kind == .table { pmd.insert(slot.pfn) }
                    pmdLeaves += Int(m.pmdLeaves)
                    pudLeaves += Int(m.pudLeaves)
                    lo = hi
                }
            }
        } catch { throw .system(error) }
        return (pte.count, pmd.count, pmdLeaves, pudLeaves, Int((Sys.monotonicNanoseconds() - t0) / 1_000_000))
    }

    /// Reading a worker's /proc files fails oddly once it has died (a zombie has no VmPTE):
    /// report the death, which is the cause, rather than the parse error.
    static func measuring<T>(_ pool: WorkerPool, _ body: () throws(RunError) -> T) throws(RunError) -> T {
        do { return try body() } catch {
            // A worker caught mid-exit is not reapable yet: give it a moment.
            for _ in 0..<40 {
                try pool.checkAllAlive()
                Sys.sleep(milliseconds: 5)
            }
            throw error
        }
    }

    /// Whether a VMA of a freshly forked worker has page tables under it: resident pages,
    /// or a PFN/mixed map such as [vvar], whose entries fork copies but smaps counts as Rss 0.
    public static func holdsTables(_ e: SmapsEntry) -> Bool {
        (e.fields["Rss"] ?? 0) > 0 || e.vmFlags.contains("pf") || e.vmFlags.contains("mm")
    }

    /// The unshared variant of a scenario: plain MAP_SHARED; for hugetlbfs, the address moved by
    /// one huge page so that no 1 GiB span is whole and mainline PMD sharing cannot apply.
    public static func baselineScenario(of s: Scenario) -> Scenario {
        var b = s
        b.share = .none
        if s.backing == .hugetlbfs {
            switch s.address {
            case .same: b.address = .sameSkewed(Geometry.pmdSize)
            case .fixed(let a): b.address = .fixed(a + Geometry.pmdSize)
            case .sameOwnSpan: b.address = .sameSkewed(Geometry.pmdSize)
            case .auto, .sameSkewed: break
            }
        }
        return b
    }

    /// Runs the baseline first, then the scenario, and reports the savings of the latter.
    public static func runWithBaseline(_ o: RunOptions, progress: (String) -> Void = { _ in }) throws(RunError)
        -> RunReport
    {
        var bo = o
        bo.scenario = baselineScenario(of: o.scenario)
        bo.holdSeconds = 0
        progress("baseline: share \(bo.scenario.share.rawValue), address \(bo.scenario.address)")
        let b = try run(bo, progress: progress)
        return withBaseline(try run(o, progress: progress), baseline: b)
    }

    /// The scenario's report with the baseline's summary and the savings against it.
    public static func withBaseline(_ report: RunReport, baseline b: RunReport) -> RunReport {
        var r = report
        r.baseline = .init(
            share: b.scenario.share, address: b.scenario.address, mappingAddress: b.measured.mappingAddress,
            attributedPageTableBytes: b.measured.attributedPageTableBytes,
            expectedPageTableBytes: b.model.expectedPageTableBytes, verdict: b.verdict, reason: b.reason)
        r.savings = Savings(
            baseline: b.measured.attributedPageTableBytes, measured: r.measured.attributedPageTableBytes)
        // A baseline that misses its own model makes the savings meaningless: its failure (or
        // skip) stands unless the scenario already failed.
        if b.verdict != .pass && r.verdict != .fail {
            r.verdict = b.verdict
            r.reason = "baseline: " + b.reason
        }
        return r
    }

    static func touchCode(_ t: TouchMode) -> ptshare_touch {
        switch t {
        case .none: return PTSHARE_TOUCH_NONE
        case .read: return PTSHARE_TOUCH_READ
        case .write: return PTSHARE_TOUCH_WRITE
        case .populate: return PTSHARE_TOUCH_POPULATE_READ
        case .populateWrite: return PTSHARE_TOUCH_POPULATE_WRITE
        }
    }

    /// A process's own page-table bytes (VmPTE of /proc/PID/status).
    static func vmPTE(_ pid: pid_t) throws(RunError) -> Int64 {
        guard let v = try ProcFS.status(pid).vmPTE else {
            throw .parse(ProcParseError(source: "/proc/\(pid)/status", line: 0, text: "", reason: "no VmPTE line"))
        }
        return Int64(v)
    }

    static func driverVmPTE() throws(RunError) -> Int64 { try vmPTE(getpid()) }

    static func vmPTESum(_ pids: [pid_t]) throws(RunError) -> Int64 {
        var sum: Int64 = 0
        for pid in pids { sum += try vmPTE(pid) }
        return sum
    }

    /// numa_maps of the workers whose smaps are read: where the mapping's pages are and the policy
    /// the workers run under. A worker's death is the run's error; any other failure (no
    /// numa_maps on a kernel without CONFIG_NUMA, a line the parser refuses) is reported as a
    /// missing reading with its reason, since the verdict does not depend on it.
    static func sampleNumaMaps(_ pool: WorkerPool, count: Int) throws(RunError) -> RunReport.NumaMapsReport? {
        let idx = sampleIndices(workers: pool.pids.count, count: count)
        guard !idx.isEmpty else { return nil }
        var workers: [RunReport.NumaMapsWorker] = []
        for i in idx {
            let pid = pool.pids[i]
            let address = pool.reports[i]?.address ?? 0
            let entry: NumaMapsEntry?
            do { entry = NumaMaps.entry(at: address, in: try ProcFS.numaMaps(pid)) } catch {
                return try missingUnlessDead(pool, idx, error.description)
            }
            guard let entry else {
                return try missingUnlessDead(
                    pool, idx, "/proc/\(pid)/numa_maps of worker \(i) has no mapping at \(hex(address))")
            }
            workers.append(.init(worker: i, entry))
        }
        return .init(workersSampled: idx, workers: workers, missing: nil)
    }

    /// A numa_maps reading that failed, unless a worker died meanwhile (a worker caught mid-exit
    /// reads as an empty numa_maps): then the death is the run's error.
    static func missingUnlessDead(_ pool: WorkerPool, _ idx: [Int], _ reason: String) throws(RunError)
        -> RunReport.NumaMapsReport
    {
        for _ in 0..<40 {
            try pool.checkAllAlive()
            Sys.sleep(milliseconds: 5)
        }
        return .init(workersSampled: idx, workers: [], missing: reason)
    }

    /// Evenly spread worker indices, first and last included.
    public static func sampleIndices(workers: Int, count: Int) -> [Int] {
        guard count > 0, workers > 0 else { return [] }
        if count >= workers { return Array(0..<workers) }
        if count == 1 { return [0] }
        return (0..<count).map { $0 * (workers - 1) / (count - 1) }
    }

    static func sampleSmaps(_ pids: [pid_t], address: UInt64, count: Int) throws(RunError) -> RunReport.SmapsReport? {
        let idx = sampleIndices(workers: pids.count, count: count)
        guard !idx.isEmpty else { return nil }
        var range: [String: UInt64] = [:]
        var rollup: [String: UInt64] = [:]
        var vmFlags: [String] = []
        for i in idx {
            guard let e = Smaps.entry(containing: address, in: try ProcFS.smaps(pids[i])) else {
                throw .preflight("worker \(i) (pid \(pids[i])) has no mapping at \(hex(address)) in its smaps")
            }
            for (k, v) in e.fields { range[k, default: 0] += v }
            vmFlags = e.vmFlags
            for (k, v) in try ProcFS.smapsRollup(pids[i]).fields { rollup[k, default: 0] += v }
        }
        let n = UInt64(idx.count)
        return .init(
            workersSampled: idx, range: range.mapValues { $0 / n }, rollup: rollup.mapValues { $0 / n },
            vmFlags: vmFlags)
    }
}
