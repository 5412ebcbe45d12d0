import CPTShare
import Glibc

/// N forked workers that share one process group and three pipes:
/// reports (workers → driver), go (one byte = one worker may map and touch now),
/// release (EOF = exit).
/// Every worker is reaped before the pool is dropped; `teardown()` is idempotent.
public final class WorkerPool {
    public let count: Int
    private let plan: UnsafeMutablePointer<ptshare_worker_plan>
    private var report: (read: Int32, write: Int32)
    private var go: (read: Int32, write: Int32)
    private var release: (read: Int32, write: Int32)
    public private(set) var pgid: pid_t = 0
    public private(set) var pids: [pid_t] = []
    private var indexOfPid: [pid_t: Int] = [:]
    private var alive: Set<pid_t> = []
    private var phase: [WorkerPhase] = []
    private var pending: [UInt8] = []
    private var readBuffer = [UInt8](repeating: 0, count: 256 * MemoryLayout<ptshare_worker_report>.size)
    /// The latest report of each worker.
    public private(set) var reports: [WorkerReport?] = []
    public let phaseTimeoutSeconds: Int

    public init(count: Int, plan template: ptshare_worker_plan, phaseTimeoutSeconds: Int) throws(RunError) {
        self.count = count
        self.phaseTimeoutSeconds = phaseTimeoutSeconds
        do {
            report = try Sys.pipe()
            go = try Sys.pipe()
            release = try Sys.pipe()
        } catch { throw .system(error) }
        plan = .allocate(capacity: 1)
        plan.initialize(to: template)
        plan.pointee.driver_pid = getpid()
        plan.pointee.report_read_fd = report.read
        plan.pointee.report_write_fd = report.write
        plan.pointee.go_read_fd = go.read
        plan.pointee.go_write_fd = go.write
        plan.pointee.release_read_fd = release.read
        plan.pointee.release_write_fd = release.write
        // Reserved now so that the fork loop allocates nothing (see AddressPlanner).
        pids.reserveCapacity(count)
        indexOfPid.reserveCapacity(count)
        alive.reserveCapacity(count)
        phase = Array(repeating: .setup, count: count)
        reports = Array(repeating: nil, count: count)
        pending.reserveCapacity(64 * MemoryLayout<ptshare_worker_report>.stride)
    }

    deinit {
        teardown()
        plan.deallocate()
    }

    /// Where and with which flags the workers map; set once the address is chosen.
    public func setMapping(address: UInt64, flags: Int32) {
        plan.pointee.address = address
        plan.pointee.flags = flags
    }

    /// Forks every worker and waits until all report `forked` (settled, nothing mapped).
    public func spawn() throws(RunError) {
        for i in 0..<count {
            try checkStop()
            let pid: pid_t
            do { pid = try Sys.fork() } catch { throw .forkFailed(index: i, error: error) }
            if pid == 0 { ptshare_worker_main(plan, UInt32(i)) }
            if pgid == 0 {
                pgid = pid
                plan.pointee.pgid = pid
            }
            // Also done by the child; doing it here closes the window in which a TERM to the
            // group would miss a child that has not joined yet. ESRCH/EACCES: it already did or died.
            if Glibc.setpgid(pid, pgid) != 0 && errno != ESRCH && errno != EACCES {
                throw .system(SystemCallError("setpgid", errno: errno, value: "pid=\(pid) pgid=\(pgid)"))
            }
            pids.append(pid)
            indexOfPid[pid] = i
            alive.insert(pid)
            if i % 64 == 63 { try drain(timeoutMs: 0) }
        }
        Sys.close(go.read)
        Sys.close(release.read)
        Sys.close(report.write)
        go.read = -1
        release.read = -1
        report.write = -1
        try waitFor(.forked)
    }

    private var tokensGiven = 0
    private var concurrency = Int.max

    /// Lets every worker map and touch, at most `concurrency` at a time (a token per worker:
    /// a thousand runnable faulting processes on two CPUs mostly measure the scheduler);
    /// returns when all report `ready`.
    public func mapAndTouch(concurrency: Int) throws(RunError) {
        self.concurrency = min(count, max(1, concurrency))
        try handOutTokens()
        try waitFor(.ready)
        Sys.close(go.write)
        go.write = -1
    }

    private func handOutTokens() throws(RunError) {
        guard go.write >= 0 else { return }
        let ready = phase.lazy.filter { $0 == .ready }.count
        let due = min(count, ready + concurrency) - tokensGiven
        guard due > 0 else { return }
        do { try Sys.write(go.write, [UInt8](repeating: 0x67, count: due), path: "go pipe") } catch {
            throw .system(error)
        }
        tokensGiven += due
    }

    /// Fails if any worker has exited since it was forked (a crash, an OOM kill, a user's kill).
    public func checkAllAlive() throws(RunError) {
        try reapExited()
    }

    /// Lets the workers exit and reaps them; those that do not exit in time are killed.
    public func releaseAndReap() throws(RunError) {
        if release.write >= 0 {
            Sys.close(release.write)
            release.write = -1
        }
        let deadline = Sys.monotonicNanoseconds() + 10_000_000_000
        while !alive.isEmpty && Sys.monotonicNanoseconds() < deadline {
            do {
                if let (pid, _) = try Sys.waitpid(-pgid, noHang: true) {
                    alive.remove(pid)
                } else {
                    Sys.sleep(milliseconds: 5)
                }
            } catch { throw .system(error) }
        }
        teardown()
    }

    /// TERM to the group, a grace period, KILL, then reap every child. Safe to call twice.
    public func teardown() {
        for fd in [go.write, release.write, report.read, report.write, go.read, release.read] where fd >= 0 {
            Sys.close(fd)
        }
        go = (-1, -1)
        release = (-1, -1)
        report = (-1, -1)
        guard !alive.isEmpty else { return }
        signalAll(SIGTERM)
        let deadline = Sys.monotonicNanoseconds() + 1_000_000_000
        while !alive.isEmpty && Sys.monotonicNanoseconds() < deadline {
            if let (pid, _) = try? Sys.waitpid(-pgid, noHang: true) {
                alive.remove(pid)
            } else {
                Sys.sleep(milliseconds: 5)
            }
        }
        signalAll(SIGKILL)
        for pid in alive {
            var status: Int32 = 0
            while Glibc.waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        }
        alive.removeAll()
    }

    private func signalAll(_ sig: Int32) {
        if pgid > 0 { _ = Glibc.kill(-pgid, sig) }
        // Belt and braces for a child that died before joining the group's leader.
        for pid in alive { _ = Glibc.kill(pid, sig) }
    }

    private func checkStop() throws(RunError) {
        let sig = Sys.stopSignal
        if sig != 0 { throw .interrupted(signal: sig) }
    }

    /// Waits until every worker has reported `target`; any failure report or death ends it.
    private func waitFor(_ target: WorkerPhase) throws(RunError) {
        let start = Sys.monotonicNanoseconds()
        let limit = UInt64(phaseTimeoutSeconds) * 1_000_000_000
        while phase.contains(where: { $0.rawValue < target.rawValue }) {
            try checkStop()
            try drain(timeoutMs: 50)
            try reapExited()
            if target == .ready { try handOutTokens() }
            if Sys.monotonicNanoseconds() - start > limit {
                throw .timeout(
                    phase: target.description, seconds: phaseTimeoutSeconds,
                    missing: phase.filter { $0.rawValue < target.rawValue }.count)
            }
        }
    }

    private func reapExited() throws(RunError) {
        while true {
            let r: (pid: pid_t, status: Int32)?
            do { r = try Sys.waitpid(-pgid, noHang: true) } catch { throw .system(error) }
            guard let (pid, status) = r else { return }
            alive.remove(pid)
            // A failure report may be in the pipe already; it says more than the exit status.
            try drain(timeoutMs: 0)
            let i = indexOfPid[pid] ?? -1
            throw .workerDied(
                index: i, pid: pid, phase: i >= 0 ? phase[i] : .setup, status: WorkerPool.describe(status: status))
        }
    }

    static func describe(status: Int32) -> String {
        if ptshare_wifsignaled(status) != 0 {
            let sig = ptshare_wtermsig(status)
            return "was killed by signal \(sig) (\(signalName(sig)))"
        }
        return "exited with status \(ptshare_wexitstatus(status))"
    }

    static func signalName(_ sig: Int32) -> String {
        switch sig {
        case SIGKILL: return "SIGKILL"
        case SIGTERM: return "SIGTERM"
        case SIGSEGV: return "SIGSEGV"
        case SIGBUS: return "SIGBUS"
        case SIGINT: return "SIGINT"
        case SIGABRT: return "SIGABRT"
        default: return "signal \(sig)"
        }
    }

    /// Reads whatever reports are waiting (up to `timeoutMs` for the first).
    private func drain(timeoutMs: Int32) throws(RunError) {
        let size = MemoryLayout<ptshare_worker_report>.size
        do {
            guard try Sys.pollReadable(report.read, timeoutMs: timeoutMs) else { return }
            let n = try Sys.read(report.read, into: &readBuffer)
            pending.append(contentsOf: readBuffer[0..<n])
        } catch { throw .system(error) }
        while pending.count >= size {
            let raw = pending.withUnsafeBytes { $0.loadUnaligned(as: ptshare_worker_report.self) }
            pending.removeFirst(size)
            let r = try WorkerReport(raw)
            guard r.index >= 0 && r.index < count else { throw .badReport("index \(r.index) of \(count)") }
            if r.errno != 0 {
                throw .workerFailed(
                    index: r.index, pid: r.pid, phase: r.phase, errno: r.errno,
                    call: WorkerPool.call(for: r.phase, touch: plan.pointee.touch))
            }
            phase[r.index] = r.phase
            reports[r.index] = r
        }
    }

    static func call(for phase: WorkerPhase, touch: Int32) -> String {
        switch phase {
        case .setup: return "prctl(PR_SET_PDEATHSIG)/setpgid"
        case .map: return "mmap"
        case .touch:
            switch UInt32(touch) {
            case PTSHARE_TOUCH_POPULATE_READ.rawValue: return "madvise(MADV_POPULATE_READ)"
            case PTSHARE_TOUCH_POPULATE_WRITE.rawValue: return "madvise(MADV_POPULATE_WRITE)"
            default: return "touching the mapping"
            }
        case .forked, .ready: return "report"
        }
    }
}
