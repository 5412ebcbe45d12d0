import CPTShare
import Glibc
import Histogram

/// What stops a sweep before its first point, or in the middle of one.
public enum BenchError: Error, CustomStringConvertible, Sendable {
    /// The sweep will not fit this machine: the message gives the numbers.
    case wontFit(String)
    case system(SystemCallError)
    case run(RunError)
    case fragment(String)

    public var description: String {
        switch self {
        case .wontFit(let s): return s
        case .system(let e): return e.description
        case .run(let e): return e.description
        case .fragment(let s): return "--fragment: \(s)"
        }
    }
}

/// Where a sweep stands, for the progress line.
public struct BenchProgress: Sendable {
    public var index: Int
    public var total: Int
    public var label: String
    public var repeatIndex: Int
    public var elapsedSeconds: Double
    /// Seconds left at the pace so far, weighted by workers (a point's cost grows with them);
    /// nil before the first run finished.
    public var etaSeconds: Double?
}

/// `ptshare bench`: every point of the sweep `repeats` times, each a real run.
public enum Bench {
    /// Memory a worker costs besides its tables of the mapping: kernel stack, task and mm
    /// structures, the tables and copied pages of the binary. The control point measures 52–60
    /// KiB of page tables per worker natively; 192 KiB is a ceiling with room, used only to
    /// refuse sweeps that cannot fit.
    public static let perWorkerOverheadBytes: UInt64 = 192 << 10
    /// Left free beyond a sweep's estimate.
    public static let reserveBytes: UInt64 = 256 << 20
    static let shmemEnabledPath = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

    /// What one point needs from free memory at most: the file's pages (hugetlbfs's come from
    /// its pool), every worker's unshared tables of the mapping and its process overhead.
    public static func estimatedBytes(_ p: BenchSpec.Point) -> UInt64 {
        let file = p.backing == .hugetlbfs ? 0 : p.sizeBytes
        let leaf = p.backing == .hugetlbfs ? Geometry.pmdSize : Geometry.page
        let model = PageTableModel.expected(
            ModelInput(
                workers: p.workers, address: Geometry.pudSize, size: p.sizeBytes, leafSize: leaf, touched: true,
                share: p.share.usesFlag ? .pt : .none))
        return file + UInt64(max(0, model.expectedPageTableBytes)) + UInt64(p.workers) * perWorkerOverheadBytes
    }

    /// Refuses a sweep that cannot fit, with the numbers: process IDs and memory.
    public static func checkCapacity(
        _ points: [BenchSpec.Point], memAvailable: UInt64?, pidMax: Int?, threadsMax: Int?, tasksNow: Int
    ) throws(BenchError) {
        guard let largest = points.max(by: { $0.workers < $1.workers }) else { return }
        // The workers, the driver, and what already runs: all need a PID at once.
        if let pidMax, largest.workers + tasksNow + 16 > pidMax {
            throw .wontFit(
                "\(largest.label): \(largest.workers) workers + \(tasksNow) tasks already running need more PIDs than "
                    + "kernel.pid_max \(pidMax) allows; raise it (sysctl kernel.pid_max=\(max(4 * largest.workers, largest.workers + tasksNow + 16))) or "
                    + "sweep fewer workers")
        }
        if let threadsMax, largest.workers + tasksNow + 16 > threadsMax {
            throw .wontFit(
                "\(largest.label): \(largest.workers) workers + \(tasksNow) tasks exceed kernel.threads-max "
                    + "\(threadsMax) (set from memory at boot): give the machine more memory or sweep fewer workers")
        }
        guard let avail = memAvailable else { return }
        let need = points.map(estimatedBytes).max() ?? 0
        if need + reserveBytes > avail {
            let worst = points.max { estimatedBytes($0) < estimatedBytes($1) }!
            throw .wontFit(
                "\(worst.label) needs about \(ByteSize.human(Int64(need))) (file \(ByteSize(worst.sizeBytes)), "
                    + "page tables by the model, \(ByteSize(perWorkerOverheadBytes)) per worker for the process) "
                    + "plus \(ByteSize(reserveBytes)) in reserve, but MemAvailable is \(ByteSize.human(Int64(avail)))")
        }
    }

    /// Runs the sweep. `command` is recorded as given; `progress` is called before each run.
    public static func run(
        _ spec: BenchSpec, command: [String], accelerator: String? = nil,
        progress: (BenchProgress) -> Void = { _ in }, log: (String) -> Void = { _ in }
    ) throws(BenchError) -> BenchReport {
        let (points, notApplicable) = spec.expand()
        for (p, why) in notApplicable { log("not applicable: \(p.label): \(why)") }
        let meminfo = try? ProcFS.meminfo()
        let pidMax = (try? ProcFS.read("/proc/sys/kernel/pid_max")).flatMap { Int($0.trimmingWhitespace()) }
        let threadsMax = (try? ProcFS.read("/proc/sys/kernel/threads-max")).flatMap { Int($0.trimmingWhitespace()) }
        try checkCapacity(
            points, memAvailable: meminfo?.memAvailable, pidMax: pidMax, threadsMax: threadsMax,
            tasksNow: runningTasks())
        let release: String
        let machine: String
        do { (release, machine) = try Sys.uname() } catch { throw .system(error) }
        let thpAtStart = (try? ProcFS.read(shmemEnabledPath)).flatMap {
            try? ThpSetting.parse($0, source: shmemEnabledPath)
        }
        // Every thp point sets `always`, every other point `never` (as root): each mode is what
        // its name says whatever the system had; the system's setting comes back at the end.
        defer {
            if let t = thpAtStart {
                do { try Sys.writeFile(shmemEnabledPath, t.selected) } catch {
                    log("could not restore \(shmemEnabledPath) to \(t.selected): \(error)")
                }
            }
        }
        let started = Sys.monotonicNanoseconds()
        let startedAt = utcTimestamp()
        var fragmentation: BenchReport.Fragmentation?
        var holder: pid_t?
        defer {
            if let h = holder {
                _ = try? Sys.kill(h, SIGKILL)
                _ = try? Sys.waitpid(h, noHang: false)
            }
        }
        // Compaction may not move mlocked pages while this is 0: the holder's pages then stay
        // where they are, as a server's slab and page-table pages do.
        let unevictable = "/proc/sys/vm/compact_unevictable_allowed"
        let unevictableWas = spec.fragment ? (try? ProcFS.read(unevictable))?.trimmingWhitespace() : nil
        defer {
            if let w = unevictableWas {
                do { try Sys.writeFile(unevictable, w) } catch {
                    log("could not restore \(unevictable) to \(w): \(error)")
                }
            }
        }
        if spec.fragment {
            let need = points.map(estimatedBytes).max() ?? 0
            var pinned = false
            if unevictableWas != nil {
                do {
                    try Sys.writeFile(unevictable, "0")
                    pinned = true
                } catch { log("\(unevictable) cannot be set to 0 (\(error)): compaction may undo the fragmentation") }
            } else {
                log("no \(unevictable) (CONFIG_COMPACTION off?): the holder's pages stay where they are anyway")
            }
            let (pid, f) = try fragmentFreeMemory(leaving: need + reserveBytes, log: log)
            holder = pid
            fragmentation = f
            fragmentation?.compactionMayMoveHeldPages = unevictableWas != nil && !pinned
        }
        var out: [BenchReport.Point] = []
        let total = points.count * spec.repeats
        let weightTotal = Double(points.reduce(0) { $0 + $1.workers }) * Double(spec.repeats)
        var weightDone = 0.0
        var index = 0
        for p in points {
            var point = BenchReport.Point(
                label: p.label, backing: p.backing.rawValue, sizeBytes: p.sizeBytes, workers: p.workers,
                share: p.share.rawValue, skipped: nil, samples: [])
            if let why = setThp(for: p.share, available: thpAtStart) {
                point.skipped = why
                log("SKIP \(p.label): \(why)")
                index += spec.repeats
                weightDone += Double(p.workers * spec.repeats)
                out.append(point)
                continue
            }
            for r in 0..<spec.repeats {
                let elapsed = Double(Sys.monotonicNanoseconds() - started) / 1e9
                progress(
                    BenchProgress(
                        index: index, total: total, label: p.label, repeatIndex: r, elapsedSeconds: elapsed,
                        etaSeconds: weightDone > 0 ? elapsed / weightDone * (weightTotal - weightDone) : nil))
                index += 1
                weightDone += Double(p.workers)
                switch sample(spec, p, repeatIndex: r) {
                case .sample(let s):
                    point.samples.append(s)
                    if let e = s.error { log("\(p.label) #\(r + 1): run failed: \(e)") }
                case .skip(let why):
                    point.skipped = why
                    log("SKIP \(p.label): \(why)")
                case .stop(let e):
                    throw .run(e)
                }
                if point.skipped != nil {
                    index += spec.repeats - r - 1
                    weightDone += Double(p.workers * (spec.repeats - r - 1))
                    break
                }
            }
            out.append(point)
        }
        if let h = holder, let r = try? Sys.waitpid(h, noHang: true), r.pid == h {
            // Killed during the sweep (the OOM killer?): the points after it ran unfragmented.
            log("the fragmenting holder (pid \(h)) died during the sweep: later points ran on unfragmented memory")
            fragmentation?.holderDiedDuringSweep = true
            holder = nil
        } else if fragmentation != nil {
            fragmentation?.holderDiedDuringSweep = false
        }
        let elapsed = Double(Sys.monotonicNanoseconds() - started) / 1e9
        return BenchReport(
            tool: .init(version: PTShareVersion.string),
            kernel: .init(release: release, machine: machine, shmemThpAtStart: thpAtStart?.selected),
            machine: .init(
                onlineCpus: RunOptions.defaultMapConcurrency, memTotalBytes: meminfo?.fields["MemTotal"],
                pidMax: pidMax, accelerator: accelerator),
            command: command, started: startedAt, elapsedSeconds: elapsed,
            spec: .init(
                workers: spec.workers, sizesBytes: spec.sizes, shares: spec.shares.map(\.rawValue),
                backings: spec.backings.map(\.rawValue), repeats: spec.repeats, fragment: spec.fragment,
                touch: spec.touch.rawValue, mapConcurrency: spec.mapConcurrency),
            fragmentation: fragmentation, points: out,
            notApplicable: notApplicable.map { .init(point: $0.0.label, reason: $0.1) })
    }

    enum SampleOutcome {
        case sample(BenchReport.Sample)
        /// The point cannot run here (the flag unsupported): its remaining repeats are skipped.
        case skip(String)
        /// Interrupted: the sweep ends.
        case stop(RunError)
    }

    static func sample(_ spec: BenchSpec, _ p: BenchSpec.Point, repeatIndex: Int) -> SampleOutcome {
        var o = RunOptions(
            scenario: spec.scenario(p), smapsWorkers: 8, phaseTimeoutSeconds: spec.phaseTimeoutSeconds,
            mapConcurrency: spec.mapConcurrency, tables: spec.tables)
        o.keepWorkerTimes = true
        let before = try? ProcFS.counters("/proc/vmstat")
        let report: RunReport
        do { report = try Runner.run(o) } catch {
            switch error {
            case .sharedPTUnsupported: return .skip(error.description)
            case .interrupted: return .stop(error)
            default:
                return .sample(
                    .init(repeatIndex: repeatIndex, metrics: nil, thpCounters: nil, error: error.description))
            }
        }
        let after = try? ProcFS.counters("/proc/vmstat")
        var thp: BenchReport.ThpCounters?
        if let b = before, let a = after {
            let d = { (k: String) in Counters.delta(b, a, k) }
            thp = .init(
                thpFileAlloc: d("thp_file_alloc"), thpFileFallback: d("thp_file_fallback"),
                thpFaultAlloc: d("thp_fault_alloc"), thpFaultFallback: d("thp_fault_fallback"))
        }
        return .sample(
            .init(
                repeatIndex: repeatIndex, metrics: metrics(report, thp: thp), thpCounters: thp, error: nil, run: report)
        )
    }

    /// The metrics `compare` and the report read, from one run.
    public static func metrics(_ r: RunReport, thp: BenchReport.ThpCounters?) -> BenchReport.Metrics {
        let alloc = thp?.thpFileAlloc ?? 0
        let fallback = thp?.thpFileFallback ?? 0
        return BenchReport.Metrics(
            attributedPageTableBytes: r.measured.attributedPageTableBytes,
            modelPageTableBytes: r.model.expectedPageTableBytes,
            modelUnsharedPageTableBytes: r.model.unsharedPageTableBytes,
            distinctPteTables: r.tables?.distinctPteTables, distinctPmdTables: r.tables?.distinctPmdTables,
            pmdMappedBytes: r.model.pmdMappedBytes, spawnSeconds: r.timings.spawnSeconds,
            mapTouchSeconds: r.timings.mapTouchSeconds, teardownSeconds: r.timings.teardownSeconds,
            mapNs: percentiles(r.workerTimes?.mapNs ?? []), touchNs: percentiles(r.workerTimes?.touchNs ?? []),
            thpSuccessPercent: alloc + fallback > 0 ? 100 * Double(alloc) / Double(alloc + fallback) : nil,
            verdict: r.verdict, reason: r.reason)
    }

    /// Percentiles of the workers' times from an HdrHistogram (3 significant digits).
    public static func percentiles(_ values: [UInt64]) -> BenchReport.Percentiles {
        var h = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        h.autoResize = true
        for v in values { _ = h.record(v) }
        guard h.totalCount > 0 else { return .init(p50: 0, p90: 0, p99: 0, p999: 0, max: 0, count: 0) }
        return .init(
            p50: h.valueAtPercentile(50), p90: h.valueAtPercentile(90), p99: h.valueAtPercentile(99),
            p999: h.valueAtPercentile(99.9), max: h.max, count: h.totalCount)
    }

    /// shmem_enabled for a point of `share`: `always` for thp, `never` otherwise. Returns why the
    /// point cannot run, or nil. Without the file (no THP) or without root, only thp is refused:
    /// the other modes run with the system's setting, which every run report records.
    static func setThp(for share: BenchShare, available: ThpSetting?) -> String? {
        let thp = share.usesTHP
        let want = thp ? "always" : "never"
        guard let t = available else {
            return thp ? "\(shmemEnabledPath) unreadable: this kernel has no shmem THP" : nil
        }
        guard t.choices.contains(want) else {
            return thp ? "\(shmemEnabledPath) offers no \"always\" (\(t.choices.joined(separator: " ")))" : nil
        }
        do { try Sys.writeFile(shmemEnabledPath, want) } catch {
            return thp ? "share \(share.rawValue) sets \(shmemEnabledPath) to always: \(error) (run as root)" : nil
        }
        return nil
    }

    /// Starts the holder child: it takes all free memory but what the sweep needs, page by
    /// page, and gives back single pages spread over it, so the sweep's memory comes from 4 KiB
    /// holes and a 2 MiB folio needs compaction.
    static func fragmentFreeMemory(leaving need: UInt64, log: (String) -> Void) throws(BenchError) -> (
        pid_t, BenchReport.Fragmentation
    ) {
        let m: Meminfo
        do { m = try ProcFS.meminfo() } catch { throw .fragment("/proc/meminfo: \(error)") }
        guard let free = m.fields["MemFree"] else { throw .fragment("/proc/meminfo has no MemFree") }
        // Kernel allocations while touching need room: the holder's own page tables (1/512 of
        // what it holds) and 64 MiB besides.
        let slack: UInt64 = 64 << 20 + free / 512
        let held = free > slack ? (free - slack) / Geometry.page * Geometry.page : 0
        // One page of every `stride` given back: at least `need` free, all of it single pages.
        let stride = held / max(need, Geometry.page)
        guard stride >= 2 else {
            throw .fragment(
                "MemFree \(ByteSize.human(Int64(free))) is less than twice the sweep's \(ByteSize.human(Int64(need))) "
                    + "(plus \(ByteSize.human(Int64(slack))) for the kernel): nothing would be left in single pages")
        }
        let hugeBefore = freeHugeBlocks()
        let fds: (read: Int32, write: Int32)
        do { fds = try Sys.pipe() } catch { throw .system(error) }
        defer { Glibc.close(fds.read) }
        let pid: pid_t
        do { pid = try Sys.fragmentInChild(bytes: held, stride: stride, resultFD: fds.write) } catch {
            Glibc.close(fds.write)
            throw .system(error)
        }
        Glibc.close(fds.write)
        log("fragmenting: touching \(ByteSize.human(Int64(held))), giving back one 4 KiB page of every \(stride)")
        var r = ptshare_fragment_result()
        let n = withUnsafeMutableBytes(of: &r) { b in Glibc.read(fds.read, b.baseAddress, b.count) }
        guard n == MemoryLayout<ptshare_fragment_result>.size, r.error == 0 else {
            _ = try? Sys.kill(pid, SIGKILL)
            _ = try? Sys.waitpid(pid, noHang: false)
            let call = ["", "prctl", "mmap", "madvise", "mlock2"][Int(max(0, min(4, r.call)))]
            throw .fragment(
                n <= 0
                    ? "the holder died before reporting (OOM killer? MemFree \(ByteSize.human(Int64(free))))"
                    : "the holder's \(call) failed: \(ErrnoName.of(r.error)) (errno \(r.error))")
        }
        let after = (try? ProcFS.meminfo())?.fields["MemFree"]
        let f = BenchReport.Fragmentation(
            heldBytes: r.touched, releasedBytes: r.released, stride: stride, locked: r.locked == 1,
            memFreeBeforeBytes: free,
            memFreeAfterBytes: after, freeHugeBlocksBefore: hugeBefore, freeHugeBlocksAfter: freeHugeBlocks())
        log(
            "fragmented: \(ByteSize.human(Int64(r.released))) free in single pages, free 2 MiB blocks "
                + "\(f.freeHugeBlocksBefore.map(String.init) ?? "?") before, \(f.freeHugeBlocksAfter.map(String.init) ?? "?") after"
        )
        return (pid, f)
    }

    static func freeHugeBlocks() -> UInt64? {
        guard let text = try? ProcFS.read("/proc/buddyinfo"), let zones = try? BuddyInfo.parse(text) else {
            return nil
        }
        return zones.reduce(0) { $0 + $1.freeBlocks(ofAtLeastOrder: 9) }
    }

    /// Processes and threads now (the PIDs the sweep shares the machine with).
    static func runningTasks() -> Int {
        guard let text = try? ProcFS.read("/proc/loadavg") else { return 0 }
        // "0.00 0.01 0.05 1/123 4567": runnable/total.
        let f = text.split(separator: " ")
        guard f.count >= 4, let slash = f[3].firstIndex(of: "/") else { return 0 }
        return Int(f[3][f[3].index(after: slash)...]) ?? 0
    }

    static func utcTimestamp() -> String {
        var t = time(nil)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &tm)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
