/// One entry of /proc/PID/pagemap: 64 bits per virtual page, in the machine's byte order
/// (Documentation/admin-guide/mm/pagemap.rst).
public struct PagemapEntry: Sendable, Equatable {
    public var raw: UInt64

    public init(raw: UInt64) { self.raw = raw }

    public var present: Bool { raw >> 63 & 1 == 1 }
    public var swapped: Bool { raw >> 62 & 1 == 1 }
    /// A page of a file, or shared anonymous memory.
    public var fileOrSharedAnon: Bool { raw >> 61 & 1 == 1 }
    /// PM_MMAP_EXCLUSIVE: the page is mapped by this process alone.
    public var exclusive: Bool { raw >> 56 & 1 == 1 }
    public var softDirty: Bool { raw >> 55 & 1 == 1 }
    /// The page frame number of a present page; 0 for a reader without CAP_SYS_ADMIN.
    public var pfn: UInt64? { present ? raw & ((1 << 55) - 1) : nil }
}

public enum Pagemap {
    public static let entryBytes = 8

    /// The entries in `bytes`, read from `source` at a page's entry: whole 8-byte entries only.
    public static func parse(_ bytes: [UInt8], source: String) throws(ProcParseError) -> [PagemapEntry] {
        guard bytes.count % entryBytes == 0 else {
            throw ProcParseError(
                source: source, line: 0, text: "",
                reason: "\(bytes.count) bytes: not a whole number of \(entryBytes)-byte entries")
        }
        return bytes.withUnsafeBytes { b in
            stride(from: 0, to: b.count, by: entryBytes).map {
                PagemapEntry(raw: b.loadUnaligned(fromByteOffset: $0, as: UInt64.self))
            }
        }
    }

    /// The byte offset in pagemap of the entry for the page at `address`.
    public static func offset(of address: UInt64, pageSize: UInt64 = 4096) -> UInt64 {
        address / pageSize * UInt64(entryBytes)
    }
}
