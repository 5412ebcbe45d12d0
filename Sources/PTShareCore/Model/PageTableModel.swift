/// What the kernel must allocate in page tables for a scenario, from first principles.
///
/// x86-64: a PTE table maps 2 MiB, a PMD table 1 GiB, a PUD table 512 GiB. A mapping whose
/// leaves are 4 KiB pages needs PTE, PMD and PUD tables over its range; 2 MiB leaves (hugetlb)
/// need PMD and PUD tables; 1 GiB leaves PUD tables only. A table already present for another
/// mapping of the same process (the same span holds a VMA with resident pages) is not new.
public struct ModelInput: Sendable, Equatable {
    public var workers: Int
    /// The mapping as each worker got it (workers are forks, so it is one address in practice).
    public var address: UInt64
    public var size: UInt64
    public var fileOffset: UInt64
    /// Leaf page size: 4096, 2 MiB or 1 GiB.
    public var leafSize: UInt64
    public var touched: Bool
    public var share: ShareMode
    /// hugetlbfs with mainline PMD sharing compiled in and applicable on this arch.
    public var hugetlbPMDSharing: Bool
    /// Ranges [start, end) of the worker's other mappings that hold resident pages.
    public var occupied: [Range<UInt64>]
    /// Bytes of the range that one worker maps with PMD leaves (shmem THP): no PTE table there.
    public var pmdMappedBytes: UInt64

    public init(
        workers: Int, address: UInt64, size: UInt64, fileOffset: UInt64 = 0, leafSize: UInt64,
        touched: Bool, share: ShareMode, hugetlbPMDSharing: Bool = false, occupied: [Range<UInt64>] = [],
        pmdMappedBytes: UInt64 = 0
    ) {
        self.workers = workers
        self.address = address
        self.size = size
        self.fileOffset = fileOffset
        self.leafSize = leafSize
        self.touched = touched
        self.share = share
        self.hugetlbPMDSharing = hugetlbPMDSharing
        self.occupied = occupied
        self.pmdMappedBytes = pmdMappedBytes
    }
}

/// Table pages at one level: how many each worker allocates alone, and how many all share.
public struct LevelCount: Sendable, Equatable, Codable {
    public var level: String
    /// Spans of this level's size that the mapping overlaps.
    public var spans: Int
    /// Of those, spans that already hold a table for another mapping of the worker.
    public var alreadyPresent: Int
    public var perWorkerPages: Int
    public var sharedPages: Int
    /// Distinct table pages of this level that map the range, over all workers: what the
    /// ptshare_probe module counts (tables already there for other mappings included).
    public var distinctTables: Int = 0
}

public struct ModelResult: Sendable, Equatable, Codable {
    /// The counts of one level ("pte", "pmd", "pud"); nil when the leaf size has no such level.
    public func level(_ name: String) -> LevelCount? { levels.first { $0.level == name } }

    public var expectedPageTableBytes: Int64
    /// The same scenario without any sharing: the baseline savings are measured against.
    public var unsharedPageTableBytes: Int64
    public var perWorkerBytes: Int64
    public var sharedBytes: Int64
    public var levels: [LevelCount]
    public var reason: String
}

public enum PageTableModel {
    public static func expected(_ m: ModelInput) -> ModelResult {
        let levels = tableLevels(m, sharing: true)
        let unshared = tableLevels(m, sharing: false)
        let page = Int64(Geometry.page)
        let perWorker = Int64(levels.reduce(0) { $0 + $1.perWorkerPages }) * page
        let shared = Int64(levels.reduce(0) { $0 + $1.sharedPages }) * page
        let expected = Int64(m.workers) * perWorker + shared
        let unsharedBytes =
            Int64(m.workers) * Int64(unshared.reduce(0) { $0 + $1.perWorkerPages + $1.sharedPages }) * page
        return ModelResult(
            expectedPageTableBytes: expected, unsharedPageTableBytes: unsharedBytes, perWorkerBytes: perWorker,
            sharedBytes: shared, levels: levels, reason: explain(m, levels, expected))
    }

    /// The span each level's table maps, for a mapping with the given leaf size.
    static func levelSpans(leafSize: UInt64) -> [(String, UInt64)] {
        var l: [(String, UInt64)] = []
        if leafSize < Geometry.pmdSize { l.append(("pte", Geometry.pmdSize)) }
        if leafSize < Geometry.pudSize { l.append(("pmd", Geometry.pudSize)) }
        l.append(("pud", Geometry.p4dSize))
        return l
    }

    static func tableLevels(_ m: ModelInput, sharing: Bool) -> [LevelCount] {
        let start = m.address
        let end = m.address + m.size
        return levelSpans(leafSize: m.leafSize).map { (name, span) in
            guard m.size > 0 else {
                return LevelCount(level: name, spans: 0, alreadyPresent: 0, perWorkerPages: 0, sharedPages: 0)
            }
            let first = start / span
            let last = (end - 1) / span
            var present = 0
            var perWorker = 0
            var shared = 0
            var distinct = 0
            var pmdLeafSpans = name == "pte" ? Int(m.pmdMappedBytes / Geometry.pmdSize) : 0
            for s in first...last {
                let lo = s * span
                let hi = lo + span
                let whole = lo >= start && hi <= end
                if !whole && m.occupied.contains(where: { $0.overlaps(lo..<hi) }) {
                    // Each worker's own table, there before the mapping.
                    present += 1
                    distinct += m.workers
                    continue
                }
                guard m.touched else { continue }
                if whole && pmdLeafSpans > 0 {
                    // Mapped by a PMD leaf (shmem THP): no PTE table below it.
                    pmdLeafSpans -= 1
                    continue
                }
                if sharing && whole && sharesTable(m, level: name, spanStart: lo) {
                    shared += 1
                    distinct += 1
                } else {
                    perWorker += 1
                    distinct += m.workers
                }
            }
            return LevelCount(
                level: name, spans: m.touched ? Int(last - first + 1) : present, alreadyPresent: present,
                perWorkerPages: perWorker, sharedPages: shared, distinctTables: distinct)
        }
    }

    /// Whether a whole span's table is one page for all workers.
    static func sharesTable(_ m: ModelInput, level: String, spanStart: UInt64) -> Bool {
        switch level {
        case "pte":
            // MAP_SHARED_PT: one PTE table per 2 MiB chunk of the file range.
            return m.share == .pt && (spanStart - m.address + m.fileOffset) % Geometry.pmdSize == 0
        case "pmd":
            // Mainline hugetlb (page_table_shareable): the 1 GiB span must lie wholly in the VMA
            // (checked by the caller) and sit at the same pmd_index in every sharer, which
            // identical forked mappings of one file range always do.
            return m.hugetlbPMDSharing && m.leafSize == Geometry.pmdSize
        default:
            return false
        }
    }

    static func explain(_ m: ModelInput, _ levels: [LevelCount], _ expected: Int64) -> String {
        if !m.touched { return "nothing is faulted in (--touch none): mmap alone allocates no page tables" }
        let leaf = m.leafSize == Geometry.page ? "4 KiB" : ByteSize(m.leafSize).description + " (hugetlb)"
        var parts: [String] = []
        for l in levels where l.spans > 0 {
            var p = "\(l.level): \(l.spans) span(s)"
            if l.alreadyPresent > 0 { p += ", \(l.alreadyPresent) already present" }
            p += ", \(l.perWorkerPages) page(s) per worker"
            if l.sharedPages > 0 {
                p +=
                    ", \(l.sharedPages) shared once"
                    + (l.level == "pte" ? " (MAP_SHARED_PT)" : " (hugetlb PMD sharing)")
            }
            parts.append(p)
        }
        if m.pmdMappedBytes > 0 {
            parts.append("\(ByteSize(m.pmdMappedBytes)) PMD-mapped (THP or DAX leaves: no PTE table)")
        }
        return "\(leaf) leaves at \(hex(m.address)), \(ByteSize(m.size)): " + parts.joined(separator: "; ")
            + "; × \(m.workers) worker(s) = \(ByteSize.human(expected))"
    }
}
