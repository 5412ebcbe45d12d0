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
        do { return try measure(o, progress: progress) } catch {
            // A stop signal interrupts whichever call was blocking (poll, read, waitpid); the
            // EINTR that call reports is the interruption, wherever it surfaced.
            if case .system(let e) = error, e.errno == EINTR, Sys.stopSignal != 0 {
                throw .interrupted(signal: Sys.stopSignal)
            }
            throw error
        }
    }

    static func measure(_ o: RunOptions, progress: (String) -> Void) throws(RunError) -> RunReport {
        let s = o.scenario
        do { try s.validate() } catch { throw .preflight(error.description) }
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
        var tablesVersion: Int?
        var tablesNote: String?
        switch probeState {
        case .ready(let v): tablesVersion = v
        case .incompatible(let v):
            tablesNote =
                "tables: not counted, ptshare_probe speaks interface \(v), this ptshare \(PTSHARE_PROBE_VERSION)"
        case .notLoaded: break
        }
        if o.tables == .on && tablesVersion == nil {
            throw .preflight(
                "--tables on: the ptshare_probe module is "
                    + (tablesNote != nil
                        ? "loaded with another interface version (\(tablesNote!))"
                        : "not loaded (no \(TableProbe.directory)/version); load kmod/ptshare_probe (insmod ptshare_probe.ko) and mount debugfs")
                    + ", or use --tables auto")
        }
        let mounts = try ProcFS.mounts()
        let backingPlan = try BackingFile.plan(s, mounts: mounts)
        try Preflight.check(s, leafSize: backingPlan.leafSize, meminfo: try ProcFS.meminfo())
        let backing = try BackingFile.create(s, plan: backingPlan)
        defer { backing.close() }
        let pmdSharing = s.backing == .hugetlbfs ? KernelProbe.pmdSharing(machine: machine) : nil
        // Informational in a run report: a malformed setting does not stop the run.
        let thp = (try? KernelProbe.shmemTHP()) ?? nil

        var plan = ptshare_worker_plan()
        plan.fd = backing.fd
        plan.prot = PROT_READ | PROT_WRITE
        plan.touch = Int32(touchCode(s.touch).rawValue)
        plan.length = s.size
        plan.offset = 0
        plan.touch_stride = backing.leafSize
        // The pool allocates its bookkeeping now, before a free range is picked below: a large
        // allocation made later could land in that range and make every MAP_FIXED_NOREPLACE fail.
        let pool = try WorkerPool(count: s.workers, plan: plan, phaseTimeoutSeconds: o.phaseTimeoutSeconds)
        defer { pool.teardown() }

        // Where and how the workers map.
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
        }
        // The probe above proved the flag with MAP_SHARED_VALIDATE; the workers map with plain
        // MAP_SHARED, because MAP_SHARED_VALIDATE refuses MAP_FIXED_NOREPLACE (not in the
        // kernel's LEGACY_MAP_MASK) with EOPNOTSUPP on every kernel.
        var flags = s.share == .pt ? MAP_SHARED | Int32(bitPattern: s.mapSharedPTValue) : MAP_SHARED
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
        defer { if let a = anonMapping { try? Sys.munmap(a, s.size) } }
        pool.setMapping(address: address, flags: flags)

        // Probes: base → spawn → control → map/touch → mapped.
        progress("sampling PageTables before forking")
        // A longer quiet window at base: tables of processes that exited just before (an
        // earlier run's workers) are uncounted after an RCU grace period, not at exit.
        let base = try Sampler.stablePageTables(window: 30, limitMs: 5000)
        let driverBase = try driverVmPTE()
        let nodes = ProcFS.numaNodes()
        let nodesBase = nodes.map { try? ProcFS.nodeMeminfo($0).pageTables }
        progress("forking \(s.workers) workers")
        let t0 = Sys.monotonicNanoseconds()
        try pool.spawn()
        let t1 = Sys.monotonicNanoseconds()
        let control = try Sampler.stablePageTables()
        let driverControl = try driverVmPTE()
        let nodesControl = nodes.map { try? ProcFS.nodeMeminfo($0).pageTables }
        let vmpteControl = try measuring(pool) { () throws(RunError) in try vmPTESum(pool.pids) }
        // What the worker already maps: tables present there are not the mapping's to pay for.
        let occupied = try measuring(pool) { () throws(RunError) in
            try ProcFS.smaps(pool.pids[0]).filter { e in Runner.holdsTables(e) && e.start != anonMapping }
                .map { $0.start..<$0.end }
        }

        progress("mapping and touching \(ByteSize(s.size)) in every worker")
        let t2 = Sys.monotonicNanoseconds()
        try pool.mapAndTouch(concurrency: o.mapConcurrency)
        let t3 = Sys.monotonicNanoseconds()
        let mapped = try Sampler.stablePageTables()
        let driverMapped = try driverVmPTE()
        let nodesMapped = nodes.map { try? ProcFS.nodeMeminfo($0).pageTables }
        let vmpteMapped = try measuring(pool) { () throws(RunError) in try vmPTESum(pool.pids) }
        let reports = pool.reports.compactMap { $0 }
        let addresses = Set(reports.map(\.address))
        let mapAddress = reports.first?.address ?? address
        let smaps = try measuring(pool) { () throws(RunError) in
            try sampleSmaps(pool.pids, address: mapAddress, count: o.smapsWorkers)
        }
        var tableCounts: (pte: Int, pmd: Int, pmdLeaves: Int, pudLeaves: Int, milliseconds: Int)?
        if tablesVersion != nil {
            tableCounts = try measuring(pool) { () throws(RunError) in try tableCensus(pool, size: s.size) }
        }
        try pool.checkAllAlive()
        let t4 = Sys.monotonicNanoseconds()

        var held = 0
        while held < o.holdSeconds * 10 {
            if Sys.stopSignal != 0 { throw .interrupted(signal: Sys.stopSignal) }
            Sys.sleep(milliseconds: 100)
            try pool.checkAllAlive()
            held += 1
        }
        try pool.releaseAndReap()
        let t5 = Sys.monotonicNanoseconds()

        // Model.
        let pmdMapped = (smaps?.range["ShmemPmdMapped"] ?? 0) + (smaps?.range["FilePmdMapped"] ?? 0)
        let input = ModelInput(
            workers: s.workers, address: mapAddress, size: s.size, fileOffset: 0, leafSize: backing.leafSize,
            touched: s.touch.faultsIn, share: s.share, hugetlbPMDSharing: pmdSharing?.enabled ?? false,
            occupied: occupied, pmdMappedBytes: pmdMapped)
        var model = PageTableModel.expected(input)
        if addresses.count > 1 {
            model.reason += "; workers got \(addresses.count) different addresses, modelled at the first"
        }

        // Verdict.
        // The driver is not part of the scenario: its own tables (its heap grows while it
        // reads /proc) are taken out of every delta, exactly, from its VmPTE.
        let pt = { (x: StableSample) in Int64(x.meminfo.pageTables ?? 0) }
        let rawDelta = pt(mapped) - pt(base) - (driverMapped - driverBase)
        let controlDelta = pt(control) - pt(base) - (driverControl - driverBase)
        let attributed = rawDelta - controlDelta
        var verdict = Verdict.judge(
            attributed: attributed, model: model, workers: s.workers, tolerance: s.tolerance,
            samplingStable: base.stable && control.stable && mapped.stable)
        var tables: RunReport.Tables?
        if let c = tableCounts, let v = tablesVersion {
            let expect = { (level: String) in model.level(level)?.distinctTables ?? 0 }
            let t = RunReport.Tables(
                interfaceVersion: v, workersQueried: s.workers, distinctPteTables: c.pte, distinctPmdTables: c.pmd,
                expectedDistinctPteTables: expect("pte"), expectedDistinctPmdTables: expect("pmd"),
                pmdLeafSteps: c.pmdLeaves, pudLeafSteps: c.pudLeaves, queryMilliseconds: c.milliseconds)
            tables = t
            verdict = verdict.judgingTables(t, faultedIn: s.touch.faultsIn)
        }
        if let note = tablesNote { verdict.reason += "; " + note }
        if s.backing == .hugetlbfs, let p = pmdSharing, p.enabled == nil,
            model.levels.contains(where: { $0.level == "pmd" && $0.spans > $0.alreadyPresent })
        {
            verdict = Verdict(
                status: .skip, reason: "cannot model hugetlb PMD sharing: \(p.basis)",
                allowedDeviationBytes: verdict.allowedDeviationBytes)
        }

        // Report.
        let w = Int64(s.workers)
        let measured = RunReport.Measured(
            pageTablesDeltaBytes: rawDelta,
            controlPageTablesDeltaBytes: controlDelta,
            attributedPageTableBytes: attributed,
            attributedPerWorkerBytes: attributed / w,
            controlPerWorkerBytes: controlDelta / w,
            driverVmpteBytes: .init(base: driverBase, control: driverControl, mapped: driverMapped),
            vmpteSumBytes: vmpteMapped, vmpteControlSumBytes: vmpteControl,
            vmpteAttributedBytes: vmpteMapped - vmpteControl,
            mappingAddress: hex(mapAddress), distinctMappingAddresses: addresses.count,
            meminfo: .init(base: .init(base.meminfo), control: .init(control.meminfo), mapped: .init(mapped.meminfo)),
            sampling: .init(base: .init(base), control: .init(control), mapped: .init(mapped)),
            numaNodes: nodes.indices.map { i in
                let b = nodesBase[i] ?? nil
                let c = nodesControl[i] ?? nil
                let m = nodesMapped[i] ?? nil
                return RunReport.NodeReport(
                    node: nodes[i], pageTables: .init(base: b, control: c, mapped: m),
                    attributedBytes: (m != nil && c != nil) ? Int64(m!) - Int64(c!) : nil)
            },
            smaps: smaps)
        let seconds = { (a: UInt64, b: UInt64) in Double(b - a) / 1e9 }
        return RunReport(
            tool: .init(version: PTShareVersion.string),
            kernel: .init(release: release, machine: machine, hugetlbPmdSharing: pmdSharing, shmemThp: thp),
            scenario: .init(
                backing: s.backing.rawValue, object: backing.name, sizeBytes: s.size, workers: s.workers,
                share: s.share.rawValue, touch: s.touch.rawValue, address: s.address.description,
                mapSharedPtValue: hex(UInt64(s.mapSharedPTValue)), mmapFlags: hex(UInt64(UInt32(bitPattern: flags))),
                leafPageSizeBytes: backing.leafSize, tolerance: s.tolerance),
            measured: measured,
            model: .init(
                expectedPageTableBytes: model.expectedPageTableBytes,
                unsharedPageTableBytes: model.unsharedPageTableBytes,
                perWorkerBytes: model.perWorkerBytes, sharedBytes: model.sharedBytes, levels: model.levels,
                reason: model.reason, occupiedRanges: occupied.count, pmdMappedBytes: pmdMapped),
            timings: .init(
                spawnSeconds: seconds(t0, t1), mapTouchSeconds: seconds(t2, t3),
                readySeconds: seconds(t0, t1) + seconds(t2, t3), measureSeconds: seconds(t3, t4),
                teardownSeconds: seconds(t4, t5) - Double(o.holdSeconds),
                mapNs: .init(reports.map(\.mapNanoseconds)), touchNs: .init(reports.map(\.touchNanoseconds))),
            verdict: verdict.status, reason: verdict.reason, allowedDeviationBytes: verdict.allowedDeviationBytes,
            tables: tables)
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
