import Testing

@testable import PTShareCore

// x86-64 geometry, written out here rather than taken from `Geometry`, so that a wrong
// constant in the sources shows up as a wrong number below.
private let page: UInt64 = 4096
private let pteSpan: UInt64 = 2 << 20  // one PTE table maps 2 MiB
private let pmdSpan: UInt64 = 1 << 30  // one PMD table maps 1 GiB
private let pudSpan: UInt64 = 512 << 30  // one PUD table maps 512 GiB

/// 0x7f0000000000 = 254 × 512 GiB: aligned to every level.
private let base: UInt64 = 0x7f00_0000_0000
/// One 4 KiB page at the very start of the 512 GiB span [base, base + 512 GiB) and of the
/// 1 GiB span [base, base + 1 GiB): a resident mapping that already holds the PUD table of
/// that 512 GiB span and the PMD table of that first 1 GiB span.
private let occupiedAtBase: Range<UInt64> = base..<(base + page)
/// The second 1 GiB span of the same 512 GiB span: the occupied page above is not in it.
private let secondGiB: UInt64 = base + pmdSpan

@Suite struct GeometryConstantTests {
    @Test func constants() {
        #expect(Geometry.page == 4096)
        #expect(Geometry.pmdSize == 2 * 1024 * 1024)
        #expect(Geometry.pudSize == 1024 * 1024 * 1024)
        #expect(Geometry.p4dSize == 512 * 1024 * 1024 * 1024)
        #expect(base % pudSpan == 0)
    }

    @Test func levelSpansFor4KiBLeaves() {
        let l = PageTableModel.levelSpans(leafSize: 4096)
        #expect(l.map(\.0) == ["pte", "pmd", "pud"])
        #expect(l.map(\.1) == [pteSpan, pmdSpan, pudSpan])
    }

    @Test func levelSpansFor2MiBLeaves() {
        // A 2 MiB leaf is a PMD entry: no PTE table.
        let l = PageTableModel.levelSpans(leafSize: 2 << 20)
        #expect(l.map(\.0) == ["pmd", "pud"])
        #expect(l.map(\.1) == [pmdSpan, pudSpan])
    }

    @Test func levelSpansFor1GiBLeaves() {
        // A 1 GiB leaf is a PUD entry: neither PTE nor PMD tables.
        let l = PageTableModel.levelSpans(leafSize: 1 << 30)
        #expect(l.map(\.0) == ["pud"])
        #expect(l.map(\.1) == [pudSpan])
    }
}

@Suite struct PageTableModelTests {
    private func level(_ r: ModelResult, _ name: String) throws -> LevelCount {
        try #require(r.levels.first { $0.level == name }, "no \(name) level in \(r.levels)")
    }

    /// (a) 64 workers × 64 MiB of 4 KiB pages at a 2 MiB-aligned address inside a 1 GiB span
    /// (and 512 GiB span) that another mapping already occupies.
    @Test func alignedSmallMappingInOccupiedSpan() throws {
        let address = base + pteSpan  // 0x7f0000200000
        let r = PageTableModel.expected(
            ModelInput(
                workers: 64, address: address, size: 64 << 20, leafSize: 4096, touched: true, share: .none,
                occupied: [occupiedAtBase]))
        // PTE: 64 MiB / 2 MiB = 32 whole spans, 32 pages per worker.
        // PMD: the 1 GiB span is not whole and holds the occupied page: already present.
        // PUD: likewise already present.
        // Total: 64 workers × 32 pages × 4096 = 8,388,608 bytes (8 MiB).
        #expect(
            try level(r, "pte")
                == LevelCount(
                    level: "pte", spans: 32, alreadyPresent: 0, perWorkerPages: 32, sharedPages: 0, distinctTables: 2048
                ))
        #expect(
            try level(r, "pmd")
                == LevelCount(
                    level: "pmd", spans: 1, alreadyPresent: 1, perWorkerPages: 0, sharedPages: 0, distinctTables: 64))
        #expect(
            try level(r, "pud")
                == LevelCount(
                    level: "pud", spans: 1, alreadyPresent: 1, perWorkerPages: 0, sharedPages: 0, distinctTables: 64))
        #expect(r.perWorkerBytes == 32 * 4096)
        #expect(r.sharedBytes == 0)
        #expect(r.expectedPageTableBytes == 64 * 32 * 4096)
        #expect(r.expectedPageTableBytes == 8_388_608)
        #expect(r.unsharedPageTableBytes == 8_388_608)
        #expect(
            r.reason
                == "4 KiB leaves at 0x7f0000200000, 64M: pte: 32 span(s), 32 page(s) per worker; "
                + "pmd: 1 span(s), 1 already present, 0 page(s) per worker; "
                + "pud: 1 span(s), 1 already present, 0 page(s) per worker; × 64 worker(s) = 8.0 MiB")
    }

    /// (b) The same mapping 2 MiB + 4 KiB into the span: it straddles one more PTE span.
    @Test func misalignedSmallMappingStraddlesOneMorePTESpan() throws {
        let address = base + pteSpan + page  // 0x7f0000201000
        let r = PageTableModel.expected(
            ModelInput(
                workers: 64, address: address, size: 64 << 20, leafSize: 4096, touched: true, share: .none,
                occupied: [occupiedAtBase]))
        // [0x7f0000201000, 0x7f0004201000): first PTE span 0x7f0000200000, last 0x7f0004200000:
        // (0x4200000 − 0x200000) / 0x200000 + 1 = 32 + 1 = 33 spans; the two partial ones do not
        // overlap the occupied page (it lies in [base, base + 2 MiB)), so 33 pages per worker.
        // Total: 64 × 33 × 4096 = 8,650,752 bytes.
        #expect(
            try level(r, "pte")
                == LevelCount(
                    level: "pte", spans: 33, alreadyPresent: 0, perWorkerPages: 33, sharedPages: 0, distinctTables: 2112
                ))
        #expect(try level(r, "pmd").perWorkerPages == 0)
        #expect(try level(r, "pud").perWorkerPages == 0)
        #expect(r.expectedPageTableBytes == 64 * 33 * 4096)
        #expect(r.expectedPageTableBytes == 8_650_752)
    }

    /// A partial PTE span that overlaps an occupied range already has its table.
    @Test func partialPTESpanOverlappingOccupiedRangeIsPresent() throws {
        // Mapping starts 4 KiB into [base, base + 2 MiB), where the occupied page lives.
        let r = PageTableModel.expected(
            ModelInput(
                workers: 2, address: base + page, size: 4 << 20, leafSize: 4096, touched: true, share: .none,
                occupied: [occupiedAtBase]))
        // [base + 4K, base + 4M + 4K): PTE spans base, base+2M, base+4M = 3; the first is
        // partial and holds the occupied page → present; the second is whole → 1 page; the third
        // is partial, not occupied → 1 page. PMD and PUD present. 2 × 2 × 4096 = 16,384.
        #expect(
            try level(r, "pte")
                == LevelCount(
                    level: "pte", spans: 3, alreadyPresent: 1, perWorkerPages: 2, sharedPages: 0, distinctTables: 6))
        #expect(r.expectedPageTableBytes == 16_384)
    }

    /// (c) 1 GiB at a 1 GiB-aligned address, nothing else mapped nearby.
    @Test func oneGiBAlignedNothingOccupied() throws {
        let r = PageTableModel.expected(
            ModelInput(workers: 10, address: secondGiB, size: 1 << 30, leafSize: 4096, touched: true, share: .none))
        // PTE: 1 GiB / 2 MiB = 512 pages. PMD: one whole 1 GiB span = 1 page (no sharing for
        // 4 KiB leaves). PUD: the 512 GiB span is partial, not occupied = 1 page.
        // Per worker 514 × 4096 = 2,105,344; × 10 = 21,053,440.
        #expect(
            try level(r, "pte")
                == LevelCount(
                    level: "pte", spans: 512, alreadyPresent: 0, perWorkerPages: 512, sharedPages: 0,
                    distinctTables: 5120))
        #expect(
            try level(r, "pmd")
                == LevelCount(
                    level: "pmd", spans: 1, alreadyPresent: 0, perWorkerPages: 1, sharedPages: 0, distinctTables: 10))
        #expect(
            try level(r, "pud")
                == LevelCount(
                    level: "pud", spans: 1, alreadyPresent: 0, perWorkerPages: 1, sharedPages: 0, distinctTables: 10))
        #expect(r.perWorkerBytes == 2_105_344)
        #expect(r.sharedBytes == 0)
        #expect(r.expectedPageTableBytes == 21_053_440)
        #expect(r.unsharedPageTableBytes == 21_053_440)
    }

    /// 4 KiB leaves never get hugetlb PMD sharing, even with the flag on.
    @Test func hugetlbSharingFlagIgnoredFor4KiBLeaves() throws {
        let r = PageTableModel.expected(
            ModelInput(
                workers: 10, address: secondGiB, size: 1 << 30, leafSize: 4096, touched: true, share: .none,
                hugetlbPMDSharing: true))
        #expect(try level(r, "pmd").sharedPages == 0)
        #expect(r.expectedPageTableBytes == 21_053_440)
    }

    /// (d) hugetlb, 2 MiB leaves, 1 GiB at a 1 GiB-aligned address, PMD sharing available,
    /// the 512 GiB span already occupied but the 1 GiB span not.
    @Test func hugetlbPMDSharing() throws {
        let r = PageTableModel.expected(
            ModelInput(
                workers: 200, address: secondGiB, size: 1 << 30, leafSize: 2 << 20, touched: true, share: .none,
                hugetlbPMDSharing: true, occupied: [occupiedAtBase]))
        // Levels: PMD and PUD only. PMD: the 1 GiB span is whole and its offset congruent
        // (0 mod 1 GiB): one table for all 200 workers. PUD: present (occupied).
        // Expected: 1 × 4096 = 4096. Unshared: 200 × 1 × 4096 = 819,200.
        #expect(r.levels.map(\.level) == ["pmd", "pud"])
        #expect(
            try level(r, "pmd")
                == LevelCount(
                    level: "pmd", spans: 1, alreadyPresent: 0, perWorkerPages: 0, sharedPages: 1, distinctTables: 1))
        #expect(
            try level(r, "pud")
                == LevelCount(
                    level: "pud", spans: 1, alreadyPresent: 1, perWorkerPages: 0, sharedPages: 0, distinctTables: 200))
        #expect(r.perWorkerBytes == 0)
        #expect(r.sharedBytes == 4096)
        #expect(r.expectedPageTableBytes == 4096)
        #expect(r.unsharedPageTableBytes == 200 * 4096)
        #expect(r.reason.contains("1 shared once (hugetlb PMD sharing)"))
        #expect(r.reason.hasPrefix("2M (hugetlb) leaves at 0x7f0040000000, 1G: "))
    }

    /// (e) The same without PMD sharing: one PMD page per worker.
    @Test func hugetlbWithoutPMDSharing() throws {
        let r = PageTableModel.expected(
            ModelInput(
                workers: 200, address: secondGiB, size: 1 << 30, leafSize: 2 << 20, touched: true, share: .none,
                hugetlbPMDSharing: false, occupied: [occupiedAtBase]))
        // PMD: 1 page per worker; PUD present. 200 × 4096 = 819,200.
        #expect(
            try level(r, "pmd")
                == LevelCount(
                    level: "pmd", spans: 1, alreadyPresent: 0, perWorkerPages: 1, sharedPages: 0, distinctTables: 200))
        #expect(r.sharedBytes == 0)
        #expect(r.perWorkerBytes == 4096)
        #expect(r.expectedPageTableBytes == 819_200)
        #expect(r.unsharedPageTableBytes == 819_200)
    }

    /// (f) hugetlb 2 MiB off a 1 GiB boundary: it touches two 1 GiB spans, neither whole, so
    /// nothing can be shared.
    @Test func hugetlbMisalignedNoSharing() throws {
        let address = secondGiB + pteSpan  // 0x7f0040200000
        let r = PageTableModel.expected(
            ModelInput(
                workers: 200, address: address, size: 1 << 30, leafSize: 2 << 20, touched: true, share: .none,
                hugetlbPMDSharing: true, occupied: [occupiedAtBase]))
        // [0x7f0040200000, 0x7f0080200000): PMD spans 0x7f0040000000 and 0x7f0080000000, both
        // partial, neither occupied: 2 pages per worker. PUD present.
        // 200 × 2 × 4096 = 1,638,400.
        #expect(
            try level(r, "pmd")
                == LevelCount(
                    level: "pmd", spans: 2, alreadyPresent: 0, perWorkerPages: 2, sharedPages: 0, distinctTables: 400))
        #expect(r.sharedBytes == 0)
        #expect(r.expectedPageTableBytes == 1_638_400)
        #expect(r.unsharedPageTableBytes == 1_638_400)
    }

    /// hugetlb aligned but with a file offset not congruent modulo 1 GiB: no sharing.
    @Test func hugetlbFileOffsetDoesNotMatterForForkedSharers() throws {
        // page_table_shareable compares pmd_index of the two sharers' addresses for the same
        // file index: identical mappings always match, whatever the file offset. 4 workers
        // mapping 1 GiB at a 1 GiB-aligned address from file offset 2 MiB share one PMD table.
        let r = PageTableModel.expected(
            ModelInput(
                workers: 4, address: secondGiB, size: 1 << 30, fileOffset: 2 << 20, leafSize: 2 << 20, touched: true,
                share: .none, hugetlbPMDSharing: true, occupied: [occupiedAtBase]))
        #expect(try level(r, "pmd").sharedPages == 1)
        #expect(r.expectedPageTableBytes == 4096)
    }

    /// Sizes over 2 GiB at an address that is not 1 GiB-aligned still hold a whole 1 GiB span:
    /// that one is shared, the two partial ones are each worker's own.
    @Test func hugetlbUnalignedLargeMappingSharesItsWholeSpan() throws {
        let r = PageTableModel.expected(
            ModelInput(
                workers: 10, address: secondGiB + (2 << 20), size: 2 << 30, leafSize: 2 << 20, touched: true,
                share: .none, hugetlbPMDSharing: true, occupied: [occupiedAtBase]))
        // Spans: [1G+2M .. 2G) partial, [2G .. 3G) whole, [3G .. 3G+2M) partial.
        let pmd = try level(r, "pmd")
        #expect(pmd.spans == 3 && pmd.sharedPages == 1 && pmd.perWorkerPages == 2)
        #expect(pmd.distinctTables == 1 + 10 * 2)
        #expect(r.expectedPageTableBytes == (1 + 10 * 2) * 4096)
    }

    /// (g) MAP_SHARED_PT, 4 KiB leaves, 256 MiB at an aligned address: every PTE table shared once.
    @Test func sharedPTSharesEveryPTETable() throws {
        let r = PageTableModel.expected(
            ModelInput(
                workers: 100, address: secondGiB, size: 256 << 20, leafSize: 4096, touched: true, share: .pt,
                occupied: [occupiedAtBase]))
        // PTE: 256 MiB / 2 MiB = 128 whole spans, all congruent: 128 shared pages, 0 per worker.
        // PMD: the 1 GiB span is partial and not occupied: 1 per worker. PUD: present.
        // Expected: 128 × 4096 + 100 × 1 × 4096 = 524,288 + 409,600 = 933,888.
        // Unshared: 100 × (128 + 1) × 4096 = 52,838,400.
        #expect(
            try level(r, "pte")
                == LevelCount(
                    level: "pte", spans: 128, alreadyPresent: 0, perWorkerPages: 0, sharedPages: 128,
                    distinctTables: 128))
        #expect(
            try level(r, "pmd")
                == LevelCount(
                    level: "pmd", spans: 1, alreadyPresent: 0, perWorkerPages: 1, sharedPages: 0, distinctTables: 100))
        #expect(try level(r, "pud").perWorkerPages == 0)
        #expect(r.sharedBytes == 128 * 4096)
        #expect(r.perWorkerBytes == 4096)
        #expect(r.expectedPageTableBytes == 933_888)
        #expect(r.unsharedPageTableBytes == 100 * (128 + 1) * 4096)
        #expect(r.unsharedPageTableBytes == 52_838_400)
        #expect(r.reason.contains("128 shared once (MAP_SHARED_PT)"))
    }

    /// (h) Nothing touched: no tables at all.
    @Test func untouchedAllocatesNothing() {
        let r = PageTableModel.expected(
            ModelInput(workers: 64, address: secondGiB, size: 1 << 30, leafSize: 4096, touched: false, share: .pt))
        #expect(r.expectedPageTableBytes == 0)
        #expect(r.unsharedPageTableBytes == 0)
        #expect(r.perWorkerBytes == 0)
        #expect(r.sharedBytes == 0)
        #expect(r.levels.allSatisfy { $0.spans == 0 && $0.perWorkerPages == 0 && $0.sharedPages == 0 })
        #expect(r.reason.contains("--touch none"))
    }

    /// (i) 4 MiB mapped by THP PMD leaves: two PTE tables fewer per worker.
    @Test func thpPMDMappedBytesNeedNoPTETable() throws {
        let address = base + pteSpan
        let r = PageTableModel.expected(
            ModelInput(
                workers: 64, address: address, size: 64 << 20, leafSize: 4096, touched: true, share: .none,
                occupied: [occupiedAtBase], pmdMappedBytes: 4 << 20))
        // 32 whole PTE spans, 4 MiB / 2 MiB = 2 of them PMD-mapped: 30 per worker.
        // 64 × 30 × 4096 = 7,864,320.
        #expect(
            try level(r, "pte")
                == LevelCount(
                    level: "pte", spans: 32, alreadyPresent: 0, perWorkerPages: 30, sharedPages: 0, distinctTables: 1920
                ))
        #expect(r.expectedPageTableBytes == 7_864_320)
        #expect(r.reason.contains("4M PMD-mapped (THP or DAX leaves: no PTE table)"))
    }

    /// (j) MAP_SHARED_PT with a file offset not a multiple of 2 MiB: no PTE table can be shared.
    @Test func sharedPTIncongruentFileOffsetSharesNothing() throws {
        let address = base + pteSpan
        let r = PageTableModel.expected(
            ModelInput(
                workers: 64, address: address, size: 64 << 20, fileOffset: 4096, leafSize: 4096, touched: true,
                share: .pt, occupied: [occupiedAtBase]))
        // (span − address + 4096) mod 2 MiB = 4096 ≠ 0 for every span: 32 per worker, as (a).
        #expect(
            try level(r, "pte")
                == LevelCount(
                    level: "pte", spans: 32, alreadyPresent: 0, perWorkerPages: 32, sharedPages: 0, distinctTables: 2048
                ))
        #expect(r.sharedBytes == 0)
        #expect(r.expectedPageTableBytes == 8_388_608)
        #expect(r.expectedPageTableBytes == r.unsharedPageTableBytes)
    }

    /// MAP_SHARED_PT with a file offset that is a multiple of 2 MiB still shares.
    @Test func sharedPTCongruentFileOffsetShares() throws {
        let r = PageTableModel.expected(
            ModelInput(
                workers: 64, address: base + pteSpan, size: 64 << 20, fileOffset: 2 << 20, leafSize: 4096,
                touched: true, share: .pt, occupied: [occupiedAtBase]))
        // 32 shared PTE pages, nothing per worker: 32 × 4096 = 131,072.
        #expect(try level(r, "pte").sharedPages == 32)
        #expect(r.expectedPageTableBytes == 131_072)
        #expect(r.unsharedPageTableBytes == 8_388_608)
    }

    /// A 1 GiB-leaf hugetlb mapping needs a PUD table only.
    @Test func oneGiBLeavesNeedPUDOnly() throws {
        let r = PageTableModel.expected(
            ModelInput(workers: 3, address: secondGiB, size: 2 << 30, leafSize: 1 << 30, touched: true, share: .none))
        #expect(r.levels.map(\.level) == ["pud"])
        #expect(
            try level(r, "pud")
                == LevelCount(
                    level: "pud", spans: 1, alreadyPresent: 0, perWorkerPages: 1, sharedPages: 0, distinctTables: 3))
        #expect(r.expectedPageTableBytes == 3 * 4096)
        #expect(r.reason.hasPrefix("1G (hugetlb) leaves"))
    }

    /// The probe module sees tables that were there before the mapping: an untouched mapping
    /// whose edge 2 MiB span holds another mapping's PTE table still shows that table, one per
    /// worker, and nothing else.
    @Test func untouchedMappingStillShowsTheEdgeTable() throws {
        let r = PageTableModel.expected(
            ModelInput(
                workers: 8, address: base + page, size: 4 << 20, leafSize: 4096, touched: false, share: .none,
                occupied: [occupiedAtBase]))
        // PTE spans: [base, base+2M) holds the occupied page (present); the other two are untouched.
        #expect(try level(r, "pte").distinctTables == 8)
        #expect(try level(r, "pte").perWorkerPages == 0)
        #expect(r.expectedPageTableBytes == 0)
    }
}
