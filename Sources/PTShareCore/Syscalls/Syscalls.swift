import CPTShare
import Glibc

/// Thin wrappers, one per system call, with the C signature kept. Each turns -1/errno into a
/// `SystemCallError` naming the call, the path and the value; blocking calls retry on EINTR
/// unless the driver was asked to stop (then EINTR surfaces so the run can tear down).
public enum Sys {
    @inline(__always)
    static func check(_ rc: Int32, _ call: String, path: String? = nil, value: String? = nil)
        throws(SystemCallError) -> Int32
    {
        if rc == -1 { throw SystemCallError(call, errno: errno, path: path, value: value) }
        return rc
    }

    public static func memfdCreate(_ name: String, flags: UInt32) throws(SystemCallError) -> Int32 {
        try check(
            ptshare_memfd_create(name, flags), "memfd_create", path: name,
            value: "flags=\(hex(UInt64(flags)))")
    }

    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o600)
        throws(SystemCallError) -> Int32
    {
        try check(Glibc.open(path, flags, mode), "open", path: path)
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)  // close errors on pipes and memfds carry no information worth acting on
    }

    public static func unlink(_ path: String) throws(SystemCallError) {
        _ = try check(Glibc.unlink(path), "unlink", path: path)
    }

    public static func mkdir(_ path: String, _ mode: mode_t = 0o755) throws(SystemCallError) {
        _ = try check(Glibc.mkdir(path, mode), "mkdir", path: path)
    }

    public static func rmdir(_ path: String) throws(SystemCallError) {
        _ = try check(Glibc.rmdir(path), "rmdir", path: path)
    }

    /// Writes `value` and a newline to a /proc, /sys or cgroup file in one write(2), as the
    /// kernel's handlers expect.
    public static func writeFile(_ path: String, _ value: String) throws(SystemCallError) {
        let fd = try open(path, O_WRONLY | O_CLOEXEC)
        defer { close(fd) }
        do { try write(fd, Array("\(value)\n".utf8), path: path) } catch {
            throw SystemCallError(error.call, errno: error.errno, path: path, value: value)
        }
    }

    /// A child process that writes `value` to `path` and exits with 0 or the errno (see
    /// `ptshare_write_in_child`): a blocking sysctl the driver waits for while it works.
    public static func writeInChild(_ path: String, _ value: String) throws(SystemCallError) -> pid_t {
        try check(ptshare_write_in_child(path, value), "fork", path: path, value: value)
    }

    /// Forks the child of `ptshare_squeeze_in_child` (reclaim, compaction, migrate_pages of the
    /// first of `pids` that still has an mm) and returns its pid; it writes one
    /// `ptshare_squeeze_result` to `resultFD`.
    public static func squeezeInChild(
        reclaim path: String, _ value: String, pids: [pid_t], from: UInt64, to: UInt64, resultFD: Int32
    ) throws(SystemCallError) -> pid_t {
        let r = path.withCString { p in
            value.withCString { v in
                pids.withUnsafeBufferPointer { b in
                    var plan = ptshare_squeeze_plan(
                        reclaim_path: p, reclaim_value: v, pids: b.baseAddress, npids: UInt32(b.count),
                        result_fd: resultFD, from_mask: from, to_mask: to)
                    return ptshare_squeeze_in_child(&plan)
                }
            }
        }
        return try check(r, "fork", path: path, value: "pids \(pids.count)")
    }

    /// Forks the holder of `bench --fragment` (`ptshare_fragment_in_child`): it touches `bytes`
    /// of anonymous memory, gives back one page of every `stride`, writes one
    /// `ptshare_fragment_result` to `resultFD` and holds the rest until killed.
    public static func fragmentInChild(bytes: UInt64, stride: UInt64, resultFD: Int32) throws(SystemCallError)
        -> pid_t
    {
        try check(ptshare_fragment_in_child(bytes, stride, resultFD), "fork", value: "fragment \(bytes) bytes")
    }

    public static func ftruncate(_ fd: Int32, _ length: UInt64, path: String) throws(SystemCallError) {
        _ = try check(Glibc.ftruncate(fd, off_t(length)), "ftruncate", path: path, value: "length=\(length)")
    }

    public static func fallocate(_ fd: Int32, offset: UInt64, length: UInt64, path: String) throws(SystemCallError) {
        _ = try check(
            ptshare_fallocate(fd, 0, Int64(offset), Int64(length)), "fallocate", path: path,
            value: "length=\(length)")
    }

    /// fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): the range reads as zeroes after.
    public static func punchHole(_ fd: Int32, offset: UInt64, length: UInt64, path: String) throws(SystemCallError) {
        _ = try check(
            ptshare_fallocate(
                fd, ptshare_FALLOC_FL_PUNCH_HOLE | ptshare_FALLOC_FL_KEEP_SIZE, Int64(offset), Int64(length)),
            "fallocate(FALLOC_FL_PUNCH_HOLE)", path: path, value: "offset=\(offset) length=\(length)")
    }

    public static func mmap(
        _ addr: UInt64, _ length: UInt64, prot: Int32, flags: Int32, fd: Int32, offset: UInt64, path: String? = nil
    ) throws(SystemCallError) -> UInt64 {
        let p = Glibc.mmap(UnsafeMutableRawPointer(bitPattern: UInt(addr)), Int(length), prot, flags, fd, off_t(offset))
        if p == MAP_FAILED {
            throw SystemCallError(
                "mmap", errno: errno, path: path,
                value: "addr=\(hex(addr)) length=\(length) flags=\(hex(UInt64(UInt32(bitPattern: flags))))")
        }
        return UInt64(UInt(bitPattern: p))
    }

    /// sched_setaffinity to `cpu` alone; returns the previous mask of CPUs 0-63.
    public static func pinToCPU(_ cpu: Int32) throws(SystemCallError) -> UInt64 {
        var saved: UInt64 = 0
        _ = try check(ptshare_pin_to_cpu(cpu, &saved), "sched_setaffinity", value: "cpu=\(cpu)")
        return saved
    }

    public static func setCPUMask(_ mask: UInt64) throws(SystemCallError) {
        _ = try check(ptshare_set_cpu_mask(mask), "sched_setaffinity", value: "mask=\(hex(mask))")
    }

    public static func munmap(_ addr: UInt64, _ length: UInt64) throws(SystemCallError) {
        _ = try check(
            Glibc.munmap(UnsafeMutableRawPointer(bitPattern: UInt(addr)), Int(length)), "munmap",
            value: "addr=\(hex(addr)) length=\(length)")
    }

    /// Both ends close-on-exec: workers never exec, and nothing else should inherit them.
    public static func pipe() throws(SystemCallError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try check(ptshare_pipe_cloexec(&fds), "pipe2")
        return (fds[0], fds[1])
    }

    public static func fork() throws(SystemCallError) -> pid_t {
        try check(Glibc.fork(), "fork")
    }

    /// A `ptshare scale` sharer (ptshare_scale_spawn in the shim): forked, it maps `size` of `fd`
    /// with `flags`, reads a word per 2 MiB chunk, writes a byte to `ready` and exits at EOF on
    /// `hold`; it closes `close` (the driver's ends) first.
    public static func scaleSpawn(
        fd: Int32, size: UInt64, flags: Int32, ready: Int32, hold: Int32, close: [Int32]
    ) throws(SystemCallError) -> pid_t {
        try check(
            close.withUnsafeBufferPointer {
                ptshare_scale_spawn(fd, size, flags, ready, hold, $0.baseAddress, Int32($0.count))
            }, "fork")
    }

    public static func kill(_ pid: pid_t, _ signal: Int32) throws(SystemCallError) {
        _ = try check(Glibc.kill(pid, signal), "kill", value: "pid=\(pid) signal=\(signal)")
    }

    /// Returns nil when WNOHANG found nothing, and for ECHILD (nothing left to reap).
    public static func waitpid(_ pid: pid_t, noHang: Bool) throws(SystemCallError) -> (pid: pid_t, status: Int32)? {
        var status: Int32 = 0
        while true {
            let rc = Glibc.waitpid(pid, &status, noHang ? WNOHANG : 0)
            if rc > 0 { return (rc, status) }
            if rc == 0 { return nil }
            if errno == ECHILD { return nil }
            if errno == EINTR && ptshare_stop_signal() == 0 { continue }
            throw SystemCallError("waitpid", errno: errno, value: "pid=\(pid)")
        }
    }

    /// Waits for readability; returns false on timeout. EINTR surfaces only when stopping.
    public static func pollReadable(_ fd: Int32, timeoutMs: Int32) throws(SystemCallError) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let rc = Glibc.poll(&pfd, 1, timeoutMs)
            if rc >= 0 { return rc > 0 }
            if errno == EINTR && ptshare_stop_signal() == 0 { continue }
            throw SystemCallError("poll", errno: errno, value: "fd=\(fd)")
        }
    }

    /// Reads into the start of `buffer`; returns the byte count (0 at EOF).
    public static func read(_ fd: Int32, into buffer: inout [UInt8], path: String? = nil) throws(SystemCallError) -> Int
    {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return n }
            if errno == EINTR && ptshare_stop_signal() == 0 { continue }
            throw SystemCallError("read", errno: errno, path: path)
        }
    }

    /// pread(2): up to `count` bytes at `offset`; fewer at the end of the file.
    public static func pread(_ fd: Int32, count: Int, offset: UInt64, path: String? = nil)
        throws(SystemCallError) -> [UInt8]
    {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n >= 0 { return Array(buffer.prefix(n)) }
            if errno == EINTR && ptshare_stop_signal() == 0 { continue }
            throw SystemCallError("pread", errno: errno, path: path, value: "offset=\(offset)")
        }
    }

    public static func write(_ fd: Int32, _ bytes: [UInt8], path: String? = nil) throws(SystemCallError) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR && ptshare_stop_signal() == 0 { continue }
                throw SystemCallError("write", errno: errno, path: path)
            }
            off += n
        }
    }

    /// File-system magic (f_type) and block size (f_bsize; the huge page size on hugetlbfs).
    public static func statfs(_ path: String) throws(SystemCallError) -> (type: Int, blockSize: UInt64) {
        var type = 0
        var bsize: UInt64 = 0
        _ = try check(ptshare_statfs(path, &type, &bsize), "statfs", path: path)
        return (type, bsize)
    }

    /// Whether the file is accessed by DAX (statx STATX_ATTR_DAX); EOPNOTSUPP where the kernel
    /// does not report the attribute (before 5.8).
    public static func isDAX(_ fd: Int32, path: String) throws(SystemCallError) -> Bool {
        try check(ptshare_statx_dax(fd), "statx(STATX_ATTR_DAX)", path: path) == 1
    }

    /// prctl(PR_SET_THP_DISABLE): no PMD leaf (THP or DAX) in this process and the children
    /// it forks after; returns the setting before.
    @discardableResult
    public static func setTHPDisabled(_ on: Bool) throws(SystemCallError) -> Bool {
        try check(ptshare_thp_disable(on ? 1 : 0), "prctl(PR_SET_THP_DISABLE)", value: on ? "1" : "0") == 1
    }

    public static func uname() throws(SystemCallError) -> (release: String, machine: String) {
        var u = utsname()
        _ = try check(Glibc.uname(&u), "uname")
        func field<T>(_ t: inout T) -> String {
            withUnsafeBytes(of: &t) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return (field(&u.release), field(&u.machine))
    }

    /// The soft RLIMIT_NPROC; UInt64.max when unlimited.
    public static func nprocLimit() throws(SystemCallError) -> UInt64 {
        var v: UInt64 = 0
        _ = try check(ptshare_nproc_limit(&v), "getrlimit", value: "RLIMIT_NPROC")
        return v
    }

    /// posix_spawnp with stdout (and stderr, unless inherited) sent to files; a clean signal
    /// mask and default dispositions, as a shell would start it.
    /// `environment` adds to (or overrides) this process's environment for the child.
    /// `ownGroup` starts it as the leader of a new process group, so that `kill(-pid, …)` reaches
    /// everything it starts (a script's make and gcc).
    public static func spawn(
        _ argv: [String], stdout: String?, stderr: String?, environment: [String: String] = [:],
        ownGroup: Bool = false
    ) throws(SystemCallError) -> pid_t {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        if let stdout { posix_spawn_file_actions_addopen(&fa, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        if let stderr {
            // One open file for both when they name the same file, so neither overwrites the other.
            if stderr == stdout {
                posix_spawn_file_actions_adddup2(&fa, 1, 2)
            } else {
                posix_spawn_file_actions_addopen(&fa, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            }
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var spawnFlags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownGroup {
            spawnFlags |= POSIX_SPAWN_SETPGROUP
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(spawnFlags))
        let cargv = argv.map { strdup($0) } + [nil]
        defer { cargv.forEach { free($0) } }
        var inherited: [UnsafeMutablePointer<CChar>?] = []
        var e = environ
        while let entry = e.pointee {
            let name = String(cString: entry).split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            if environment[name] == nil { inherited.append(strdup(entry)) }
            e += 1
        }
        let cenv = inherited + environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cenv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &fa, &attr, cargv, cenv)
        if rc != 0 { throw SystemCallError("posix_spawnp", errno: rc, path: argv[0]) }
        return pid
    }

    public static func probeQuery(_ fd: Int32, _ q: inout ptshare_probe_query, path: String) throws(SystemCallError) {
        _ = try check(
            ptshare_probe_ioctl_query(fd, &q), "ioctl(PTSHARE_PROBE_IOC_QUERY)", path: path,
            value: "pid=\(q.pid) start=\(hex(q.start)) end=\(hex(q.end))")
    }

    public static func finitModule(_ fd: Int32, path: String) throws(SystemCallError) {
        _ = try check(ptshare_finit_module(fd, "", 0), "finit_module", path: path)
    }

    public static func deleteModule(_ name: String) throws(SystemCallError) {
        _ = try check(ptshare_delete_module(name, UInt32(O_NONBLOCK)), "delete_module", path: name)
    }

    /// Orphaned descendants are reparented to this process instead of init.
    public static func setChildSubreaper(_ on: Bool) throws(SystemCallError) {
        _ = try check(ptshare_set_child_subreaper(on ? 1 : 0), "prctl(PR_SET_CHILD_SUBREAPER)")
    }

    /// SIGPIPE ignored: a write to a pipe whose reader died fails with EPIPE instead.
    public static func ignoreSIGPIPE() throws(SystemCallError) {
        _ = try check(ptshare_ignore_sigpipe(), "signal", value: "SIGPIPE")
    }

    public static func installStopHandlers() throws(SystemCallError) {
        _ = try check(ptshare_install_stop_handlers(), "sigaction")
    }

    /// The stop signal (SIGINT/SIGTERM/SIGHUP) received so far, or 0.
    public static var stopSignal: Int32 { ptshare_stop_signal() }

    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Sleeps; returns early (no error) when a stop signal arrives.
    public static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        _ = nanosleep(&ts, nil)
    }
}

public func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
