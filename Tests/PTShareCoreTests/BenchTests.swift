import Foundation
import Testing

@testable import PTShareCore

/// Metrics of one run as `bench` records them: `bytes` of page tables, the model's figures
/// for 32 MiB per worker.
private func metrics(
    _ bytes: Int64, workers: Int, share: BenchShare, pte: Int? = nil, mapTouch: Double = 0.5,
    verdict: VerdictStatus = .pass
) -> BenchReport.Metrics {
    let model = PageTableModel.expected(
        ModelInput(
            workers: workers, address: Geometry.pudSize, size: 32 << 20, leafSize: 4096, touched: true,
            share: share == .pt ? .pt : .none))
    let pct = BenchReport.Percentiles(p50: 1000, p90: 2000, p99: 5000, p999: 9000, max: 10_000, count: UInt64(workers))
    return BenchReport.Metrics(
        attributedPageTableBytes: bytes, modelPageTableBytes: model.expectedPageTableBytes,
        modelUnsharedPageTableBytes: model.unsharedPageTableBytes, distinctPteTables: pte, distinctPmdTables: nil,
        pmdMappedBytes: share == .thp ? 32 << 20 : 0, spawnSeconds: 0.1, mapTouchSeconds: mapTouch,
        teardownSeconds: 0.05, mapNs: pct, touchNs: pct, thpSuccessPercent: share == .thp ? 100 : nil,
        verdict: verdict, reason: "within tolerance")
}

private func point(_ workers: Int, _ share: BenchShare, _ samples: [BenchReport.Metrics], skipped: String? = nil)
    -> BenchReport.Point
{
    let p = BenchSpec.Point(backing: .memfd, sizeBytes: 32 << 20, workers: workers, share: share)
    return BenchReport.Point(
        label: p.label, backing: "memfd", sizeBytes: 32 << 20, workers: workers, share: share.rawValue,
        skipped: skipped, samples: samples.enumerated().map { .init(repeatIndex: $0.offset, metrics: $0.element) })
}

/// 10 and 100 workers × 32 MiB: none (16 PTE + 1 PMD table each), pt (16 shared + 1 PMD each),
/// thp (1 PMD each, every chunk a PMD leaf).
private func sweep(ptBytes100: Int64 = 475_136) -> BenchReport {
    let page: Int64 = 4096
    return BenchReport(
        tool: .init(version: "0.1.0-test"),
        kernel: .init(release: "6.12.0-ptshare", machine: "x86_64", shmemThpAtStart: "never"),
        machine: .init(onlineCpus: 2, memTotalBytes: 4 << 30, pidMax: 32768, accelerator: "tcg"),
        command: ["ptshare", "bench", "--workers", "10,100"], started: "2026-11-30T20:00:00Z", elapsedSeconds: 12,
        spec: .init(
            workers: [10, 100], sizesBytes: [32 << 20], shares: ["none", "pt", "thp"], backings: ["memfd"],
            repeats: 3, fragment: false, touch: "populate", mapConcurrency: 2),
        points: [
            point(10, .none, Array(repeating: metrics(10 * 17 * page, workers: 10, share: .none, pte: 160), count: 3)),
            point(10, .pt, Array(repeating: metrics((16 + 10) * page, workers: 10, share: .pt, pte: 16), count: 3)),
            point(10, .thp, Array(repeating: metrics(10 * page, workers: 10, share: .thp, pte: 0), count: 3)),
            point(
                100, .none, Array(repeating: metrics(100 * 17 * page, workers: 100, share: .none, pte: 1600), count: 3)),
            point(100, .pt, Array(repeating: metrics(ptBytes100, workers: 100, share: .pt, pte: 16), count: 3)),
            point(100, .thp, [], skipped: "share thp sets shmem_enabled to always: EACCES (run as root)"),
        ],
        notApplicable: [.init(point: "tmpfs 32M × 10, share thp", reason: "share thp needs shmem's internal mount")])
}

@Suite struct BenchSpecTests {
    @Test func expandsInRunOrderAndListsWhatCannotRun() {
        let s = BenchSpec(
            workers: [100, 10], sizes: [64 << 20], shares: [.none, .thp, .hugetlbAligned], backings: [.memfd])
        let (points, skipped) = s.expand()
        #expect(
            points.map(\.label) == [
                "memfd 64M × 10, share none", "memfd 64M × 10, share thp", "memfd 64M × 100, share none",
                "memfd 64M × 100, share thp",
            ])
        #expect(skipped.map(\.1) == Array(repeating: "share hugetlb-aligned needs --backing hugetlbfs", count: 2))
    }

    @Test func scenariosMapInASpanOfTheirOwn() {
        let s = BenchSpec(workers: [10], sizes: [32 << 20], shares: [.pt], backings: [.hugetlbfs])
        let p = BenchSpec.Point(backing: .memfd, sizeBytes: 32 << 20, workers: 10, share: .pt)
        #expect(s.scenario(p).address == .sameOwnSpan)
        #expect(s.scenario(p).share == .pt)
        let skewed = BenchSpec.Point(backing: .hugetlbfs, sizeBytes: 1 << 30, workers: 10, share: .hugetlbSkewed)
        #expect(s.scenario(skewed).address == .sameSkewed(Geometry.pmdSize))
        #expect(s.scenario(skewed).share == .none)
        #expect(AddressMode.parse("same-1G") == .sameOwnSpan)
        #expect(AddressMode.sameOwnSpan.description == "same-1G")
    }

    @Test func validationNamesTheFlagAndTheValue() {
        var s = BenchSpec(workers: [0, 10], sizes: [64 << 20], shares: [.none], backings: [.memfd])
        #expect(throws: ValidationMessage("--workers 0,10: each must be at least 1")) { try s.validate() }
        s.workers = [10]
        s.repeats = 0
        #expect(throws: ValidationMessage("--repeat 0: must be between 1 and 100")) { try s.validate() }
        s.repeats = 1
        s.shares = [.thp]
        s.backings = [.tmpfs]
        #expect(
            throws: ValidationMessage(
                "no combination of --backing and --share can run: tmpfs 64M × 10, share thp: share thp needs shmem's "
                    + "internal mount (memfd, anon-shared): shmem_enabled does not reach tmpfs")
        ) { try s.validate() }
        #expect(throws: ValidationMessage("--workers 10,x: \"x\" is not a valid element of the list")) {
            try BenchSpec.list("10,x", option: "--workers") { Int($0) }
        }
        #expect((try? BenchSpec.list("10, 100", option: "--workers") { Int($0) }) == [10, 100])
    }

    @Test func specFileAddsListsAndRefusesUnknownKeys() throws {
        let f = try BenchSpecFile.parse(
            """
            # the standard sweep
            workers = 10,100,1000
            sizes = 64M, 256M
            shares = none,pt,thp   # the competitor too
            backings = memfd
            repeat = 3
            fragment = true
            """, source: "std.spec")
        #expect(f.workers == [10, 100, 1000])
        #expect(f.sizes == [64 << 20, 256 << 20])
        #expect(f.shares == [.none, .pt, .thp])
        #expect(f.backings == [.memfd])
        #expect(f.repeats == 3)
        #expect(f.fragment == true)
        #expect(
            throws: ValidationMessage(
                "s:2: unknown key \"worker\" (workers, sizes, shares, backings, repeat, fragment)")
        ) { try BenchSpecFile.parse("\nworker = 10", source: "s") }
        #expect(throws: ValidationMessage("s:1: \"workers\": expected key = value")) {
            try BenchSpecFile.parse("workers", source: "s")
        }
        #expect(throws: ValidationMessage("s:1: shares huge: \"huge\" is not a valid element of the list")) {
            try BenchSpecFile.parse("shares = huge", source: "s")
        }
    }
}

@Suite struct BenchCapacityTests {
    let big = BenchSpec.Point(backing: .memfd, sizeBytes: 64 << 20, workers: 10_000, share: .none)

    @Test func refusesMorePIDsThanPidMax() {
        #expect(
            throws: BenchError.self,
            performing: {
                try Bench.checkCapacity([big], memAvailable: nil, pidMax: 8192, threadsMax: nil, tasksNow: 100)
            })
        do {
            try Bench.checkCapacity([big], memAvailable: nil, pidMax: 8192, threadsMax: nil, tasksNow: 100)
        } catch {
            #expect(
                error.description
                    == "memfd 64M × 10000, share none: 10000 workers + 100 tasks already running need more PIDs than kernel.pid_max "
                    + "8192 allows; raise it (sysctl kernel.pid_max=40000) or sweep fewer workers")
        }
    }

    @Test func refusesWhatMemoryCannotHold() {
        // 64 MiB + 10,000 × (32 PTE + 1 PMD + 1 PUD tables) + 10,000 × 192 KiB: about 3.2 GiB.
        let need = Bench.estimatedBytes(big)
        #expect(need == (64 << 20) + 10_000 * 34 * 4096 + 10_000 * (192 << 10))
        do {
            try Bench.checkCapacity([big], memAvailable: 2 << 30, pidMax: 4_194_304, threadsMax: nil, tasksNow: 100)
            Issue.record("a sweep needing \(need) B fitted in 2 GiB")
        } catch {
            #expect(
                error.description
                    == "memfd 64M × 10000, share none needs about 3.2 GiB (file 64M, page tables by the model, 192K per worker for "
                    + "the process) plus 256M in reserve, but MemAvailable is 2.0 GiB")
        }
        #expect(
            (try? Bench.checkCapacity(
                [big], memAvailable: 8 << 30, pidMax: 4_194_304, threadsMax: 200_000, tasksNow: 100))
                != nil)
    }
}

@Suite struct BenchReportTests {
    @Test func percentilesComeFromTheHistogram() {
        let p = Bench.percentiles((1...1000).map { UInt64($0) * 1000 })
        #expect(p.count == 1000)
        // Three significant digits: within 0.1 % of the exact order statistics.
        #expect(abs(Double(p.p50) - 500_000) <= 500)
        #expect(abs(Double(p.p99) - 990_000) <= 990)
        #expect(abs(Double(p.max) - 1_000_000) <= 1000)
        #expect(Bench.percentiles([]) == .init(p50: 0, p90: 0, p99: 0, p999: 0, max: 0, count: 0))
    }

    @Test func buddyInfoCountsFreeHugeBlocks() throws {
        let zones = try BuddyInfo.parse(try fixture("buddyinfo-6.18"))
        #expect(zones.map(\.zone) == ["DMA", "DMA32", "Normal"])
        #expect(zones[2].freeBlocks == [3645, 3034, 3375, 2253, 1275, 612, 339, 140, 150, 218, 943])
        // Order 9 counts once, order 10 twice (a 4 MiB block holds two 2 MiB ones).
        #expect(zones[2].freeBlocks(ofAtLeastOrder: 9) == 218 + 2 * 943)
        #expect(zones[0].freeBlocks(ofAtLeastOrder: 9) == 1 + 2 * 3)
        #expect(throws: ProcParseError.self) { try BuddyInfo.parse("Node 0, zone Normal 1 x 3") }
        #expect(throws: ProcParseError.self) { try BuddyInfo.parse("") }
    }

    @Test func summaryShowsEveryModeSavingsAndTheWinner() {
        let md = BenchSummary.render(sweep())
        let lines = md.split(separator: "\n").map(String.init)
        #expect(lines.first == "# ptshare bench: 6.12.0-ptshare (x86_64)")
        #expect(lines.contains("- machine: 2 CPUs, 4.0 GiB RAM, pid_max 32768, QEMU tcg"))
        #expect(
            lines.contains(
                "| backing | size | workers | unshared model | none | pt | thp | pt saves vs none | thp saves vs none "
                    + "| thp: THP success |"))
        #expect(
            lines.contains(
                "| memfd | 32M | 10 | 720.0 KiB | 680.0 KiB (pass) | 104.0 KiB (pass) | 40.0 KiB (pass) | 84.7 % "
                    + "| 94.1 % | 100.0 % |"))
        #expect(
            lines.contains(
                "| memfd | 32M | 100 | 7.0 MiB | 6.6 MiB (pass) | 464.0 KiB (pass) | SKIP (below) | 93.2 % | – | – |"))
        #expect(
            lines.contains("pt uses fewer page-table bytes than shmem THP (thp) at: no point."))
        #expect(
            lines.contains("thp uses fewer than pt at: memfd 32M × 10 (40.0 KiB vs 104.0 KiB)."))
        #expect(lines.contains("pt and thp use the same at: no point."))
        #expect(
            lines.contains(
                "- SKIP memfd 32M × 100, share thp: share thp sets shmem_enabled to always: EACCES (run as root)"))
        #expect(lines.contains("- not applicable: tmpfs 32M × 10, share thp: share thp needs shmem's internal mount"))
    }

    @Test func htmlIsSelfContainedWithTheFourCharts() {
        let html = BenchHTML.render(sweep())
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") && !html.contains("https://") || html.contains("xmlns=\"http://www.w3.org"))
        #expect(html.components(separatedBy: "<svg").count - 1 == 4)
        for name in ["none", "pt", "thp"] { #expect(html.contains("class=\"series\" data-name=\"\(name)\"")) }
        #expect(html.contains("data-name=\"model, unshared\""))
        #expect(html.contains("data-name=\"limit: each PTE table once (model)\""))
        #expect(html.contains("<th>thp saves vs none</th>"))
        let lower = html.lowercased()
        #expect(!lower.contains("nan") && !lower.contains("inf\""), "a non-finite number reached the page")
    }

    @Test func comparePairsPointsAndGatesOnPageTables() {
        let only: Set<String> = ["page_table_bytes", "distinct_pte_tables"]
        let same = Comparison.compare(
            base: CompareInput.sampled(sweep(), only: only), new: CompareInput.sampled(sweep(), only: only),
            thresholds: .init(default: 1))
        #expect(same.exitCode == 0)
        #expect(same.rows.count == 10)
        // The flag sharing nothing at 100 workers: pt's bytes those of none.
        let broken = Comparison.compare(
            base: CompareInput.sampled(sweep(), only: only),
            new: CompareInput.sampled(sweep(ptBytes100: 100 * 17 * 4096), only: only), thresholds: .init(default: 1))
        #expect(broken.exitCode == 1)
        #expect(broken.regressions.map(\.point) == ["memfd 32M × 100, share pt"])
        #expect(broken.regressions.map(\.metric.name) == ["page_table_bytes"])
    }

    @Test func benchJSONRoundTrips() throws {
        let bytes = try JSONOutput.encode(sweep())
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"schema\" : \"ptshare.bench.v1\""))
        #expect(text.contains("\"attributed_page_table_bytes\""))
        let back = try JSONOutput.decodeBench(bytes)
        #expect(back.points.map(\.label) == sweep().points.map(\.label))
        #expect(back.points[1].completed.map(\.attributedPageTableBytes) == [106_496, 106_496, 106_496])
    }
}
