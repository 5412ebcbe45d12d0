import Glibc

/// The one place that reads /proc and /sys. Parsers stay pure; this turns paths into text.
public enum ProcFS {
    /// Reads a whole file (procfs files report size 0, so read until EOF).
    public static func read(_ path: String) throws(SystemCallError) -> String {
        let fd = try Sys.open(path, O_RDONLY | O_CLOEXEC)
        defer { Sys.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try Sys.read(fd, into: &chunk, path: path)
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Folds every CPU's pending vmstat deltas into the global counters (root only). Without it
    /// /proc/meminfo's PageTables can sit still while it is off by up to the per-CPU threshold
    /// times the CPU count: ±25 pages in a 2-CPU guest. Returns whether the write succeeded.
    public static func refreshVMStats() -> Bool {
        let fd = Glibc.open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        return Glibc.write(fd, "1", 1) == 1
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func listDirectory(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public static func meminfo() throws(RunError) -> Meminfo {
        try parsed("/proc/meminfo") { (t) throws(ProcParseError) in try Meminfo.parse(t, source: "/proc/meminfo") }
    }

    public static func status(_ pid: Int32) throws(RunError) -> ProcStatus {
        let p = "/proc/\(pid)/status"
        return try parsed(p) { (t) throws(ProcParseError) in try ProcStatus.parse(t, source: p) }
    }

    public static func maps(_ pid: Int32) throws(RunError) -> [MapsEntry] {
        let p = "/proc/\(pid)/maps"
        return try parsed(p) { (t) throws(ProcParseError) in try Maps.parse(t, source: p) }
    }

    public static func smaps(_ pid: Int32) throws(RunError) -> [SmapsEntry] {
        let p = "/proc/\(pid)/smaps"
        return try parsed(p) { (t) throws(ProcParseError) in try Smaps.parse(t, source: p) }
    }

    public static func smapsRollup(_ pid: Int32) throws(RunError) -> SmapsEntry {
        let p = "/proc/\(pid)/smaps_rollup"
        return try parsed(p) { (t) throws(ProcParseError) in try Smaps.parseRollup(t, source: p) }
    }

    public static func numaMaps(_ pid: Int32) throws(RunError) -> [NumaMapsEntry] {
        let p = "/proc/\(pid)/numa_maps"
        return try parsed(p) { (t) throws(ProcParseError) in try NumaMaps.parse(t, source: p) }
    }

    /// The pagemap entries of `count` pages from `address` in process `pid` (root sees PFNs).
    public static func pagemap(_ pid: Int32, address: UInt64, count: Int) throws(RunError) -> [PagemapEntry] {
        let p = "/proc/\(pid)/pagemap"
        let fd: Int32
        do { fd = try Sys.open(p, O_RDONLY | O_CLOEXEC) } catch { throw .system(error) }
        defer { Sys.close(fd) }
        let bytes: [UInt8]
        do {
            bytes = try Sys.pread(
                fd, count: count * Pagemap.entryBytes, offset: Pagemap.offset(of: address), path: p)
        } catch { throw .system(error) }
        let entries: [PagemapEntry]
        do { entries = try Pagemap.parse(bytes, source: p) } catch { throw .parse(error) }
        guard entries.count == count else {
            throw .parse(
                ProcParseError(
                    source: p, line: 0, text: "",
                    reason: "\(entries.count) entries at \(hex(address)), expected \(count)"))
        }
        return entries
    }

    /// /proc/vmstat, or a cgroup's memory.stat or memory.events.
    public static func counters(_ path: String) throws(RunError) -> [String: UInt64] {
        try parsed(path) { (t) throws(ProcParseError) in try Counters.parse(t, source: path) }
    }

    public static func mounts() throws(RunError) -> [MountEntry] {
        try parsed("/proc/mounts") { (t) throws(ProcParseError) in try Mounts.parse(t, source: "/proc/mounts") }
    }

    /// Numbers of the NUMA nodes with a meminfo file (none on kernels built without NUMA).
    public static func numaNodes() -> [Int] {
        ProcFS.listDirectory("/sys/devices/system/node").compactMap { name in
            name.hasPrefix("node") ? Int(name.dropFirst(4)) : nil
        }.sorted()
    }

    public static func nodeMeminfo(_ node: Int) throws(RunError) -> NodeMeminfo {
        let p = "/sys/devices/system/node/node\(node)/meminfo"
        return try parsed(p) { (t) throws(ProcParseError) in try NodeMeminfo.parse(t, source: p) }
    }

    /// A single-line value file such as /proc/sys/kernel/pid_max.
    public static func integer(_ path: String) throws(RunError) -> UInt64 {
        try parsed(path) { (t) throws(ProcParseError) in
            guard let v = UInt64(t.trimmingWhitespace()) else {
                throw ProcParseError(source: path, line: 1, text: t.trimmingWhitespace(), reason: "expected an integer")
            }
            return v
        }
    }

    static func parsed<T>(_ path: String, _ parse: (String) throws(ProcParseError) -> T) throws(RunError) -> T {
        let text: String
        do { text = try read(path) } catch { throw .system(error) }
        do { return try parse(text) } catch { throw .parse(error) }
    }
}
