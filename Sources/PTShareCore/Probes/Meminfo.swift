/// System-wide memory counters from `/proc/meminfo`.
///
/// `PageTables` here is the kernel's own count of page-table pages, the number ptshare
/// compares against its model; the other fields explain where the rest of memory went.
public struct Meminfo: Sendable, Equatable {
    /// Every line: bytes for `kB` lines, raw counts for unitless ones (`HugePages_*`).
    public var fields: [String: UInt64]
    /// Where the text came from, so `require(_:)` can name the file.
    public var source: String

    public init(fields: [String: UInt64], source: String = "/proc/meminfo") {
        self.fields = fields
        self.source = source
    }

    /// Parses the text of `/proc/meminfo`.
    ///
    /// Every non-blank line must be `Key: N` or `Key: N kB`; anything else, a repeated key,
    /// or an empty file is an error, because a silently skipped line could be the one we need.
    public static func parse(_ text: String, source: String = "/proc/meminfo") throws(ProcParseError) -> Meminfo {
        let lines = ProcText.lines(text)
        guard !lines.isEmpty else { throw ProcText.wholeFile(source, "empty file") }
        var fields: [String: UInt64] = [:]
        for line in lines {
            let (key, value) = try ProcText.keyValue(line, source: source)
            let n = try ProcText.sizeOrCount(value, line: line, source: source)
            guard fields.updateValue(n, forKey: key) == nil else {
                throw ProcText.failure(source, line, "duplicate key \"\(key)\"")
            }
        }
        return Meminfo(fields: fields, source: source)
    }

    /// The value of `key`, or an error naming the key and the file when the kernel lacks it.
    public func require(_ key: String) throws(ProcParseError) -> UInt64 {
        guard let v = fields[key] else { throw ProcText.wholeFile(source, "missing field \"\(key)\"") }
        return v
    }

    /// Bytes of page-table pages for user space (`PageTables`).
    public var pageTables: UInt64? { fields["PageTables"] }
    /// Bytes of secondary page tables, e.g. KVM's EPT/NPT (`SecPageTables`).
    public var secPageTables: UInt64? { fields["SecPageTables"] }
    /// Bytes of shmem/tmpfs/memfd pages (`Shmem`).
    public var shmem: UInt64? { fields["Shmem"] }
    /// Bytes of file pages mapped into some process (`Mapped`).
    public var mapped: UInt64? { fields["Mapped"] }
    /// Bytes the kernel estimates can be allocated without swapping (`MemAvailable`).
    public var memAvailable: UInt64? { fields["MemAvailable"] }
    /// Bytes of usable RAM (`MemTotal`).
    public var memTotal: UInt64? { fields["MemTotal"] }
    /// Number of hugetlb pages in the default pool (`HugePages_Total`, a count).
    public var hugePagesTotal: UInt64? { fields["HugePages_Total"] }
    /// Number of hugetlb pages not yet allocated (`HugePages_Free`, a count).
    public var hugePagesFree: UInt64? { fields["HugePages_Free"] }
    /// Number of hugetlb pages promised to mappings but not faulted in (`HugePages_Rsvd`, a count).
    public var hugePagesRsvd: UInt64? { fields["HugePages_Rsvd"] }
    /// Number of surplus hugetlb pages above the pool size (`HugePages_Surp`, a count).
    public var hugePagesSurp: UInt64? { fields["HugePages_Surp"] }
    /// Bytes per default hugetlb page (`Hugepagesize`).
    public var hugepagesize: UInt64? { fields["Hugepagesize"] }
}
