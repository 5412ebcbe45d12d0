import CNuma
import CPTShare
import Glibc

/// A libnuma call that failed: the call, the value it was given, the errno libnuma's numa_error
/// saw (0 when libnuma only warned) and what libnuma said.
public struct NumaError: Error, Equatable, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32
    /// libnuma's own words: numa_error's `where` or numa_warn's message, joined by "; ".
    public var what: String
    /// The node list or CPU set the call was given.
    public var value: String?

    public init(_ call: String, errno: Int32, what: String, value: String? = nil) {
        self.call = call
        self.errno = errno
        self.what = what
        self.value = value
    }

    public var description: String {
        var s = call
        if let value { s += " (\(value))" }
        s += " failed"
        if !what.isEmpty { s += ": libnuma: \(what)" }
        if errno != 0 { s += ": \(ErrnoName.of(errno)) (errno \(errno)): \(String(cString: strerror(errno)))" }
        return s
    }
}

/// Thin wrappers over libnuma, one per call, with libnuma's names. libnuma reports most failures
/// only through its numa_error/numa_warn hooks (numa_hooks.c records them), so each wrapper
/// clears the record, makes the call and throws when the call returned failure or libnuma
/// complained: a warning such as "node 3 not allowed" means the policy is not what was asked.
public enum Numa {
    /// What libnuma's constructor (numa_init, before main) complained about, read once before any
    /// wrapper clears the record. A complaint there means libnuma guessed the machine's layout
    /// ("Assuming one node"): every wrapper refuses to act on the guess. The record is per
    /// thread (tests call libnuma from many); the constructor ran on the driver's only thread.
    static let startup: NumaError? = complaints("numa_init", value: nil, returned: 0)

    static func complaints(_ call: String, value: String?, returned rc: Int32) -> NumaError? {
        let saved = Glibc.errno
        var err: Int32 = 0
        var text: UnsafePointer<CChar>?
        let count = ptshare_numa_complaints(&err, &text)
        if count == 0 && rc != -1 { return nil }
        return NumaError(
            call, errno: count > 0 ? err : saved, what: text.map { String(cString: $0) } ?? "", value: value)
    }

    /// Clears libnuma's record, runs `body`, and throws what libnuma said (or errno when `body`
    /// returned -1 without a word).
    static func checked<T>(_ call: String, value: String? = nil, _ body: () -> T, status: (T) -> Int32 = { _ in 0 })
        throws(NumaError) -> T
    {
        if let e = startup { throw e }
        ptshare_numa_clear()
        let r = body()
        if let e = complaints(call, value: value, returned: status(r)) { throw e }
        return r
    }

    /// numa_available(): false when the kernel has no memory policy at all (get_mempolicy:
    /// ENOSYS, a kernel built without CONFIG_NUMA). Every other call is undefined then.
    public static var available: Bool { numa_available() != -1 }

    /// numa_max_node(): the highest node number under /sys/devices/system/node.
    public static func maxNode() throws(NumaError) -> Int {
        Int(try checked("numa_max_node") { numa_max_node() })
    }

    /// numa_max_possible_node(): the highest node a nodemask can name (the kernel's MAX_NUMNODES
    /// as /proc/self/status shows it), far above any node a machine has.
    public static func maxPossibleNode() throws(NumaError) -> Int {
        Int(try checked("numa_max_possible_node") { numa_max_possible_node() })
    }

    /// The nodes under /sys/devices/system/node (numa_nodes_ptr), memoryless ones included.
    public static func configuredNodes() throws(NumaError) -> [Int] {
        try checked("numa_nodes_ptr") { nodes(of: cnuma_nodes()) }
    }

    /// The nodes with memory this process may allocate from (numa_all_nodes_ptr: its cpuset's
    /// Mems_allowed): the only nodes numa_parse_nodestring accepts.
    public static func allowedNodes() throws(NumaError) -> [Int] {
        try checked("numa_all_nodes_ptr") { nodes(of: cnuma_all_nodes()) }
    }

    /// numa_parse_nodestring: the nodes of a list such as `0`, `0-1`, `0,2`, each checked against
    /// `allowedNodes()`. libnuma says why it refused one ("node argument 3 is out of range").
    public static func parseNodeString(_ text: String) throws(NumaError) -> [Int] {
        let mask = try checked("numa_parse_nodestring", value: text, { numa_parse_nodestring(text) }) {
            $0 == nil ? -1 : 0
        }
        guard let mask else { throw NumaError("numa_parse_nodestring", errno: 0, what: "", value: text) }
        defer { numa_bitmask_free(mask) }
        return nodes(of: mask)
    }

    /// numa_run_on_node_mask: this task (and what it forks) runs only on the CPUs of `nodes`.
    public static func runOnNodeMask(_ nodes: [Int]) throws(NumaError) {
        try withNodeMask(nodes, "numa_run_on_node_mask") { (m) throws(NumaError) in
            _ = try checked("numa_run_on_node_mask", value: NodeList.format(nodes), { numa_run_on_node_mask(m) }) {
                $0
            }
        }
    }

    /// numa_set_membind: MPOL_BIND, this task's pages come only from `nodes`.
    public static func setMembind(_ nodes: [Int]) throws(NumaError) {
        try withNodeMask(nodes, "numa_set_membind") { (m) throws(NumaError) in
            try checked("numa_set_membind", value: NodeList.format(nodes)) { numa_set_membind(m) }
        }
    }

    /// numa_set_interleave_mask: MPOL_INTERLEAVE, this task's pages round-robin over `nodes`.
    public static func setInterleaveMask(_ nodes: [Int]) throws(NumaError) {
        try withNodeMask(nodes, "numa_set_interleave_mask") { (m) throws(NumaError) in
            try checked("numa_set_interleave_mask", value: NodeList.format(nodes)) { numa_set_interleave_mask(m) }
        }
    }

    /// numa_set_localalloc: MPOL_LOCAL, explicitly, which (unlike the default policy) has no
    /// MPOL_F_MOF: NUMA balancing skips every vma of the task.
    public static func setLocalAlloc() throws(NumaError) {
        try checked("numa_set_localalloc") { numa_set_localalloc() }
    }

    /// MPOL_DEFAULT, the policy a task starts with: numa_set_interleave_mask of the empty mask
    /// (libnuma has no call of its own for it; strace shows set_mempolicy(MPOL_DEFAULT)). Not
    /// numa_set_localalloc: its explicit MPOL_LOCAL lacks MPOL_F_MOF, so NUMA balancing would
    /// skip every vma of the task and of everything it forks.
    public static func setDefaultPolicy() throws(NumaError) {
        try checked("numa_set_interleave_mask(numa_no_nodes_ptr)") { numa_set_interleave_mask(cnuma_no_nodes()) }
    }

    /// numa_migrate_pages: moves process `pid`'s pages on `from` to `to` (migrate_pages(2));
    /// as root (CAP_SYS_NICE) also the pages other processes map, which a shared file's are.
    /// Returns how many pages could not be moved.
    public static func migratePages(_ pid: Int32, from: [Int], to: [Int]) throws(NumaError) -> Int {
        var left = 0
        let value = "pid \(pid), \(NodeList.format(from)) -> \(NodeList.format(to))"
        try withNodeMask(from, "numa_migrate_pages") { (f) throws(NumaError) in
            try withNodeMask(to, "numa_migrate_pages") { (t) throws(NumaError) in
                left = Int(try checked("numa_migrate_pages", value: value, { numa_migrate_pages(pid, f, t) }) { $0 })
            }
        }
        return left
    }

    /// numa_sched_getaffinity of this task: the CPUs it may run on.
    public static func schedGetaffinity() throws(NumaError) -> [Int] {
        guard let mask = numa_allocate_cpumask() else {
            throw NumaError("numa_allocate_cpumask", errno: ENOMEM, what: "")
        }
        defer { numa_bitmask_free(mask) }
        _ = try checked("numa_sched_getaffinity", { numa_sched_getaffinity(0, mask) }) { $0 < 0 ? -1 : 0 }
        return nodes(of: mask)
    }

    /// numa_sched_setaffinity of this task to exactly `cpus`.
    public static func schedSetaffinity(_ cpus: [Int]) throws(NumaError) {
        guard let mask = numa_allocate_cpumask() else {
            throw NumaError("numa_allocate_cpumask", errno: ENOMEM, what: "")
        }
        defer { numa_bitmask_free(mask) }
        let value = "cpus " + NodeList.format(cpus)
        for c in cpus {
            guard c >= 0 && UInt(c) < mask.pointee.size else {
                throw NumaError("numa_sched_setaffinity", errno: 0, what: "CPU \(c) beyond the CPU mask", value: value)
            }
            numa_bitmask_setbit(mask, UInt32(c))
        }
        _ = try checked("numa_sched_setaffinity", value: value, { numa_sched_setaffinity(0, mask) }) {
            $0 < 0 ? -1 : 0
        }
    }

    /// The set bits of a libnuma bitmask.
    static func nodes(of mask: UnsafePointer<bitmask>?) -> [Int] {
        guard let mask else { return [] }
        return (0..<Int(mask.pointee.size)).filter { numa_bitmask_isbitset(mask, UInt32($0)) != 0 }
    }

    /// A nodemask holding `nodes`, for the duration of `body`. numa_bitmask_setbit ignores a bit
    /// beyond the mask, which would drop a node silently: refused here instead.
    static func withNodeMask(
        _ nodes: [Int], _ call: String, _ body: (UnsafeMutablePointer<bitmask>) throws(NumaError) -> Void
    ) throws(NumaError) {
        guard let mask = numa_allocate_nodemask() else {
            throw NumaError("numa_allocate_nodemask", errno: ENOMEM, what: "")
        }
        defer { numa_bitmask_free(mask) }
        for n in nodes {
            guard n >= 0 && UInt(n) < mask.pointee.size else {
                throw NumaError(
                    call, errno: 0, what: "node \(n) beyond the nodemask's \(mask.pointee.size) bits",
                    value: NodeList.format(nodes))
            }
            numa_bitmask_setbit(mask, UInt32(n))
        }
        try body(mask)
    }
}
