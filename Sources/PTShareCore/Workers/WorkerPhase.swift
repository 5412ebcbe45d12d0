import CPTShare

/// Where a worker was when it reported, or failed.
public enum WorkerPhase: UInt32, Sendable, Codable, CustomStringConvertible {
    case setup = 0
    case forked = 1
    case map = 2
    case touch = 3
    case ready = 4

    public var description: String {
        switch self {
        case .setup: return "setup"
        case .forked: return "forked"
        case .map: return "mmap"
        case .touch: return "touch"
        case .ready: return "ready"
        }
    }
}

/// One decoded `struct ptshare_worker_report`.
public struct WorkerReport: Sendable, Equatable {
    public var index: Int
    public var pid: Int32
    public var phase: WorkerPhase
    public var errno: Int32
    public var address: UInt64
    public var mapNanoseconds: UInt64
    public var touchNanoseconds: UInt64
}

/// Why a run stopped before its verdict.
public indirect enum RunError: Error, CustomStringConvertible, Sendable {
    case system(SystemCallError)
    case parse(ProcParseError)
    case preflight(String)
    /// `--share pt` on a kernel that does not honour the flag.
    case sharedPTUnsupported(value: UInt32, errno: Int32, release: String)
    case workerFailed(index: Int, pid: Int32, phase: WorkerPhase, errno: Int32, call: String)
    case workerDied(index: Int, pid: Int32, phase: WorkerPhase, status: String)
    case forkFailed(index: Int, error: SystemCallError)
    case timeout(phase: String, seconds: Int, missing: Int)
    case interrupted(signal: Int32)
    case badReport(String)
    /// A libnuma call of the placement (`--cpunodebind`, `--membind`, `--interleave`) failed.
    case numa(NumaError)
    /// The run failed with the placement in force, and undoing it failed too.
    case placementNotRestored(after: RunError, NumaError)

    public var description: String {
        switch self {
        case .system(let e): return e.description
        case .parse(let e): return e.description
        case .preflight(let s): return s
        case .sharedPTUnsupported(let v, let e, let release):
            return "--share pt: kernel \(release) does not honour MAP_SHARED_PT \(hex(UInt64(v))): "
                + "mmap(MAP_SHARED_VALIDATE | \(hex(UInt64(v)))) failed with \(ErrnoName.of(e)) (errno \(e)); "
                + "boot a kernel with the MAP_SHARED_PT series, or pass the value it uses with --map-shared-pt-value"
        case .workerFailed(let i, let pid, let phase, let e, let call):
            return "worker \(i) (pid \(pid)) failed in phase \(phase): \(call) returned \(ErrnoName.of(e)) (errno \(e))"
        case .workerDied(let i, let pid, let phase, let status):
            return "worker \(i) (pid \(pid)) \(status) after phase \(phase)"
        case .forkFailed(let i, let e):
            return "fork of worker \(i) failed: \(ErrnoName.of(e.errno)) (errno \(e.errno)); "
                + "check RLIMIT_NPROC (ulimit -u), /proc/sys/kernel/pid_max, threads-max and the pids cgroup"
        case .timeout(let phase, let s, let missing):
            return "timed out after \(s) s waiting for \(missing) worker(s) to reach phase \(phase)"
        case .interrupted(let sig):
            return "interrupted by signal \(sig); all workers terminated and reaped"
        case .badReport(let s): return "malformed worker report: \(s)"
        case .numa(let e): return "NUMA placement: \(e.description)"
        case .placementNotRestored(let first, let e):
            return
                "\(first.description); then restoring the driver's CPU mask and memory policy failed: \(e.description)"
        }
    }

    /// Exit status for the CLI: 128+signal when interrupted, else 3 (the run could not complete).
    public var exitCode: Int32 {
        if case .interrupted(let sig) = self { return 128 + sig }
        if case .placementNotRestored(let first, _) = self { return first.exitCode }
        return 3
    }
}

extension WorkerReport {
    init(_ r: ptshare_worker_report) throws(RunError) {
        guard let phase = WorkerPhase(rawValue: r.phase) else {
            throw .badReport("worker \(r.index) sent phase \(r.phase)")
        }
        self.init(
            index: Int(r.index), pid: r.pid, phase: phase, errno: r.error, address: r.address,
            mapNanoseconds: r.map_ns, touchNanoseconds: r.touch_ns)
    }
}
