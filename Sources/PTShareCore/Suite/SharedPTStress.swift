import CPTShare
import Glibc

/// sharedpt.stress: for `stressSeconds`, `processes` forked stress processes (the C shim's
/// `ptshare_stress_main`) map an 8 MiB memfd with MAP_SHARED_PT at varying 2 MiB-aligned
/// offsets, write their own word in every page, check every other process's word, fork checking
/// children, unmap (sometimes in aligned pieces), exit and are respawned, while one process
/// shrinks the file to a floor and back and punches holes above it. Any mismatch, unexpected
/// SIGBUS or death fails the test, and so does a BUG, WARNING or lockdep report in the kernel log.
enum SharedPTStress {
    static let fileSize: UInt64 = 8 << 20
    static let floor: UInt64 = 4 << 20
    static let processes = 32
    /// Rounds a process runs before it exits and is respawned.
    static let iterations: UInt32 = 24

    /// The totals of the reports received.
    struct Tally: Sendable, Equatable {
        var reports = 0
        var iterations: UInt64 = 0
        var truncations: UInt64 = 0
        var sigbus: UInt64 = 0
        var forks: UInt64 = 0
        var failures: [String] = []
    }

    /// Adds one report; a report of an error becomes a failure line naming what was wrong.
    static func add(_ r: ptshare_stress_report, truncator: UInt32, to t: inout Tally) {
        t.reports += 1
        if r.slot == truncator {
            t.truncations += r.iterations
        } else if r.in_child == 0 {
            t.iterations += r.iterations
            t.sigbus += r.sigbus
            t.forks += r.forks
        }
        if let line = describe(r) { t.failures.append(line) }
    }

    /// nil for a clean report; else what went wrong, as a sentence.
    static func describe(_ r: ptshare_stress_report) -> String? {
        let who = "process \(r.slot) (pid \(r.pid)\(r.in_child != 0 ? ", a forked child" : ""))"
        let at = "file offset \(hex(r.offset)): found \(hex(r.found)), expected \(hex(r.expected))"
        let e = "\(ErrnoName.of(r.err_no)) (errno \(r.err_no))"
        switch ptshare_stress_error(rawValue: r.error) {
        case PTSHARE_STRESS_OK: return nil
        case PTSHARE_STRESS_MMAP: return "\(who): mmap with MAP_SHARED_PT failed: \(e)"
        case PTSHARE_STRESS_MUNMAP: return "\(who): munmap failed: \(e)"
        case PTSHARE_STRESS_FOREIGN:
            return "\(who): another process's word is neither 0 nor that process's value for the page: \(at)"
        case PTSHARE_STRESS_OWN: return "\(who): its own word lost the value it wrote last: \(at)"
        case PTSHARE_STRESS_FORK: return "\(who): fork or setup failed: \(e)"
        case PTSHARE_STRESS_SIGBUS:
            return "\(who): SIGBUS at \(hex(r.offset)), below the floor \(hex(floor)) that is never truncated"
        case PTSHARE_STRESS_TRUNCATE: return "\(who): ftruncate/fallocate failed: \(e)"
        case PTSHARE_STRESS_SIGSEGV:
            return
                "\(who): \(WorkerPool.signalName(Int32(truncatingIfNeeded: r.found))) at file offset \(hex(r.offset)) of its own mapping"
        case PTSHARE_STRESS_CHILD:
            return "\(who): its checking child \(WorkerPool.describe(status: Int32(truncatingIfNeeded: r.found)))"
        default: return "\(who): unknown error code \(r.error)"
        }
    }

    static func run(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.stress"
        if let r = Suite.needsSharedPT(name, o) { return r }
        let log = KernelLog.open()
        var c = Checks(name)
        do {
            let t = try storm(o)
            c.note(
                "\(processes) processes for \(o.stressSeconds) s on a \(ByteSize(fileSize)) memfd (floor "
                    + "\(ByteSize(floor))): \(t.iterations) iterations, \(t.forks) forked checkers, "
                    + "\(t.truncations) truncate/extend/punch cycles, \(t.sigbus) SIGBUS above the floor, "
                    + "\(t.reports) reports")
            for f in t.failures.prefix(20) { c.expect(false, f) }
            if t.failures.count > 20 { c.expect(false, "… and \(t.failures.count - 20) more failures") }
            c.expect(t.iterations > 0, "iterations completed: \(t.iterations)")
        } catch {
            c.expect(false, "\(error)")
        }
        let problems = log.problems()
        for p in problems { c.expect(false, "kernel log: \(p)") }
        // Worded without the patterns themselves: the guest console echoes this line, and the host's
        // console scan must not take it for a report.
        if problems.isEmpty { c.note("kernel log: clean (no report matched the console patterns)") }
        return c.result()
    }

    /// Runs the storm and returns the tally; everything it started is killed and reaped.
    static func storm(_ o: SuiteOptions) throws(SharedPTError) -> Tally {
        let f = try SharedPTFixture(size: fileSize, flag: o.mapSharedPTValue)
        let report: (read: Int32, write: Int32)
        do { report = try Sys.pipe() } catch { throw .system(error) }
        defer {
            Sys.close(report.read)
            Sys.close(report.write)
        }
        let truncator = UInt32(processes - 1)
        let plan = UnsafeMutablePointer<ptshare_stress_plan>.allocate(capacity: 1)
        defer { plan.deallocate() }
        plan.initialize(to: ptshare_stress_plan())
        plan.pointee.driver_pid = getpid()
        plan.pointee.fd = f.fd
        plan.pointee.report_write_fd = report.write
        plan.pointee.report_read_fd = report.read
        plan.pointee.flag = o.mapSharedPTValue
        plan.pointee.processes = UInt32(processes)
        plan.pointee.file_size = fileSize
        plan.pointee.floor = floor
        plan.pointee.deadline_ns = Sys.monotonicNanoseconds() + UInt64(o.stressSeconds) * 1_000_000_000
        plan.pointee.iterations = iterations
        plan.pointee.truncator_slot = truncator

        var pids = [pid_t](repeating: 0, count: processes)
        var incarnation = [UInt32](repeating: 0, count: processes)
        var tally = Tally()
        var pending: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64 * MemoryLayout<ptshare_stress_report>.size)
        defer {
            for pid in pids where pid > 0 { _ = kill(pid, SIGKILL) }
            for pid in pids where pid > 0 { _ = try? Sys.waitpid(pid, noHang: false) }
        }

        func spawn(_ slot: Int) throws(SharedPTError) {
            let pid: pid_t
            do { pid = try Sys.fork() } catch { throw .system(error) }
            if pid == 0 { ptshare_stress_main(plan, UInt32(slot), incarnation[slot]) }
            incarnation[slot] += 1
            pids[slot] = pid
        }

        /// Reads what reports are waiting (up to `timeoutMs` for the first); false when none were.
        @discardableResult
        func drain(timeoutMs: Int32) throws(SharedPTError) -> Bool {
            let size = MemoryLayout<ptshare_stress_report>.size
            do {
                guard try Sys.pollReadable(report.read, timeoutMs: timeoutMs) else { return false }
                let n = try Sys.read(report.read, into: &buf)
                pending += buf[0..<n]
            } catch { throw .system(error) }
            while pending.count >= size {
                let r = pending.withUnsafeBytes { $0.loadUnaligned(as: ptshare_stress_report.self) }
                pending.removeFirst(size)
                guard r.slot < UInt32(processes) else { throw .badReport("slot \(r.slot) of \(processes)") }
                add(r, truncator: truncator, to: &tally)
            }
            return true
        }

        for slot in 0..<processes { try spawn(slot) }
        let deadline = plan.pointee.deadline_ns
        // After the deadline the processes finish their round; under TCG that may take a while.
        let hardDeadline = deadline + 120 * 1_000_000_000
        while pids.contains(where: { $0 > 0 }) {
            if Sys.stopSignal != 0 {
                throw .system(SystemCallError("sharedpt.stress", errno: EINTR, value: "signal \(Sys.stopSignal)"))
            }
            if Sys.monotonicNanoseconds() > hardDeadline {
                let left = pids.filter { $0 > 0 }.count
                throw .stepFailed("\(left) stress process(es) still running 120 s after the deadline")
            }
            try drain(timeoutMs: 50)
            for slot in 0..<processes where pids[slot] > 0 {
                let reaped: (pid: pid_t, status: Int32)?
                do { reaped = try Sys.waitpid(pids[slot], noHang: true) } catch { throw .system(error) }
                guard let (pid, status) = reaped else { continue }
                pids[slot] = 0
                // Exit status 1: the process reported what went wrong before it exited.
                let clean = ptshare_wifexited(status) != 0 && ptshare_wexitstatus(status) <= 1
                if !clean {
                    tally.failures.append(
                        "process \(slot) (pid \(pid)) \(WorkerPool.describe(status: status))")
                }
                if Sys.monotonicNanoseconds() < deadline { try spawn(slot) }
            }
        }
        while try drain(timeoutMs: 0) {}
        return tally
    }
}
