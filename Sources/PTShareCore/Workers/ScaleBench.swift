import CPTShare
import Glibc

/// `ptshare scale`: what a shared file costs as its sharers go from one to thousands. One
/// driver maps and fills the file, then adds sharers step by step (each maps it and reads a word
/// per 2 MiB chunk, attaching the chunk's table or faulting its own, then waits); at each step it
/// times the new sharers' start, 4 KiB hole punches and one-page truncates (each clears one
/// present page, which every sharer maps), and reads PageTables; at the end all sharers exit at
/// once (timed) and the driver unmaps. Run with the flag and without (`flag` 0: plain
/// MAP_SHARED, where every sharer has tables of its own and every zap visits them all).
public struct ScaleOptions: Sendable {
    public var size: UInt64
    public var steps: [Int]
    /// MAP_SHARED_PT's value, or 0 for plain MAP_SHARED.
    public var flag: UInt32
    public var punches: Int
    public var truncates: Int

    public init(size: UInt64, steps: [Int], flag: UInt32, punches: Int = 8, truncates: Int = 4) {
        self.size = size
        self.steps = steps
        self.flag = flag
        self.punches = punches
        self.truncates = truncates
    }
}

public struct ScaleStep: Sendable, Codable, Equatable {
    public var sharers: Int
    /// Wall time from the first fork of the step to the last new sharer's byte, per new sharer.
    public var startMicrosPerSharer: Double
    public var punchMicros: Double
    public var truncateMicros: Double
    /// PageTables above its value before the first sharer (the driver's tables already there).
    public var pageTablesBytes: UInt64
    /// The PTE tables the sharers' mappings add: none with the flag (they use the driver's),
    /// one per chunk per sharer without.
    public var modelPTEBytes: UInt64
    /// What is left per sharer: the forked process's own page tables (its stack, its copy of
    /// the driver's private memory, the upper levels).
    public var otherBytesPerSharer: UInt64
}

public struct ScaleReport: Sendable, Codable {
    public var mode: String
    public var size: UInt64
    public var steps: [ScaleStep]
    /// Closing the hold pipe to the last sharer reaped, all of them.
    public var exitMillis: Double
    public var driverUnmapMicros: Double
}

public enum ScaleBench {
    static func micros(_ from: UInt64) -> Double { Double(Sys.monotonicNanoseconds() - from) / 1000 }

    static func pageTables() throws(RunError) -> UInt64 {
        guard let v = try ProcFS.meminfo().pageTables else {
            throw .preflight("/proc/meminfo has no PageTables line")
        }
        return v
    }

    public static func run(_ o: ScaleOptions, log: (String) -> Void) throws(RunError) -> ScaleReport {
        let chunk = Geometry.pmdSize
        let page = Geometry.page
        guard o.size % chunk == 0, o.size > 0 else { throw .preflight("--size \(ByteSize(o.size)): a multiple of 2M") }
        guard !o.steps.isEmpty, o.steps == o.steps.sorted(), o.steps[0] >= 1 else {
            throw .preflight("--sharers: increasing counts, at least 1")
        }
        let chunks = o.size / chunk
        guard UInt64(o.punches + o.truncates) * UInt64(o.steps.count) < o.size / page / 2 else {
            throw .preflight("--size \(ByteSize(o.size)) has too few pages for the punches and truncates")
        }
        let flags = o.flag == 0 ? MAP_SHARED : ptshare_MAP_SHARED_VALIDATE | Int32(bitPattern: o.flag)
        let fd: Int32
        do {
            fd = try Sys.memfdCreate("ptshare-scale", flags: UInt32(ptshare_MFD_CLOEXEC))
            try Sys.ftruncate(fd, o.size, path: "memfd:ptshare-scale")
        } catch { throw .system(error) }
        defer { Sys.close(fd) }
        let addr: UInt64
        do {
            addr = try Sys.mmap(0, o.size, prot: PROT_READ | PROT_WRITE, flags: flags, fd: fd, offset: 0)
        } catch {
            if o.flag != 0 && (error.errno == EOPNOTSUPP || error.errno == EINVAL) {
                throw .sharedPTUnsupported(value: o.flag, errno: error.errno, release: Suite.release())
            }
            throw .system(error)
        }
        // The file's pages, and the driver's tables, before any sharer.
        var off: UInt64 = 0
        while off < o.size {
            UnsafeMutableRawPointer(bitPattern: UInt(addr + off))!.storeBytes(of: off, as: UInt64.self)
            off += page
        }
        let base = try pageTables()
        let ready: (read: Int32, write: Int32)
        let hold: (read: Int32, write: Int32)
        do {
            ready = try Sys.pipe()
            hold = try Sys.pipe()
        } catch { throw .system(error) }
        var pids: [pid_t] = []
        var holdOpen = true
        defer {
            if holdOpen { Sys.close(hold.write) }
            for pid in pids { _ = try? Sys.waitpid(pid, noHang: false) }
            Sys.close(ready.read)
            Sys.close(ready.write)
            Sys.close(hold.read)
        }
        var steps: [ScaleStep] = []
        var zapped = 0  // pages punched or truncated so far: each next one is still present
        for n in o.steps {
            let added = n - pids.count
            let t0 = Sys.monotonicNanoseconds()
            for _ in 0..<added {
                do {
                    pids.append(
                        try Sys.scaleSpawn(
                            fd: fd, size: o.size, flags: flags, ready: ready.write, hold: hold.read,
                            close: [ready.read, hold.write]))
                } catch { throw .forkFailed(index: pids.count, error: error) }
            }
            var got = 0
            var buf = [UInt8](repeating: 0, count: 4096)
            let deadline = t0 + 1_800_000_000_000
            while got < added {
                let readable: Bool
                do { readable = try Sys.pollReadable(ready.read, timeoutMs: 1000) } catch { throw .system(error) }
                if readable {
                    do { got += try Sys.read(ready.read, into: &buf) } catch { throw .system(error) }
                    continue
                }
                // A sharer that could not map never answers: find it rather than wait.
                for (i, pid) in pids.enumerated().reversed() {
                    let w: (pid: pid_t, status: Int32)?
                    do { w = try Sys.waitpid(pid, noHang: true) } catch { throw .system(error) }
                    if let w {
                        pids.remove(at: i)
                        throw .workerDied(
                            index: i, pid: pid, phase: .ready, status: WorkerPool.describe(status: w.status))
                    }
                }
                guard Sys.monotonicNanoseconds() < deadline else {
                    throw .timeout(phase: "scale start", seconds: 1800, missing: added - got)
                }
            }
            let start = micros(t0) / Double(max(added, 1))
            let tables = try pageTables() &- base
            var punch = 0.0
            for _ in 0..<o.punches {
                // Pages from the middle of the file, one per chunk in turn: never word 0 of a chunk.
                let k = UInt64(zapped)
                let offset = (k % chunks) * chunk + (1 + k / chunks) * page
                zapped += 1
                let t = Sys.monotonicNanoseconds()
                do { try Sys.punchHole(fd, offset: offset, length: page, path: "memfd:ptshare-scale") } catch {
                    throw .system(error)
                }
                punch += micros(t)
            }
            var truncate = 0.0
            for j in 0..<o.truncates {
                let cut = o.size - UInt64(steps.count * o.truncates + j + 1) * page
                let t = Sys.monotonicNanoseconds()
                do {
                    try Sys.ftruncate(fd, cut, path: "memfd:ptshare-scale")
                    truncate += micros(t)
                    try Sys.ftruncate(fd, o.size, path: "memfd:ptshare-scale")
                } catch { throw .system(error) }
            }
            let model = o.flag == 0 ? UInt64(n) * chunks * page : 0
            let step = ScaleStep(
                sharers: n, startMicrosPerSharer: start, punchMicros: punch / Double(max(o.punches, 1)),
                truncateMicros: truncate / Double(max(o.truncates, 1)), pageTablesBytes: tables,
                modelPTEBytes: model, otherBytesPerSharer: tables > model ? (tables - model) / UInt64(n) : 0)
            log(
                "scale: \(n) sharers: start \(formatFixed(start, decimals: 0)) µs each, punch "
                    + "\(formatFixed(step.punchMicros, decimals: 0)) µs, truncate \(formatFixed(step.truncateMicros, decimals: 0)) µs, "
                    + "PageTables +\(ByteSize(tables)) (the mappings' PTE tables \(ByteSize(model)), "
                    + "\(formatFixed(Double(step.otherBytesPerSharer) / 1024, decimals: 1)) KiB of other tables per sharer)"
            )
            steps.append(step)
        }
        let t = Sys.monotonicNanoseconds()
        Sys.close(hold.write)
        holdOpen = false
        for pid in pids {
            do { _ = try Sys.waitpid(pid, noHang: false) } catch { throw .system(error) }
        }
        pids = []
        let exit = micros(t) / 1000
        let u = Sys.monotonicNanoseconds()
        do { try Sys.munmap(addr, o.size) } catch { throw .system(error) }
        return ScaleReport(
            mode: o.flag == 0 ? "MAP_SHARED" : "MAP_SHARED_PT", size: o.size, steps: steps, exitMillis: exit,
            driverUnmapMicros: micros(u))
    }
}
