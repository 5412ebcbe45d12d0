import CPTShare
import Glibc

/// Why a sharedpt.* test could not carry out a step (as opposed to a check that did not hold).
public enum SharedPTError: Error, CustomStringConvertible, Sendable {
    case system(SystemCallError)
    /// A sharer ended while the test waited for its answer to `op`.
    case sharerDied(pid: Int32, op: String, status: String)
    /// A sharer gave no answer to `op` within the time allowed.
    case sharerSilent(pid: Int32, op: String, seconds: Int)
    /// A stress process sent a report of the wrong size or content.
    case badReport(String)
    /// A step that the rest of the test depends on did not work (its check line says how).
    case stepFailed(String)

    public var description: String {
        switch self {
        case .system(let e): return e.description
        case .sharerDied(let pid, let op, let status): return "sharer (pid \(pid)) \(status) while doing \(op)"
        case .sharerSilent(let pid, let op, let s): return "sharer (pid \(pid)) did not answer \(op) within \(s) s"
        case .badReport(let s): return "malformed report: \(s)"
        case .stepFailed(let s): return "stopped: \(s)"
        }
    }
}

/// What a sharer answered: errno (0 on success), the signal an access raised (SIGBUS,
/// SIGSEGV, or 0), a value (an address, a word read, the offset of a mismatch or fault) and the
/// word found at a mismatch.
struct SharerReply: Sendable, Equatable {
    var error: Int32
    var signal: Int32
    var value: UInt64
    var found: UInt64

    init(_ r: ptshare_agent_reply) {
        error = r.error
        signal = r.fault_signal
        value = r.value
        found = r.found
    }

    init(error: Int32 = 0, signal: Int32 = 0, value: UInt64 = 0, found: UInt64 = 0) {
        self.error = error
        self.signal = signal
        self.value = value
        self.found = found
    }

    var sigbus: Bool { signal == SIGBUS }
    /// A call that returned without an errno and an access that raised no signal.
    var succeeded: Bool { error == 0 && signal == 0 }
}

/// One forked sharer (`ptshare_agent_main` in the C shim) and its command channel: it maps and
/// touches on command, one command at a time, and answers each.
final class Sharer {
    let pid: pid_t
    /// Whether this process is its parent (and so reaps it); a sharer's own fork child is not.
    let isChild: Bool
    private var command: Int32
    private var reply: Int32
    /// The driver's ends of the channels fork children of this sharer take over, by the index
    /// the agent knows them by.
    private var spares: [Int: (command: Int32, reply: Int32)]
    private(set) var alive = true
    /// The wait status once reaped (only for our own children).
    private var lastStatus: Int32?
    /// Under TCG a walk over a few MiB takes seconds; a hung kernel takes forever.
    static let timeoutSeconds = 120

    private init(
        pid: pid_t, isChild: Bool, command: Int32, reply: Int32, spares: [Int: (command: Int32, reply: Int32)]
    ) {
        self.pid = pid
        self.isChild = isChild
        self.command = command
        self.reply = reply
        self.spares = spares
    }

    deinit { kill() }

    /// A new sharer with `spares` channels for fork children of its own (and theirs): at most
    /// PTSHARE_AGENT_SPARES; each costs the driver two pipes for the sharer's lifetime.
    static func spawn(spares count: Int = 1) throws(SharedPTError) -> Sharer {
        precondition(count >= 0 && count <= Int(PTSHARE_AGENT_SPARES), "spares: 0...\(PTSHARE_AGENT_SPARES)")
        // Channel 0 is the sharer's own; 1... are the spares. Each: a command pipe and a reply pipe.
        var pipes: [(command: (read: Int32, write: Int32), reply: (read: Int32, write: Int32))] = []
        func closeAll() {
            for p in pipes {
                for fd in [p.command.read, p.command.write, p.reply.read, p.reply.write] { Sys.close(fd) }
            }
        }
        do throws(SystemCallError) {
            for _ in 0...count {
                let command = try Sys.pipe()
                do throws(SystemCallError) { pipes.append((command, try Sys.pipe())) } catch {
                    Sys.close(command.read)
                    Sys.close(command.write)
                    throw error
                }
            }
        } catch {
            closeAll()
            throw .system(error)
        }
        let plan = UnsafeMutablePointer<ptshare_agent_plan>.allocate(capacity: 1)
        defer { plan.deallocate() }
        plan.initialize(to: ptshare_agent_plan())
        plan.pointee.driver_pid = getpid()
        plan.pointee.command_read_fd = pipes[0].command.read
        plan.pointee.reply_write_fd = pipes[0].reply.write
        let slots = Int(PTSHARE_AGENT_SPARES)
        withUnsafeMutableBytes(of: &plan.pointee.spare_command_read_fd) { b in
            for i in 0..<slots {
                b.storeBytes(of: i < count ? pipes[i + 1].command.read : -1, toByteOffset: i * 4, as: Int32.self)
            }
        }
        withUnsafeMutableBytes(of: &plan.pointee.spare_reply_write_fd) { b in
            for i in 0..<slots {
                b.storeBytes(of: i < count ? pipes[i + 1].reply.write : -1, toByteOffset: i * 4, as: Int32.self)
            }
        }
        withUnsafeMutableBytes(of: &plan.pointee.close_fds) { b in
            for i in 0..<(slots + 1) {
                b.storeBytes(of: i <= count ? pipes[i].command.write : -1, toByteOffset: 8 * i, as: Int32.self)
                b.storeBytes(of: i <= count ? pipes[i].reply.read : -1, toByteOffset: 8 * i + 4, as: Int32.self)
            }
        }
        let pid: pid_t
        do { pid = try Sys.fork() } catch {
            closeAll()
            throw .system(error)
        }
        if pid == 0 { ptshare_agent_main(plan) }
        for p in pipes { for fd in [p.command.read, p.reply.write] { Sys.close(fd) } }
        var spares: [Int: (command: Int32, reply: Int32)] = [:]
        for i in 0..<count { spares[i] = (pipes[i + 1].command.write, pipes[i + 1].reply.read) }
        return Sharer(
            pid: pid, isChild: true, command: pipes[0].command.write, reply: pipes[0].reply.read, spares: spares)
    }

    /// Sends one command and waits for its answer.
    func call(
        _ op: ptshare_agent_op, addr: UInt64 = 0, length: UInt64 = 0, offset: UInt64 = 0, value: UInt64 = 0,
        arg: Int32 = 0, flags: Int32 = 0, fd: Int32 = -1
    ) throws(SharedPTError) -> SharerReply {
        try send(op, addr: addr, length: length, offset: offset, value: value, arg: arg, flags: flags, fd: fd)
        return try answer(Sharer.opName(op), on: reply)
    }

    /// The answer to a command sent with `send`.
    func receive(_ op: ptshare_agent_op) throws(SharedPTError) -> SharerReply {
        try answer(Sharer.opName(op), on: reply)
    }

    /// Sends one command without waiting: the sharer works while the driver does something
    /// else; `receive` collects the answer.
    func send(
        _ op: ptshare_agent_op, addr: UInt64 = 0, length: UInt64 = 0, offset: UInt64 = 0, value: UInt64 = 0,
        arg: Int32 = 0, flags: Int32 = 0, fd: Int32 = -1
    ) throws(SharedPTError) {
        var c = ptshare_agent_command()
        c.op = op.rawValue
        c.arg = arg
        c.flags = flags
        c.fd = fd
        c.addr = addr
        c.length = length
        c.offset = offset
        c.value = value
        let bytes = withUnsafeBytes(of: &c) { Array($0) }
        do { try Sys.write(command, bytes, path: "sharer \(pid) commands") } catch {
            if error.errno == EPIPE { throw .sharerDied(pid: pid, op: Sharer.opName(op), status: reap()) }
            throw .system(error)
        }
    }

    /// Whether an answer (or EOF) waits on the reply channel, without waiting for one.
    func hasAnswer() -> Bool { (try? Sys.pollReadable(reply, timeoutMs: 0)) ?? true }

    /// SIGKILLs the sharer, reaps it and closes its channel; the answer to the posted command
    /// when it had given one before the signal landed, nil when the kill came first.
    func killPosted() -> SharerReply? {
        guard alive, command >= 0 else { return nil }
        _ = Glibc.kill(pid, SIGKILL)
        _ = reap()
        // Its end of the reply pipe died with it: the read returns the answer or EOF at once.
        let size = MemoryLayout<ptshare_agent_reply>.size
        var buf = [UInt8](repeating: 0, count: size)
        let n = (try? Sys.read(reply, into: &buf, path: "sharer \(pid) replies")) ?? 0
        kill()
        guard n == size else { return nil }
        return SharerReply(buf.withUnsafeBytes { $0.loadUnaligned(as: ptshare_agent_reply.self) })
    }

    /// Reads one reply from `fd`: EOF is the sharer's death, silence past the timeout an error.
    private func answer(_ op: String, on fd: Int32) throws(SharedPTError) -> SharerReply {
        let size = MemoryLayout<ptshare_agent_reply>.size
        var got: [UInt8] = []
        let deadline = Sys.monotonicNanoseconds() + UInt64(Sharer.timeoutSeconds) * 1_000_000_000
        while got.count < size {
            let now = Sys.monotonicNanoseconds()
            if now >= deadline { throw .sharerSilent(pid: pid, op: op, seconds: Sharer.timeoutSeconds) }
            let ready: Bool
            do {
                ready = try Sys.pollReadable(fd, timeoutMs: Int32(min((deadline - now) / 1_000_000 + 1, 1_000)))
            } catch {
                throw .system(error)
            }
            guard ready else { continue }
            var buf = [UInt8](repeating: 0, count: size - got.count)
            let n: Int
            do { n = try Sys.read(fd, into: &buf, path: "sharer \(pid) replies") } catch { throw .system(error) }
            if n == 0 { throw .sharerDied(pid: pid, op: op, status: reap()) }
            got += buf[0..<n]
        }
        return SharerReply(got.withUnsafeBytes { $0.loadUnaligned(as: ptshare_agent_reply.self) })
    }

    /// Forks this sharer; the child shares the parent's mappings and takes over the lowest spare
    /// channel left; the spares `handing` (indices from `spareIndices`) go with it, for children
    /// of its own.
    func fork(handing: [Int] = []) throws(SharedPTError) -> Sharer {
        guard let k = spares.keys.filter({ !handing.contains($0) }).min() else {
            throw .system(SystemCallError("fork", errno: EBUSY, value: "sharer \(pid) has no spare channel left"))
        }
        guard handing.allSatisfy({ spares[$0] != nil }) else {
            throw .system(SystemCallError("fork", errno: EBADF, value: "sharer \(pid) does not hold spares \(handing)"))
        }
        let mask = handing.reduce(Int32(0)) { $0 | Int32(1) << $1 }
        let r = try call(PTSHARE_AGENT_FORK, arg: Int32(k), flags: mask)
        guard r.error == 0 else {
            throw .system(SystemCallError("fork", errno: r.error, value: "in sharer \(pid)"))
        }
        let s = spares.removeValue(forKey: k)!
        var theirs: [Int: (command: Int32, reply: Int32)] = [:]
        for h in handing { theirs[h] = spares.removeValue(forKey: h) }
        let child = Sharer(pid: pid_t(r.value), isChild: false, command: s.command, reply: s.reply, spares: theirs)
        _ = try child.answer("fork (the child's first answer)", on: s.reply)
        return child
    }

    /// The spare channels this sharer still holds.
    var spareIndices: [Int] { spares.keys.sorted() }

    /// Asks the sharer to exit and waits until it has (EOF on its replies, and reaped when ours).
    func exit() throws(SharedPTError) { try end(PTSHARE_AGENT_EXIT) }

    /// Asks the sharer to execve a program that exits 0 at once (`/bin/true`, else
    /// `/bin/busybox true`) and waits until that program has exited: exec drops the old mm
    /// through exec_mmap(), not through exit.
    func exec() throws(SharedPTError) { try end(PTSHARE_AGENT_EXEC) }

    /// Sends an op after which the sharer never answers unless it failed, and waits for the
    /// end: EOF on its replies and, for our own child, a wait status of exit 0 (the agent
    /// exits 0 without answering only on these ops; anything else is a death).
    private func end(_ op: ptshare_agent_op) throws(SharedPTError) {
        let name = Sharer.opName(op)
        try send(op)
        let r: SharerReply
        do throws(SharedPTError) {
            r = try answer(name, on: reply)
        } catch {
            guard case .sharerDied = error else { throw error }
            // Judged by the wait status itself; a forked sharer's child is not ours to wait for.
            guard isChild else { return }
            guard let status = lastStatus, ptshare_wifexited(status) != 0, ptshare_wexitstatus(status) == 0 else {
                throw .sharerDied(
                    pid: pid, op: name, status: lastStatus.map { WorkerPool.describe(status: $0) } ?? "not reaped")
            }
            return
        }
        if op == PTSHARE_AGENT_EXEC && r.error != 0 {
            throw .system(
                SystemCallError("execve", errno: r.error, value: "/bin/true and /bin/busybox true, in sharer \(pid)"))
        }
        throw .badReport("sharer \(pid) answered an \(name) command")
    }

    /// The wait status of a dead sharer this process can reap, in words; kept in `lastStatus`.
    private func reap() -> String {
        guard alive else { return lastStatus.map { WorkerPool.describe(status: $0) } ?? "ended" }
        alive = false
        guard isChild else { return "ended (not our child: no wait status)" }
        do throws(SystemCallError) {
            if let (_, status) = try Sys.waitpid(pid, noHang: false) {
                lastStatus = status
                return WorkerPool.describe(status: status)
            }
        } catch {
            return "ended (waitpid failed: \(error))"
        }
        return "ended"
    }

    /// SIGKILL and reap (when ours); closes the channel. Idempotent.
    func kill() {
        if alive {
            _ = Glibc.kill(pid, SIGKILL)
            _ = reap()
        }
        if command >= 0 {
            Sys.close(command)
            Sys.close(reply)
            command = -1
            reply = -1
        }
        for s in spares.values {
            Sys.close(s.command)
            Sys.close(s.reply)
        }
        spares = [:]
    }

    static func opName(_ op: ptshare_agent_op) -> String {
        switch op {
        case PTSHARE_AGENT_MAP: return "mmap"
        case PTSHARE_AGENT_UNMAP: return "munmap"
        case PTSHARE_AGENT_FILL: return "fill"
        case PTSHARE_AGENT_CHECK: return "check"
        case PTSHARE_AGENT_CHECK_ZERO: return "check for zeroes"
        case PTSHARE_AGENT_READ: return "read"
        case PTSHARE_AGENT_WRITE: return "write"
        case PTSHARE_AGENT_MPROTECT: return "mprotect"
        case PTSHARE_AGENT_MREMAP: return "mremap"
        case PTSHARE_AGENT_MLOCK: return "mlock"
        case PTSHARE_AGENT_MADVISE: return "madvise"
        case PTSHARE_AGENT_FORK: return "fork"
        case PTSHARE_AGENT_EXIT: return "exit"
        case PTSHARE_AGENT_MLOCKALL: return "mlockall"
        case PTSHARE_AGENT_UFFD_REGISTER: return "userfaultfd register"
        case PTSHARE_AGENT_PIN_CPU: return "sched_setaffinity"
        case PTSHARE_AGENT_SPIN_READ: return "spin read"
        case PTSHARE_AGENT_EXEC: return "execve"
        case PTSHARE_AGENT_KVM_VM: return "KVM_CREATE_VM"
        case PTSHARE_AGENT_MOVE_PAGES: return "move_pages"
        case PTSHARE_AGENT_MBIND: return "mbind"
        default: return "op \(op.rawValue)"
        }
    }
}
