/// One mapping from `/proc/PID/smaps`, or the single summary of `/proc/PID/smaps_rollup`.
///
/// ptshare finds its shared region here to check what the kernel actually did with it:
/// the page size it used (`KernelPageSize`), how much is resident, and the VMA flags.
public struct SmapsEntry: Sendable, Equatable {
    /// First address of the mapping.
    public var start: UInt64
    /// One past the last address of the mapping.
    public var end: UInt64
    /// `rwxp`/`rwxs` permissions; the fourth letter says shared (`s`) or private (`p`).
    public var perms: String
    /// Offset into the mapped file, in bytes.
    public var offset: UInt64
    /// `major:minor` of the backing device, in hex as printed.
    public var device: String
    /// Inode of the backing file, 0 for anonymous memory.
    public var inode: UInt64
    /// Everything after the inode column: may contain spaces and ` (deleted)`; `""` when anonymous.
    public var path: String
    /// `kB` lines in bytes (`Rss`, `Pss`, `KernelPageSize`, `Private_Hugetlb`, ...),
    /// unitless lines as counts (`THPeligible`, `ProtectionKey`).
    public var fields: [String: UInt64]
    /// The two-letter `VmFlags` mnemonics (`sh` shared, `ht` hugetlb, `hg` MADV_HUGEPAGE, ...).
    public var vmFlags: [String]

    public init(
        start: UInt64, end: UInt64, perms: String, offset: UInt64, device: String, inode: UInt64,
        path: String, fields: [String: UInt64] = [:], vmFlags: [String] = []
    ) {
        self.start = start
        self.end = end
        self.perms = perms
        self.offset = offset
        self.device = device
        self.inode = inode
        self.path = path
        self.fields = fields
        self.vmFlags = vmFlags
    }

    /// Bytes spanned by the mapping (`end - start`).
    public var size: UInt64 { end - start }
    /// Whether `address` lies in `[start, end)`.
    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }

    /// Bytes resident (`Rss`); hugetlb pages are not counted here but in `*_Hugetlb`.
    public var rss: UInt64? { fields["Rss"] }
    /// Bytes of proportional set size (`Pss`).
    public var pss: UInt64? { fields["Pss"] }
    /// Bytes per page the kernel uses for this VMA (`KernelPageSize`): 4 KiB, or 2 MiB for hugetlb.
    public var kernelPageSize: UInt64? { fields["KernelPageSize"] }
    /// Bytes per page the MMU uses (`MMUPageSize`).
    public var mmuPageSize: UInt64? { fields["MMUPageSize"] }
}

/// Parsers for `/proc/PID/smaps` and `/proc/PID/smaps_rollup`.
public enum Smaps {
    /// Parses `/proc/PID/smaps` into its mappings, in file order (ascending addresses).
    ///
    /// A header line starts each mapping; `Key: N [kB]` lines and `VmFlags:` belong to the
    /// latest header. A field line before any header, a bad header, an unknown unit or a
    /// repeated key is an error. Empty text gives `[]`: kernel threads and zombies have no mappings.
    public static func parse(_ text: String, source: String = "/proc/self/smaps") throws(ProcParseError)
        -> [SmapsEntry]
    {
        var entries: [SmapsEntry] = []
        for line in ProcText.lines(text) {
            let first = line.text.drop(while: ProcText.isSpace).prefix(while: { !ProcText.isSpace($0) })
            if !first.contains(":") {
                let h = try ProcText.mappingHeader(line, source: source)
                entries.append(
                    SmapsEntry(
                        start: h.start, end: h.end, perms: h.perms, offset: h.offset,
                        device: h.device, inode: h.inode, path: h.path))
                continue
            }
            guard !entries.isEmpty else {
                throw ProcText.failure(source, line, "field line before any mapping header")
            }
            let (key, value) = try ProcText.keyValue(line, source: source)
            if key == "VmFlags" {
                entries[entries.count - 1].vmFlags = ProcText.tokens(value).map(String.init)
                continue
            }
            let n = try ProcText.sizeOrCount(value, line: line, source: source)
            guard entries[entries.count - 1].fields.updateValue(n, forKey: key) == nil else {
                throw ProcText.failure(source, line, "duplicate key \"\(key)\" in one mapping")
            }
        }
        return entries
    }

    /// Parses `/proc/PID/smaps_rollup`: exactly one header whose path is `[rollup]`,
    /// followed by the summed fields (it has no `VmFlags`).
    public static func parseRollup(_ text: String, source: String = "/proc/self/smaps_rollup")
        throws(ProcParseError) -> SmapsEntry
    {
        let entries = try parse(text, source: source)
        guard entries.count == 1 else {
            throw ProcText.wholeFile(source, "expected exactly one header, found \(entries.count)")
        }
        guard entries[0].path == "[rollup]" else {
            throw ProcText.wholeFile(source, "header path is \"\(entries[0].path)\", expected \"[rollup]\"")
        }
        return entries[0]
    }

    /// The mapping whose `[start, end)` holds `address`, or nil when it lies in a gap.
    public static func entry(containing address: UInt64, in entries: [SmapsEntry]) -> SmapsEntry? {
        entries.first { $0.contains(address) }
    }
}
