import Glibc

/// A cgroup v2 child of /sys/fs/cgroup with the memory controller, made for one test and
/// removed after it: how a test puts memory pressure, swap-outs or an OOM kill on its own
/// sharers and no one else, and reads what its processes were charged (memory.stat).
final class TestCgroup {
    static let root = "/sys/fs/cgroup"
    let path: String

    /// Why a test cannot have one here (no cgroup2 mount, no memory controller), else nil.
    static func unavailableReason() -> String? {
        let controllers = "\(root)/cgroup.subtree_control"
        guard let text = try? ProcFS.read(controllers) else {
            return "no cgroup v2 at \(root) (CONFIG_MEMCG; the guest init mounts it)"
        }
        guard text.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("memory") else {
            return "\(controllers) lacks memory (\"\(text.trimmingWhitespace())\")"
        }
        return nil
    }

    init(_ name: String) throws(SystemCallError) {
        path = "\(TestCgroup.root)/\(name)"
        // A leftover of an interrupted run holds no process (they were killed with the run):
        // remove it rather than inherit its limits.
        if ProcFS.exists(path) { try Sys.rmdir(path) }
        try Sys.mkdir(path)
    }

    deinit { remove() }

    func set(_ file: String, _ value: String) throws(SystemCallError) {
        try Sys.writeFile("\(path)/\(file)", value)
    }

    /// Moves process `pid` in. What it was charged before stays with its old cgroup (v2 moves
    /// no charges); what it allocates from now on is charged here.
    func add(_ pid: Int32) throws(SystemCallError) {
        try Sys.writeFile("\(path)/cgroup.procs", "\(pid)")
    }

    func stat() throws(RunError) -> [String: UInt64] { try ProcFS.counters("\(path)/memory.stat") }
    func events() throws(RunError) -> [String: UInt64] { try ProcFS.counters("\(path)/memory.events") }

    /// memory.stat with every CPU's pending updates folded in. A plain read serves per-CPU
    /// deltas folded only past a threshold (64 updates a CPU) or by a flush every 2 s, so it can
    /// miss a few page-table allocations; reading cpu.stat first flushes this cgroup's whole
    /// rstat tree (cgroup_rstat_flush(), every controller's), memcg's included.
    func flushedStat() throws(RunError) -> [String: UInt64] {
        do { _ = try ProcFS.read("\(path)/cpu.stat") } catch { throw .system(error) }
        return try stat()
    }

    /// Moves whatever is still inside to the root cgroup, then removes the directory.
    func remove() {
        guard ProcFS.exists(path) else { return }
        if let procs = try? ProcFS.read("\(path)/cgroup.procs") {
            for pid in procs.split(separator: "\n") {
                try? Sys.writeFile("\(TestCgroup.root)/cgroup.procs", String(pid))
            }
        }
        try? Sys.rmdir(path)
    }
}
