/// One NUMA node's memory counters from `/sys/devices/system/node/nodeN/meminfo`.
///
/// Page tables are allocated on the node of the faulting CPU, so per-node `PageTables`
/// shows where the page-table memory landed when workers are spread over nodes.
public struct NodeMeminfo: Sendable, Equatable {
    /// The `N` every line starts with (`Node N Key: value`).
    public var node: Int
    /// Bytes for `kB` lines, raw counts for unitless ones (`HugePages_*`).
    public var fields: [String: UInt64]
    /// Where the text came from, so `require(_:)` can name the file.
    public var source: String

    public init(node: Int, fields: [String: UInt64], source: String = "/sys/devices/system/node/nodeN/meminfo") {
        self.node = node
        self.fields = fields
        self.source = source
    }

    /// Parses one node's meminfo.
    ///
    /// Every line must start with `Node N` for the same `N`, then be `Key: N [kB]`;
    /// an empty file, a missing prefix, a second node number or a repeated key is an error.
    public static func parse(
        _ text: String, source: String = "/sys/devices/system/node/nodeN/meminfo"
    ) throws(ProcParseError) -> NodeMeminfo {
        let lines = ProcText.lines(text)
        guard !lines.isEmpty else { throw ProcText.wholeFile(source, "empty file") }
        var node: Int?
        var fields: [String: UInt64] = [:]
        for line in lines {
            var rest = line.text.drop(while: ProcText.isSpace)
            let word = rest.prefix(while: { !ProcText.isSpace($0) })
            rest = rest[word.endIndex...].drop(while: ProcText.isSpace)
            let number = rest.prefix(while: { !ProcText.isSpace($0) })
            rest = rest[number.endIndex...]
            guard word == "Node", let n = ProcText.decimal(number), let id = Int(exactly: n) else {
                throw ProcText.failure(source, line, "expected a \"Node N\" prefix")
            }
            if let node, node != id {
                throw ProcText.failure(source, line, "line names node \(id), earlier lines node \(node)")
            }
            node = id
            let (key, value) = try ProcText.keyValue(rest, line: line, source: source)
            let v = try ProcText.sizeOrCount(value, line: line, source: source)
            guard fields.updateValue(v, forKey: key) == nil else {
                throw ProcText.failure(source, line, "duplicate key \"\(key)\"")
            }
        }
        return NodeMeminfo(node: node!, fields: fields, source: source)
    }

    /// The value of `key`, or an error naming the key and the file when the kernel lacks it.
    public func require(_ key: String) throws(ProcParseError) -> UInt64 {
        guard let v = fields[key] else { throw ProcText.wholeFile(source, "missing field \"\(key)\"") }
        return v
    }

    /// Bytes of page-table pages allocated on this node (`PageTables`).
    public var pageTables: UInt64? { fields["PageTables"] }
    /// Bytes of secondary (KVM) page tables on this node (`SecPageTables`).
    public var secPageTables: UInt64? { fields["SecPageTables"] }
    /// Bytes of RAM on this node (`MemTotal`).
    public var memTotal: UInt64? { fields["MemTotal"] }
    /// Bytes of free RAM on this node (`MemFree`).
    public var memFree: UInt64? { fields["MemFree"] }
    /// Bytes of shmem/tmpfs/memfd pages on this node (`Shmem`).
    public var shmem: UInt64? { fields["Shmem"] }
    /// Number of hugetlb pages in this node's default pool (`HugePages_Total`, a count).
    public var hugePagesTotal: UInt64? { fields["HugePages_Total"] }
    /// Number of free hugetlb pages on this node (`HugePages_Free`, a count).
    public var hugePagesFree: UInt64? { fields["HugePages_Free"] }
}
