/// One line of `/proc/PID/maps`: a VMA without smaps' counters.
///
/// Cheaper to read than smaps (no page walk), so it is the way to count a worker's VMAs
/// or find where a region landed without touching its page tables.
public struct MapsEntry: Sendable, Equatable {
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

    public init(
        start: UInt64, end: UInt64, perms: String, offset: UInt64,
        device: String = "00:00", inode: UInt64 = 0, path: String
    ) {
        self.start = start
        self.end = end
        self.perms = perms
        self.offset = offset
        self.device = device
        self.inode = inode
        self.path = path
    }

    /// Bytes spanned by the mapping (`end - start`).
    public var size: UInt64 { end - start }
    /// Whether `address` lies in `[start, end)`.
    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }
}

/// Parser for `/proc/PID/maps`.
public enum Maps {
    /// Parses `/proc/PID/maps`, one mapping per line in file order.
    ///
    /// Every non-blank line must be a well-formed header; empty text gives `[]`
    /// (kernel threads and zombies have no mappings).
    public static func parse(_ text: String, source: String = "/proc/self/maps") throws(ProcParseError)
        -> [MapsEntry]
    {
        var entries: [MapsEntry] = []
        for line in ProcText.lines(text) {
            let h = try ProcText.mappingHeader(line, source: source)
            entries.append(
                MapsEntry(
                    start: h.start, end: h.end, perms: h.perms, offset: h.offset,
                    device: h.device, inode: h.inode, path: h.path))
        }
        return entries
    }

    /// The mapping whose `[start, end)` holds `address`, or nil when it lies in a gap.
    public static func entry(containing address: UInt64, in entries: [MapsEntry]) -> MapsEntry? {
        entries.first { $0.contains(address) }
    }
}
