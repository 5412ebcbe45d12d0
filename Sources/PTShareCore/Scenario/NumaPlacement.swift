import Glibc

/// Where `run` puts its workers and the mapping's pages: numactl's `--cpunodebind`, `--membind`
/// and `--interleave`, applied to the driver while it fills the file and forks the workers (see
/// `NumaBinding`), so that the workers inherit them.
public struct NumaPlacement: Sendable, Equatable, CustomStringConvertible {
    /// A task memory policy (set_mempolicy) over a node list.
    public enum Memory: Sendable, Equatable {
        /// MPOL_BIND: pages only from these nodes.
        case bind([Int])
        /// MPOL_INTERLEAVE: pages round-robin over these nodes.
        case interleave([Int])

        public var nodes: [Int] {
            switch self {
            case .bind(let n), .interleave(let n): return n
            }
        }

        public var option: String {
            switch self {
            case .bind: return "--membind"
            case .interleave: return "--interleave"
            }
        }
    }

    /// The nodes whose CPUs the workers run on; nil: wherever the driver may run.
    public var cpuNodes: [Int]?
    /// The workers' memory policy; nil: the driver's (local allocation unless started under numactl).
    public var memory: Memory?

    public init(cpuNodes: [Int]? = nil, memory: Memory? = nil) {
        self.cpuNodes = cpuNodes
        self.memory = memory
    }

    public static let none = NumaPlacement()

    public var isNone: Bool { cpuNodes == nil && memory == nil }

    /// `cpunodebind 1, membind 1`, as the text report prints it; `none` without options.
    public var description: String {
        var parts: [String] = []
        if let c = cpuNodes { parts.append("cpunodebind \(NodeList.format(c))") }
        switch memory {
        case .bind(let n): parts.append("membind \(NodeList.format(n))")
        case .interleave(let n): parts.append("interleave \(NodeList.format(n))")
        case nil: break
        }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    /// Checks that need no machine: every list names at least one node, none negative.
    public func validate() throws(ValidationMessage) {
        var lists: [(String, [Int])] = []
        if let c = cpuNodes { lists.append(("--cpunodebind", c)) }
        if let m = memory { lists.append((m.option, m.nodes)) }
        for (option, nodes) in lists {
            guard !nodes.isEmpty else { throw ValidationMessage("\(option): names no NUMA node") }
            if let n = nodes.first(where: { $0 < 0 }) {
                throw ValidationMessage(
                    "\(option) \(nodes.map(String.init).joined(separator: ",")): node \(n) is negative")
            }
        }
    }

    /// Every list checked against the machine, with the messages `NodeList.parse` gives (a run
    /// built in code, not from the command line, gets the same checks before it forks).
    public func check(on machine: NumaMachine) throws(ValidationMessage) {
        try validate()
        if let c = cpuNodes { _ = try NodeList.parse(NodeList.format(c), option: "--cpunodebind", machine: machine) }
        if let m = memory { _ = try NodeList.parse(NodeList.format(m.nodes), option: m.option, machine: machine) }
    }
}

/// What the node-list checks need to know about the machine; `current` asks libnuma, tests make
/// up other machines.
public struct NumaMachine: Sendable {
    /// numa_available(): the kernel has memory policies.
    public var available: Bool
    /// Nodes under /sys/devices/system/node.
    public var nodes: [Int]
    /// Nodes this process may allocate from (its cpuset's Mems_allowed).
    public var allowed: [Int]
    /// libnuma's numa_parse_nodestring on this machine.
    public var parse: @Sendable (String) throws(NumaError) -> [Int]

    public init(
        available: Bool, nodes: [Int], allowed: [Int], parse: @escaping @Sendable (String) throws(NumaError) -> [Int]
    ) {
        self.available = available
        self.nodes = nodes
        self.allowed = allowed
        self.parse = parse
    }

    /// This machine, as libnuma sees it.
    public static func current() throws(NumaError) -> NumaMachine {
        guard Numa.available else {
            return NumaMachine(available: false, nodes: [], allowed: []) { (t) throws(NumaError) in
                throw NumaError("numa_parse_nodestring", errno: ENOSYS, what: "", value: t)
            }
        }
        return NumaMachine(available: true, nodes: try Numa.configuredNodes(), allowed: try Numa.allowedNodes()) {
            (t) throws(NumaError) in try Numa.parseNodeString(t)
        }
    }

    /// `this machine has 2 NUMA nodes (0-1)`, and the nodes this process may use when a cpuset
    /// narrows them.
    public var summary: String {
        var s = "this machine has \(nodes.count) NUMA node\(nodes.count == 1 ? "" : "s")"
        if !nodes.isEmpty { s += " (\(NodeList.format(nodes)))" }
        if allowed != nodes { s += ", of which this process may allocate from \(NodeList.format(allowed))" }
        return s
    }
}

/// Node lists as numactl writes them: `0`, `0-1`, `0,2`, `0-1,4`.
public enum NodeList {
    /// Ascending ranges: [0, 1, 2, 5] is `0-2,5`.
    public static func format(_ nodes: [Int]) -> String {
        let sorted = Set(nodes).sorted()
        var parts: [String] = []
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(j == i ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// The nodes of `text` for `option`, read by libnuma's numa_parse_nodestring (which refuses a
    /// node this process may not allocate from). Only digits, `,` and `-`: libnuma also takes
    /// `all`, `!`, `+N` (relative to the cpuset) and device names it resolves through sysfs and
    /// getaddrinfo, which would make the report's node list depend on the machine and a static
    /// binary's name lookups. Every message names the option, the value and the machine's nodes.
    public static func parse(_ text: String, option: String, machine: NumaMachine) throws(ValidationMessage) -> [Int] {
        guard machine.available else {
            throw ValidationMessage(
                "\(option) \(text): this kernel has no NUMA memory policy (get_mempolicy: ENOSYS; CONFIG_NUMA is off)")
        }
        let syntax = !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isNumber || $0 == "," || $0 == "-") }
        guard syntax else {
            throw ValidationMessage(
                "\(option) '\(text)': expected a list of NUMA nodes like 0, 0-1 or 0,2; \(machine.summary)")
        }
        let nodes: [Int]
        do { nodes = try machine.parse(text) } catch {
            let why = error.what.isEmpty ? error.description : error.what
            throw ValidationMessage(
                "\(option) \(text): not a node list of this machine (libnuma: \(why)); \(machine.summary)")
        }
        guard !nodes.isEmpty else {
            throw ValidationMessage("\(option) \(text): names no NUMA node; \(machine.summary)")
        }
        return Set(nodes).sorted()
    }
}
