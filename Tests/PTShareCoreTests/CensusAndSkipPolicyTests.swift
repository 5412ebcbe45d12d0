import Testing

@testable import PTShareCore

@Suite struct SkipPolicyTests {
    let results = [
        KTAPResult(name: "a", status: .pass),
        KTAPResult(name: "b", status: .skip("no huge pages")),
        KTAPResult(name: "c", status: .fail),
    ]

    @Test func skipsPassWithoutThePolicy() {
        let (lines, fails) = SkipPolicy().judge(results)
        #expect(!fails)
        #expect(lines.isEmpty)
    }

    @Test func anUnlistedSkipFails() {
        let (lines, fails) = SkipPolicy(failOnSkip: true).judge(results)
        #expect(fails)
        #expect(
            lines == [
                "skip policy: b skipped and not on the allow-list -- FAILED: no huge pages",
                "skip policy: 1 skip(s) not allowed (no --allow-skip given)",
            ])
    }

    @Test func anAllowedSkipIsPrintedWithItsReason() {
        let (lines, fails) = SkipPolicy(failOnSkip: true, allowed: ["b", "z"]).judge(results)
        #expect(!fails)
        #expect(
            lines == [
                "skip policy: b skipped (allowed by --allow-skip): no huge pages",
                "skip policy: --allow-skip z: the test did not run in this suite",
                "skip policy: 0 skip(s) not allowed (allowed: b, z)",
            ])
    }

    @Test func theStockPathAllowsOnlySkipsForWantOfTheFlag() {
        let stock =
            results + [
                KTAPResult(
                    name: "d", status: .skip(Suite.sharedPTUnsupportedReason(release: "6.12", errno: "EOPNOTSUPP")))
            ]
        let (lines, fails) = SkipPolicy(failOnSkip: true, allowUnsupported: true).judge(stock)
        #expect(fails)
        #expect(
            lines == [
                "skip policy: b skipped and not on the allow-list -- FAILED: no huge pages",
                "skip policy: 1 skip(s) for want of MAP_SHARED_PT (allowed by --allow-unsupported-skips)",
                "skip policy: 1 skip(s) not allowed (no --allow-skip given)",
            ])
        let (_, onlyFlag) = SkipPolicy(failOnSkip: true, allowUnsupported: true).judge(
            stock.filter { $0.name != "b" })
        #expect(!onlyFlag)
    }

    @Test func noSkipNoComplaint() {
        let (_, fails) = SkipPolicy(failOnSkip: true).judge([KTAPResult(name: "a", status: .pass)])
        #expect(!fails)
    }
}

@Suite struct TableCensusTests {
    static func view(_ label: String, offset: UInt64, chunks: Int) -> TableCensus.View {
        TableCensus.View(
            label: label, pid: 1, address: 0x4000_0000, fileOffset: offset, length: UInt64(chunks) * Geometry.pmdSize)
    }

    static func map(_ pfns: [UInt64?]) -> TableMap {
        TableMap(
            pte: pfns.map { $0.map { TableSlot(kind: .table, pfn: $0) } ?? TableSlot(kind: .none, pfn: 0) },
            pmd: [TableSlot(kind: .table, pfn: 9)], pteTables: UInt64(pfns.count), pmdLeaves: 0, pmdTables: 1,
            pudLeaves: 0)
    }

    @Test func oneTablePerChunkHolds() {
        let c = TableCensus.layout(
            [Self.view("a", offset: 0, chunks: 2), Self.view("b", offset: 0, chunks: 2)],
            [Self.map([10, 11]), Self.map([10, 11])])
        let (ok, line) = c.judge(.oneTablePerChunk)
        #expect(ok, "\(line)")
        #expect(line.hasPrefix("census (ptshare_probe): 2 chunks × 2 views, 2 distinct PTE tables"))
        #expect(!c.judge(.separateTables).ok)
    }

    @Test func aPrivateTableFailsSharing() {
        let c = TableCensus.layout(
            [Self.view("a", offset: 0, chunks: 2), Self.view("b", offset: 0, chunks: 2)],
            [Self.map([10, 11]), Self.map([10, 12])])
        let (ok, line) = c.judge(.oneTablePerChunk)
        #expect(!ok)
        #expect(line.contains("chunk 1: 2 tables for 2 views"), "\(line)")
    }

    /// Six views under a cap of three sharers a table: two tables per chunk, three views each.
    @Test func aCapOnSharersPerTable() {
        let v = (0..<6).map { Self.view("v\($0)", offset: 0, chunks: 2) }
        let capped = TableCensus.layout(v, (0..<6).map { Self.map($0 < 3 ? [10, 11] : [20, 21]) })
        #expect(capped.judge(.atMostPerTable(3)).ok, "\(capped.judge(.atMostPerTable(3)).line)")
        #expect(!capped.judge(.oneTablePerChunk).ok)
        // No cap honoured: one table for all six.
        let one = TableCensus.layout(v, (0..<6).map { _ in Self.map([10, 11]) })
        let (ok, line) = one.judge(.atMostPerTable(3))
        #expect(!ok)
        #expect(line.contains("chunk 0: table pfn 0xa serves 6 views, more than 3"), "\(line)")
        // Sharing sparser than the cap allows.
        let sparse = TableCensus.layout(
            v, (0..<6).map { Self.map($0 < 2 ? [10, 11] : $0 < 4 ? [20, 21] : [30, 31]) })
        #expect(sparse.judge(.atMostPerTable(3)).line.contains("chunk 0: 3 tables for 6 views, expected 2"))
    }

    @Test func aMissingTableFailsSharing() {
        let c = TableCensus.layout(
            [Self.view("a", offset: 0, chunks: 2), Self.view("b", offset: 0, chunks: 2)],
            [Self.map([10, 11]), Self.map([10, nil])])
        let (ok, line) = c.judge(.oneTablePerChunk)
        #expect(!ok)
        #expect(line.contains("chunk 1 in b: no PTE table"), "\(line)")
    }

    @Test func aShortAnswerLeavesChunksWithoutATable() {
        let c = TableCensus.layout(
            [Self.view("a", offset: 0, chunks: 2), Self.view("b", offset: 0, chunks: 2)],
            [Self.map([10, 11]), Self.map([10])])
        let (ok, line) = c.judge(.oneTablePerChunk)
        #expect(!ok)
        #expect(line.contains("chunk 1 in b: no PTE table"), "\(line)")
    }

    /// Views of different file offsets land on different chunks: the layout goes by file offset.
    @Test func chunksAreFileChunks() {
        let c = TableCensus.layout(
            [Self.view("a", offset: 0, chunks: 2), Self.view("b", offset: Geometry.pmdSize, chunks: 1)],
            [Self.map([10, 11]), Self.map([11])])
        #expect(c.chunks[1]?.map(\.view) == ["a", "b"])
        #expect(c.judge(.oneTablePerChunk).ok)
    }

    @Test func separateTablesCatchesASharedOne() {
        let c = TableCensus.layout(
            [Self.view("rw", offset: 0, chunks: 2), Self.view("ro", offset: 0, chunks: 2)],
            [Self.map([10, 11]), Self.map([20, 11])])
        let (ok, line) = c.judge(.separateTables)
        #expect(!ok)
        #expect(line.contains("shared by rw, ro"), "\(line)")
        let d = TableCensus.layout(
            [Self.view("rw", offset: 0, chunks: 2), Self.view("ro", offset: 0, chunks: 2)],
            [Self.map([10, 11]), Self.map([20, 21])])
        #expect(d.judge(.separateTables).ok)
    }
}
