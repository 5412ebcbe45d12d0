import CPTShare
import Glibc

/// Which PTE table page maps each 2 MiB file chunk in each view (process and address) of a
/// file, from the ptshare_probe module: the direct proof that sharing happened, or did not.
/// Data checks alone pass on plain MAP_SHARED mappings; a census does not.
struct TableCensus: Sendable, Equatable {
    /// One mapping of the file in one process.
    struct View: Sendable, Equatable {
        var label: String
        var pid: Int32
        /// Where the mapping starts in that process (2 MiB-aligned for MAP_SHARED_PT).
        var address: UInt64
        /// The file offset mapped at `address` (2 MiB-aligned).
        var fileOffset: UInt64
        var length: UInt64
    }

    /// What a census must find.
    enum Expectation: Sendable, Equatable {
        /// Every view maps every chunk through a PTE table, and all views of one file chunk
        /// through the same one (MAP_SHARED_PT sharing).
        case oneTablePerChunk
        /// No two views share a PTE table anywhere (different access, different offsets...).
        case separateTables
        /// Mid-storm: a view may not have faulted a chunk yet (no table there), but every chunk
        /// with a table in several views has the same one in all of them, and at least one chunk
        /// is mapped through one table in two or more views (else the census proved nothing).
        case sharedWhereFaulted
        /// Every view maps every chunk through a PTE table, no table serves more than `k` views,
        /// and each chunk has as few tables as that allows (one per `k` views, rounded up):
        /// sharing as dense as a cap on sharers per table lets it be.
        case atMostPerTable(Int)
    }

    struct Entry: Sendable, Equatable {
        var view: String
        var slot: TableSlot
    }

    /// File chunk index (file offset / 2 MiB) → what maps it in each view, in view order.
    var chunks: [UInt64: [Entry]]

    /// Pure: the slots one query per view returned, laid out by file chunk.
    static func layout(_ views: [View], _ maps: [TableMap]) -> TableCensus {
        var chunks: [UInt64: [Entry]] = [:]
        for (v, m) in zip(views, maps) {
            let first = v.fileOffset / Geometry.pmdSize
            // A short answer must not shrink the view: a chunk the module did not report has no table.
            for i in 0..<Int(v.length / Geometry.pmdSize) {
                let slot = i < m.pte.count ? m.pte[i] : TableSlot(kind: .none, pfn: 0)
                chunks[first + UInt64(i), default: []].append(Entry(view: v.label, slot: slot))
            }
        }
        return TableCensus(chunks: chunks)
    }

    /// Distinct PTE table pages in the census.
    var distinctTables: Int {
        Set(chunks.values.flatMap { $0.filter { $0.slot.kind == .table }.map(\.slot.pfn) }).count
    }

    /// Chunks that one table maps in two or more views: the sharing the census saw.
    var sharedChunks: Int {
        chunks.values.filter { entries in
            var views: [UInt64: Set<String>] = [:]
            for en in entries where en.slot.kind == .table { views[en.slot.pfn, default: []].insert(en.view) }
            return views.values.contains { $0.count > 1 }
        }.count
    }

    /// Pure: whether the census meets `e`, and one line saying what it found.
    func judge(_ e: Expectation) -> (ok: Bool, line: String) {
        var problems: [String] = []
        var owners: [UInt64: [String]] = [:]
        for k in chunks.keys.sorted() {
            let entries = chunks[k]!
            // Mid-storm a view may not have touched the chunk yet; a leaf is never right.
            for en in entries where en.slot.kind != .table && !(e == .sharedWhereFaulted && en.slot.kind == .none) {
                problems.append("chunk \(k) in \(en.view): no PTE table (\(en.slot.kind))")
            }
            let pfns = Set(entries.filter { $0.slot.kind == .table }.map(\.slot.pfn))
            for en in entries where en.slot.kind == .table { owners[en.slot.pfn, default: []].append(en.view) }
            if case .atMostPerTable(let cap) = e {
                var users: [UInt64: Int] = [:]
                for en in entries where en.slot.kind == .table { users[en.slot.pfn, default: 0] += 1 }
                for (pfn, n) in users.sorted(by: { $0.key < $1.key }) where n > cap {
                    problems.append("chunk \(k): table pfn \(hex(pfn)) serves \(n) views, more than \(cap)")
                }
                let need = (entries.count + cap - 1) / max(cap, 1)
                if pfns.count != need {
                    problems.append("chunk \(k): \(pfns.count) tables for \(entries.count) views, expected \(need)")
                }
            } else if e != .separateTables && pfns.count > 1 {
                problems.append("chunk \(k): \(pfns.count) tables for \(entries.count) views")
            }
        }
        if e == .separateTables {
            for (pfn, views) in owners.sorted(by: { $0.key < $1.key }) where views.count > 1 {
                problems.append("table pfn \(hex(pfn)) shared by \(views.joined(separator: ", "))")
            }
        }
        if e == .sharedWhereFaulted && problems.isEmpty && sharedChunks == 0 {
            problems.append("no chunk is mapped through one table in two or more views: nothing shared")
        }
        let views = Set(chunks.values.flatMap { $0.map(\.view) }).count
        let what: String
        switch e {
        case .oneTablePerChunk: what = "one shared table per chunk"
        case .separateTables: what = "no table shared between views"
        case .sharedWhereFaulted:
            what = "one table per faulted chunk, shared somewhere (\(sharedChunks) chunks shared by several views)"
        case .atMostPerTable(let cap): what = "tables of at most \(cap) views each, as few as that allows"
        }
        var line =
            "census (ptshare_probe): \(chunks.count) chunks × \(views) views, \(distinctTables) distinct PTE tables; "
            + "expected \(what)"
        if !problems.isEmpty { line += ": " + problems.prefix(4).joined(separator: "; ") }
        return (problems.isEmpty, line)
    }

    /// Queries the module for every view. nil with the reason when the module is not loaded
    /// (no proof possible here); a failed query throws.
    static func take(_ views: [View]) throws(SystemCallError) -> TableCensus? {
        guard case .ready = TableProbe.state() else { return nil }
        let probe = try TableProbe()
        var maps: [TableMap] = []
        for v in views {
            maps.append(try probe.query(pid: v.pid, start: v.address, end: v.address + v.length))
        }
        return layout(views, maps)
    }
}

extension Checks {
    /// A census of `views` that must meet `e`. Without a loaded ptshare_probe the test cannot
    /// prove sharing: it ends as SKIP with that reason unless a check failed (the module is in
    /// the guest, so the guest's suite always takes the census); a shipped module that is not
    /// loaded, or speaks another interface, fails.
    mutating func census(_ views: [TableCensus.View], _ e: TableCensus.Expectation, modulePath: String) {
        guard censusPossible(modulePath: modulePath) else { return }
        do throws(SystemCallError) {
            guard let t = try TableCensus.take(views) else {
                unproven("the ptshare_probe module went away: the table census cannot run")
                return
            }
            let (ok, line) = t.judge(e)
            expect(ok, line)
        } catch {
            expect(false, "census: \(error)")
        }
    }

    /// Whether a census can be taken here. If not, says why: a check line that fails when a
    /// shipped module is not loaded or speaks another interface, else the unproven reason.
    mutating func censusPossible(modulePath: String) -> Bool {
        switch TableProbe.state() {
        case .incompatible(let v):
            expect(false, "census: ptshare_probe speaks interface \(v), this ptshare \(PTSHARE_PROBE_VERSION)")
            return false
        case .notLoaded:
            if access(modulePath, R_OK) == 0 {
                expect(false, "census: \(modulePath) is here but ptshare_probe is not loaded (did insmod fail?)")
            } else {
                unproven("the ptshare_probe module is not loaded: the table census cannot run")
            }
            return false
        case .ready: return true
        }
    }
}
