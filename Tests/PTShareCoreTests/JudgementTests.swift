import Testing

@testable import PTShareCore

// Every pass, fail and skip of the suite's measurement tests, reached from synthetic reports:
// the judgements read what a run reported (verdict, attributed bytes, VmPTE, smaps, census)
// and never run anything themselves.

/// 0x7f0000000000 = 254 × 512 GiB; one resident page there holds the PUD table of that span.
private let base: UInt64 = 0x7f00_0000_0000
private let occupied: [Range<UInt64>] = [base..<(base + 4096)]
/// The second 1 GiB span of the same 512 GiB span: 1 GiB-aligned, no table there yet.
private let secondGiB: UInt64 = base + (1 << 30)

/// A finished run as `Runner.measure` reports it: the model from `PageTableModel` for the
/// scenario; attributed bytes and the VmPTE sum on the model unless given; a smaps sample of
/// every page resident, with `sp` when the mapping is shared.
private func report(
    share: ShareMode, workers: Int = 100, size: UInt64 = 256 << 20, leafSize: UInt64 = 4096,
    address: UInt64 = secondGiB, hugetlbPMDSharing: Bool = false, attributed: Int64? = nil, vmpte: Int64? = nil,
    verdict: VerdictStatus = .pass, reason: String = "within tolerance", controlPerWorker: Int64 = 16 << 10
) -> RunReport {
    let model = PageTableModel.expected(
        ModelInput(
            workers: workers, address: address, size: size, leafSize: leafSize, touched: true, share: share,
            hugetlbPMDSharing: hugetlbPMDSharing, occupied: occupied))
    let a = attributed ?? model.expectedPageTableBytes
    let v = vmpte ?? model.unsharedPageTableBytes
    func sampling(_ pageTables: UInt64) -> RunReport.Sampling {
        RunReport.Sampling(
            StableSample(
                meminfo: Meminfo(fields: ["PageTables": pageTables]), pageTablesSamples: [pageTables],
                stable: true, spreadBytes: 0, milliseconds: 10, statRefresh: true))
    }
    let point = RunReport.MeminfoPoint(Meminfo(fields: ["PageTables": 1 << 20]))
    let flags = ["rd", "wr", "sh", "mr", "mw", "me", "ms"] + (share == .pt ? ["sp"] : [])
    return RunReport(
        tool: .init(version: "0.1.0-test"),
        kernel: .init(release: "6.12.117-ptshare", machine: "x86_64", hugetlbPmdSharing: nil, shmemThp: "never"),
        scenario: .init(
            backing: "memfd", object: "memfd:ptshare", sizeBytes: size, workers: workers, share: share.rawValue,
            touch: "populate", address: "same", mapSharedPtValue: "0x200000", mmapFlags: "0x300001",
            leafPageSizeBytes: leafSize, tolerance: 0.1),
        measured: .init(
            pageTablesDeltaBytes: a + controlPerWorker * Int64(workers),
            controlPageTablesDeltaBytes: controlPerWorker * Int64(workers), attributedPageTableBytes: a,
            attributedPerWorkerBytes: a / Int64(workers), controlPerWorkerBytes: controlPerWorker,
            driverVmpteBytes: .init(base: 0, control: 0, mapped: 0), vmpteSumBytes: v, vmpteControlSumBytes: 0,
            vmpteAttributedBytes: v, mappingAddress: hex(address), distinctMappingAddresses: 1,
            meminfo: .init(base: point, control: point, mapped: point),
            sampling: .init(base: sampling(1 << 20), control: sampling(1 << 20), mapped: sampling(1 << 20)),
            numaNodes: [],
            smaps: .init(
                workersSampled: [0, workers - 1], range: ["Rss": size], rollup: ["Rss": size], vmFlags: flags)),
        model: .init(
            expectedPageTableBytes: model.expectedPageTableBytes, unsharedPageTableBytes: model.unsharedPageTableBytes,
            perWorkerBytes: model.perWorkerBytes, sharedBytes: model.sharedBytes, levels: model.levels,
            reason: model.reason, occupiedRanges: 1, pmdMappedBytes: 0),
        timings: .init(
            spawnSeconds: 0.1, mapTouchSeconds: 0.1, readySeconds: 0.2, measureSeconds: 0.1, teardownSeconds: 0.1,
            mapNs: .init([1000]), touchNs: .init([1000])),
        verdict: verdict, reason: reason, allowedDeviationBytes: 4096)
}

/// The census a probe module would report, matching the model unless told otherwise.
private func census(_ r: RunReport, pte: Int? = nil, pmd: Int? = nil, pmdLeafSteps: Int = 0) -> RunReport.Tables {
    let expectPTE = r.model.level("pte")?.distinctTables ?? 0
    let expectPMD = r.model.level("pmd")?.distinctTables ?? 0
    return RunReport.Tables(
        interfaceVersion: 1, workersQueried: r.scenario.workers, distinctPteTables: pte ?? expectPTE,
        distinctPmdTables: pmd ?? expectPMD, expectedDistinctPteTables: expectPTE,
        expectedDistinctPmdTables: expectPMD, pmdLeafSteps: pmdLeafSteps, pudLeafSteps: 0, queryMilliseconds: 3)
}

/// Sets the model's shared pages at `level` (a model that shares less than the scenario asks).
private func sharing(_ r: RunReport, _ level: String, _ pages: Int) -> RunReport {
    var r = r
    let i = r.model.levels.firstIndex { $0.level == level }!
    r.model.levels[i].sharedPages = pages
    return r
}

private func failedLines(_ r: KTAPResult) -> [String] { r.diagnostics.filter { $0.contains("FAILED") } }

@Suite struct SharedPTSavingsJudgementTests {
    let name = "sharedpt.memfd.savings"
    let o = SuiteOptions(workers: 100, outDirectory: "/results")
    let s = Scenario(backing: .memfd, size: 256 << 20, workers: 100, share: .pt, address: .same)
    /// 100 × 256 MiB unshared: 100 × (128 PTE + 1 PMD) tables = 52,838,400 bytes.
    var baseline: RunReport { report(share: .none) }
    /// Shared: 128 PTE tables once + 100 PMD tables = 933,888 bytes, VmPTE on the unshared model.
    var shared: RunReport { report(share: .pt) }

    func judge(baseline b: RunReport? = nil, shared r: RunReport? = nil, unsaved: [String] = []) -> KTAPResult {
        Suite.judgeSharedPTSavings(name, o, s, baseline: b ?? baseline, shared: r ?? shared, unsaved: unsaved)
    }

    @Test func passes() {
        #expect(baseline.measured.attributedPageTableBytes == 52_838_400)
        #expect(shared.measured.attributedPageTableBytes == 933_888)
        let r = judge()
        #expect(r.status == .pass, "\(r.diagnostics)")
        #expect(
            r.diagnostics == [
                "\(name): memfd 256M × 100, share none (baseline): pass: within tolerance",
                "\(name): memfd 256M × 100, share pt: pass: within tolerance",
                "\(name): PageTables for the mapping: shared 912.0 KiB, unshared 50.4 MiB; savings 98.2 % "
                    + "(required 93.3 %: 95 % of the model's 98.2 %); PTE tables shared by the model: 128 of 128",
                "\(name): VmPTE sum 50.4 MiB vs the unshared model 50.4 MiB (each sharer counts the shared tables)",
                "\(name): smaps of the range: VmFlags rd wr sh mr mw me ms sp (has sp), Rss 256M of 256M",
            ])
    }

    /// DAX pages are in no RSS: a DAX run's smaps shows Rss 0 for the range, and that passes;
    /// the page cache's full Rss would not be DAX's.
    @Test func daxExpectsNoRss() {
        let dax = Scenario(backing: .dax, size: 256 << 20, workers: 100, share: .pt, address: .same)
        var zero = shared
        zero.measured.smaps?.range["Rss"] = 0
        let r = Suite.judgeSharedPTSavings(name, o, dax, baseline: baseline, shared: zero, unsaved: [])
        #expect(r.status == .pass, "\(r.diagnostics)")
        #expect(
            r.diagnostics.last
                == "\(name): smaps of the range: VmFlags rd wr sh mr mw me ms sp (has sp), Rss 0 of 256M (DAX pages are in no RSS)"
        )
        let full = Suite.judgeSharedPTSavings(name, o, dax, baseline: baseline, shared: shared, unsaved: [])
        #expect(full.status == .fail)
    }

    @Test func failsWhenSavingsAreBelowTheMinimum() {
        // A tenth of the unshared tables: 90 % saved, 93.3 % required.
        let r = judge(shared: report(share: .pt, attributed: 5_283_840))
        #expect(r.status == .fail)
        #expect(
            failedLines(r) == [
                "\(name): PageTables for the mapping: shared 5.0 MiB, unshared 50.4 MiB; savings 90.0 % "
                    + "(required 93.3 %: 95 % of the model's 98.2 %); PTE tables shared by the model: 128 of 128 -- FAILED"
            ])
    }

    /// 32 MiB in a 1 GiB span that held nothing: 16 PTE tables and a PMD table per worker, and
    /// the flag shares only the 16, so perfect sharing saves 93.6 % at 200 workers. CI on
    /// 2026-11-30 failed sharedpt.dax.savings on a flat 95 % where the model was met to the byte.
    @Test func smallMappingsAreHeldToTheModelsCeiling() {
        let small = Scenario(backing: .memfd, size: 32 << 20, workers: 200, share: .pt, address: .same)
        let b = report(share: .none, workers: 200, size: 32 << 20)
        let met = report(share: .pt, workers: 200, size: 32 << 20)
        let r = Suite.judgeSharedPTSavings(name, o, small, baseline: b, shared: met, unsaved: [])
        #expect(r.status == .pass, "\(r.diagnostics)")
        #expect(
            r.diagnostics.contains(
                "\(name): PageTables for the mapping: shared 864.0 KiB, unshared 13.3 MiB; savings 93.6 % "
                    + "(required 89.0 %: 95 % of the model's 93.6 %); PTE tables shared by the model: 16 of 16"))
        // Half the PTE tables per worker again: 47 % saved, far below 89.0 %.
        let half = report(share: .pt, workers: 200, size: 32 << 20, attributed: 200 * 9 * 4096 + 8 * 4096)
        let f = Suite.judgeSharedPTSavings(name, o, small, baseline: b, shared: half, unsaved: [])
        #expect(f.status == .fail)
        #expect(failedLines(f).count == 1)
        #expect(failedLines(f).first?.contains("(required 89.0 %: 95 % of the model's 93.6 %)") == true)
    }

    /// Plain MAP_SHARED (the integration test's negative control): nothing saved.
    @Test func failsWhenNothingIsShared() {
        let r = judge(shared: report(share: .pt, attributed: 52_838_400))
        #expect(r.status == .fail)
        #expect(failedLines(r).count == 1)
        #expect(failedLines(r).first?.contains("savings 0.0 % (required 93.3 %: 95 % of the model's 98.2 %)") == true)
    }

    @Test func failsWhenTheModelDoesNotShareEveryChunk() {
        let r = judge(shared: sharing(shared, "pte", 127))
        #expect(r.status == .fail)
        #expect(failedLines(r).count == 1)
        #expect(failedLines(r).first?.hasSuffix("PTE tables shared by the model: 127 of 128 -- FAILED") == true)
    }

    @Test func failsWhenVmPTEIsOffTheUnsharedModel() {
        // Shared tables counted once per system instead of once per sharer.
        let r = judge(shared: report(share: .pt, vmpte: 933_888))
        #expect(r.status == .fail)
        #expect(
            failedLines(r) == [
                "\(name): VmPTE sum 912.0 KiB vs the unshared model 50.4 MiB (each sharer counts the shared tables) -- FAILED"
            ])
    }

    @Test func vmPTEWithinToleranceOfTheModelPasses() {
        let edge = 52_838_400 + 5_283_840  // exactly 10 % over
        #expect(judge(shared: report(share: .pt, vmpte: Int64(edge))).status == .pass)
        #expect(judge(shared: report(share: .pt, vmpte: Int64(edge + 1))).status == .fail)
    }

    @Test func failsWithoutSpInVmFlags() {
        var r = shared
        r.measured.smaps?.vmFlags = ["rd", "wr", "sh", "mr", "mw", "me", "ms"]
        let k = judge(shared: r)
        #expect(k.status == .fail)
        #expect(
            failedLines(k) == [
                "\(name): smaps of the range: VmFlags rd wr sh mr mw me ms (no sp -- FAILED), Rss 256M of 256M"
            ])
    }

    @Test func failsWhenRssIsShort() {
        var r = shared
        r.measured.smaps?.range["Rss"] = 128 << 20
        let k = judge(shared: r)
        #expect(k.status == .fail)
        #expect(
            failedLines(k) == [
                "\(name): smaps of the range: VmFlags rd wr sh mr mw me ms sp (has sp), Rss 128M of 256M -- FAILED"
            ])
    }

    @Test func failsWithoutASmapsSample() {
        var r = shared
        r.measured.smaps = nil
        let k = judge(shared: r)
        #expect(k.status == .fail)
        #expect(failedLines(k) == ["\(name): no smaps sample in the report -- FAILED"])
    }

    @Test func failsWhenAReportWasNotSaved() {
        let why = "could not write /results/\(name).json: ENOSPC"
        let r = judge(unsaved: [why])
        #expect(r.status == .fail)
        #expect(r.diagnostics.first == why)
        #expect(failedLines(r).isEmpty)
    }

    @Test func failsWhenTheSharedRunMissesItsModel() {
        let r = judge(shared: report(share: .pt, verdict: .fail, reason: "deviation 1.0 MiB, allowed ±400.0 KiB"))
        #expect(r.status == .fail)
        #expect(r.diagnostics[1] == "\(name): memfd 256M × 100, share pt: fail: deviation 1.0 MiB, allowed ±400.0 KiB")
        #expect(failedLines(r).isEmpty)
    }

    @Test func failsWhenTheBaselineMissesItsModel() {
        let r = judge(baseline: report(share: .none, verdict: .fail, reason: "deviation 9.0 MiB"))
        #expect(r.status == .fail)
        #expect(r.diagnostics[0] == "\(name): memfd 256M × 100, share none (baseline): fail: deviation 9.0 MiB")
    }

    @Test func skipsWhenTheSharedRunDidNotSettle() {
        let why = "PageTables did not settle while sampling"
        let r = judge(shared: report(share: .pt, verdict: .skip, reason: why))
        #expect(r.status == .skip(why))
        #expect(r.diagnostics.count == 2)
    }

    @Test func skipsWhenTheBaselineDidNotSettle() {
        let r = judge(baseline: report(share: .none, verdict: .skip, reason: "did not settle"))
        #expect(r.status == .skip("baseline: did not settle"))
    }

    /// The results folder must hold what the KTAP says ran: an unsaved skip is a failure.
    @Test func anUnsavedSkipFails() {
        let r = judge(shared: report(share: .pt, verdict: .skip, reason: "x"), unsaved: ["could not write"])
        #expect(r.status == .fail)
    }
}

@Suite struct VerdictJudgementTests {
    let name = "memfd.baseline.model"
    let s = Scenario(backing: .memfd, size: 64 << 20, workers: 200, touch: .populate)

    func judge(_ r: RunReport, unsaved: String? = nil, extra: Suite.Extra? = nil) -> KTAPResult {
        Suite.judgeVerdict(name, s, r, unsaved: unsaved) { _ in extra }
    }

    @Test func passesOnAPassingVerdict() {
        let r = judge(report(share: .none, reason: "measured 25.0 MiB vs model 25.0 MiB"))
        #expect(
            r
                == KTAPResult(
                    name: name, status: .pass,
                    diagnostics: ["\(name): memfd 64M × 200, touch populate: pass: measured 25.0 MiB vs model 25.0 MiB"]
                ))
        #expect(judge(report(share: .none), extra: .pass("extra ok")).status == .pass)
    }

    @Test func failsOnAFailingVerdict() {
        #expect(judge(report(share: .none, verdict: .fail)).status == .fail)
    }

    @Test func failsWhenTheExtraCheckFails() {
        let r = judge(report(share: .none), extra: .fail("extra line"))
        #expect(r.status == .fail)
        #expect(r.diagnostics.last == "extra line")
    }

    @Test func failsWhenTheReportWasNotSaved() {
        let r = judge(report(share: .none), unsaved: "could not write /results/x.json")
        #expect(r.status == .fail)
        #expect(r.diagnostics.last == "could not write /results/x.json")
    }

    @Test func skipsOnASkippedVerdictWithoutTheExtraCheck() {
        let r = judge(report(share: .none, verdict: .skip, reason: "did not settle"), extra: .fail("not reached"))
        #expect(r.status == .skip("did not settle"))
        #expect(!r.diagnostics.contains("not reached"))
        #expect(judge(report(share: .none, verdict: .skip), unsaved: "could not write").status == .fail)
    }
}

@Suite struct ExtraLineTests {
    let o = SuiteOptions(workers: 100, outDirectory: "/results")

    @Test func controlOverheadWithinTheBound() {
        let line = "control.overhead: harness page tables per worker 80.0 KiB, bound 80.0 KiB"
        #expect(
            Suite.controlOverheadLine("control.overhead", o, report(share: .none, controlPerWorker: 81920))
                == .pass(line))
        let over = Suite.controlOverheadLine("control.overhead", o, report(share: .none, controlPerWorker: 81921))
        guard case .fail = over else {
            Issue.record("\(over)")
            return
        }
    }

    @Test func tablesLineJudgesTheCensus() {
        let n = "tables.memfd.baseline.distinct"
        var r = report(share: .none)
        #expect(Suite.tablesLine(n, r) == .fail("\(n): no table census in the report"))
        r.tables = census(r)
        #expect(
            Suite.tablesLine(n, r)
                == .pass(
                    "\(n): 12800 distinct PTE tables (model 12800), 100 distinct PMD tables (model 100); query of 100 workers took 3 ms"
                ))
        r.tables = census(r, pte: 12799)
        #expect(Suite.tablesLine(n, r).isFail)
    }

    @Test func sharedPTTablesLineJudgesCensusAndModel() {
        let n = "sharedpt.memfd.tables"
        var r = report(share: .pt)
        #expect(Suite.sharedPTTablesLine(n, o, r) == .fail("\(n): no table census in the report"))
        r.tables = census(r)
        let pass = Suite.sharedPTTablesLine(n, o, r)
        #expect(
            pass
                == .pass(
                    "\(n): 128 distinct PTE tables for 100 workers (model 128, 128 shared of 128 chunks), "
                        + "100 distinct PMD tables (model 100); query took 3 ms"))
        // Every worker with its own tables: what a kernel ignoring the flag leaves.
        r.tables = census(r, pte: 12800)
        #expect(Suite.sharedPTTablesLine(n, o, r).isFail)
        // A model that shares less than every chunk, the census agreeing with it.
        var fewer = sharing(report(share: .pt), "pte", 127)
        fewer.tables = census(fewer)
        #expect(Suite.sharedPTTablesLine(n, o, fewer).isFail)
    }

    /// 100 × 1 GiB of 2 MiB pages at one 1 GiB-aligned address: one shared PMD table, 512
    /// PMD leaves per worker, no PTE table.
    @Test func hugetlbTablesLineJudgesCensusAndLeaves() {
        let n = "tables.hugetlb.pmd_shared"
        var r = report(share: .none, size: 1 << 30, leafSize: 2 << 20, hugetlbPMDSharing: true)
        #expect(r.model.level("pmd")?.sharedPages == 1)
        #expect(Suite.hugetlbTablesLine(n, o, r).isFail)
        r.tables = census(r, pmdLeafSteps: 51_200)
        #expect(
            Suite.hugetlbTablesLine(n, o, r)
                == .pass(
                    "\(n): 1 distinct PMD tables for 100 workers (model 1, 1 shared), 0 PTE tables, "
                        + "51200 PMD-leaf steps (expected 51200)"))
        r.tables = census(r, pmdLeafSteps: 51_199)
        #expect(Suite.hugetlbTablesLine(n, o, r).isFail)
        r.tables = census(r, pte: 1, pmdLeafSteps: 51_200)
        #expect(Suite.hugetlbTablesLine(n, o, r).isFail)
        r.tables = census(r, pmd: 100, pmdLeafSteps: 51_200)
        #expect(Suite.hugetlbTablesLine(n, o, r).isFail)
        var unshared = sharing(r, "pmd", 0)
        unshared.tables = census(unshared, pmdLeafSteps: 51_200)
        #expect(Suite.hugetlbTablesLine(n, o, unshared).isFail)
    }
}

@Suite struct HugetlbPMDShareJudgementTests {
    let name = "hugetlb.pmd_share.savings"
    let o = SuiteOptions(workers: 100, outDirectory: "/results")
    /// One PMD table for all: 4 KiB.
    var aligned: RunReport { report(share: .none, size: 1 << 30, leafSize: 2 << 20, hugetlbPMDSharing: true) }
    /// Moved by 2 MiB, two partial 1 GiB spans: 2 PMD tables per worker, 800 KiB.
    var skewed: RunReport {
        report(
            share: .none, size: 1 << 30, leafSize: 2 << 20, address: secondGiB + (2 << 20), hugetlbPMDSharing: true)
    }

    func judge(aligned a: RunReport? = nil, skewed u: RunReport? = nil, unsaved: [String] = []) -> KTAPResult {
        Suite.judgeHugetlbPMDShare(name, o, aligned: a ?? aligned, skewed: u ?? skewed, unsaved: unsaved)
    }

    @Test func passes() {
        let r = judge()
        #expect(r.status == .pass, "\(r.diagnostics)")
        #expect(
            r.diagnostics.last
                == "\(name): PageTables for the mapping: aligned 4.0 KiB, skewed 800.0 KiB; savings 99.5 % "
                + "(required 90 %); PMD tables shared by the model: 1")
    }

    @Test func failsBelowTheMinimumSavings() {
        // 100 KiB of 800: 87.5 % saved.
        #expect(
            judge(
                aligned: report(
                    share: .none, size: 1 << 30, leafSize: 2 << 20, hugetlbPMDSharing: true, attributed: 102_400)
            ).status == .fail)
    }

    @Test func failsWhenEitherRunMissesItsModel() {
        var a = aligned
        a.verdict = .fail
        #expect(judge(aligned: a).status == .fail)
        var u = skewed
        u.verdict = .skip
        #expect(judge(skewed: u).status == .fail)
    }

    @Test func failsWhenTheModelSharesNoPMDTable() {
        #expect(judge(aligned: sharing(aligned, "pmd", 0)).status == .fail)
    }

    @Test func failsWhenAReportWasNotSaved() {
        let r = judge(unsaved: ["could not write /results/\(name).json"])
        #expect(r.status == .fail)
        #expect(r.diagnostics.first == "could not write /results/\(name).json")
    }
}

@Suite struct SettleTests {
    /// Readings taken `intervalMs` apart, judged after each as the sampler does; the decision
    /// and how many readings it took.
    func replay(_ readings: [UInt64], window: Int = 5, intervalMs: Int = 10, limitMs: Int = 3000)
        -> (Sampler.Decision, Int)
    {
        var seen: [UInt64] = []
        for (i, x) in readings.enumerated() {
            seen.append(x)
            let d = Sampler.decide(seen, window: window, elapsedMs: i * intervalMs, limitMs: limitMs)
            if d != .sampleAgain { return (d, seen.count) }
        }
        return (.sampleAgain, seen.count)
    }

    @Test func settlesOnWindowEqualReadings() {
        // An RCU grace period frees the last run's tables, then PageTables holds still.
        let (d, n) = replay([1_200_000, 1_100_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 7])
        #expect(d == .settled)
        #expect(n == 7)
    }

    @Test func fewerEqualReadingsThanTheWindowDoNotSettle() {
        #expect(replay([5, 5, 5, 5]) == (.sampleAgain, 4))
        #expect(Sampler.decide([5, 5, 5], window: 3, elapsedMs: 0, limitMs: 3000) == .settled)
    }

    @Test func givesUpAtTheLimitWithTheSpreadOfTheWindow() {
        let readings = (0..<100).map { UInt64(1_000_000 + ($0 % 2) * 4096) }
        #expect(replay(readings, intervalMs: 10, limitMs: 50) == (.gaveUp(spread: 4096), 6))
    }

    @Test func settlingAtTheLimitStillCounts() {
        #expect(Sampler.decide([9, 9, 9, 9, 9], window: 5, elapsedMs: 5000, limitMs: 3000) == .settled)
        #expect(Sampler.decide([9, 9, 9, 9, 8], window: 5, elapsedMs: 3000, limitMs: 3000) == .gaveUp(spread: 1))
    }

    /// What an unsettled sample does to a run: the verdict is a SKIP, never a pass or a fail.
    @Test func anUnsettledRunIsASkip() {
        let m = PageTableModel.expected(
            ModelInput(workers: 4, address: secondGiB, size: 8 << 20, leafSize: 4096, touched: true, share: .none))
        let v = Verdict.judge(
            attributed: m.expectedPageTableBytes, model: m, workers: 4, tolerance: 0.1, samplingStable: false)
        #expect(v.status == .skip)
        #expect(
            v.reason.hasSuffix("PageTables did not settle while sampling (another process allocating page tables?)"))
    }
}

@Suite struct BaselineMergeTests {
    @Test func savingsAgainstTheBaseline() throws {
        let b = report(share: .none, attributed: 80 << 10)
        let r = Runner.withBaseline(report(share: .pt, attributed: 4 << 10), baseline: b)
        let s = try #require(r.savings)
        #expect(s.baselineAttributedBytes == 80 << 10)
        #expect(s.attributedBytes == 4 << 10)
        #expect(s.fraction == 0.95)
        #expect(r.verdict == .pass)
        #expect(r.baseline?.share == "none")
        #expect(r.baseline?.attributedPageTableBytes == 80 << 10)
        #expect(r.baseline?.expectedPageTableBytes == b.model.expectedPageTableBytes)
    }

    @Test func aBaselineThatMeasuredNothingHasNoSavings() {
        let r = Runner.withBaseline(report(share: .pt), baseline: report(share: .none, attributed: 0))
        #expect(r.savings?.fraction == nil)
    }

    @Test func aFailingBaselineFailsThePassingRun() {
        let r = Runner.withBaseline(
            report(share: .pt), baseline: report(share: .none, verdict: .fail, reason: "deviation 9.0 MiB"))
        #expect(r.verdict == .fail)
        #expect(r.reason == "baseline: deviation 9.0 MiB")
        let skipped = Runner.withBaseline(
            report(share: .pt, verdict: .skip), baseline: report(share: .none, verdict: .fail, reason: "x"))
        #expect(skipped.verdict == .fail)
    }

    @Test func aSkippedBaselineSkipsThePassingRun() {
        let r = Runner.withBaseline(
            report(share: .pt), baseline: report(share: .none, verdict: .skip, reason: "did not settle"))
        #expect(r.verdict == .skip)
        #expect(r.reason == "baseline: did not settle")
    }

    @Test func theRunsOwnFailureStands() {
        let r = Runner.withBaseline(
            report(share: .pt, verdict: .fail, reason: "own"),
            baseline: report(share: .none, verdict: .fail, reason: "baseline's"))
        #expect(r.verdict == .fail)
        #expect(r.reason == "own")
    }
}

@Suite struct TableOverrideTests {
    let passing = Verdict(status: .pass, reason: "measured 1 MiB vs model 1 MiB", allowedDeviationBytes: 4096)
    let line = "tables: 128 distinct PTE tables (model 128), 100 distinct PMD tables (model 100)"
    var matching: RunReport.Tables { census(report(share: .pt)) }
    var mismatching: RunReport.Tables { census(report(share: .pt), pte: 12800) }

    @Test func aMatchingCensusKeepsThePass() {
        let v = passing.judgingTables(matching, faultedIn: true)
        #expect(v == Verdict(status: .pass, reason: passing.reason + "; " + line, allowedDeviationBytes: 4096))
    }

    @Test func aMismatchFailsAPassingVerdict() {
        let v = passing.judgingTables(mismatching, faultedIn: true)
        #expect(v.status == .fail)
        #expect(
            v.reason.hasSuffix("; tables: 12800 distinct PTE tables (model 128), 100 distinct PMD tables (model 100)"))
        #expect(v.allowedDeviationBytes == 4096)
    }

    @Test func aMismatchFailsEvenAnUnsettledRun() {
        var unsettled = passing
        unsettled.status = .skip
        #expect(unsettled.judgingTables(mismatching, faultedIn: true).status == .fail)
        #expect(unsettled.judgingTables(matching, faultedIn: true).status == .skip)
    }

    @Test func aFailureStandsWithItsReason() {
        var failing = passing
        failing.status = .fail
        #expect(failing.judgingTables(mismatching, faultedIn: true).status == .fail)
    }

    @Test func nothingFaultedInIsReportedNotJudged() {
        let v = passing.judgingTables(mismatching, faultedIn: false)
        #expect(v.status == .pass)
        #expect(v.reason.hasSuffix(" (not judged: nothing faulted in)"))
    }
}

@Suite struct SharedPTProbeInjectionTests {
    func options(_ probe: @escaping @Sendable (UInt32) throws(RunError) -> KernelFacts.SharedPT) -> SuiteOptions {
        var o = SuiteOptions(outDirectory: "/results")
        o.sharedPTProbe = probe
        return o
    }

    @Test func aSupportedAnswerRunsTheTest() {
        let o = options { v in .init(value: hex(UInt64(v)), supported: true, errno: nil, detail: "ok") }
        #expect(Suite.needsSharedPT("sharedpt.stress", o) == nil)
    }

    @Test func aRefusalSkipsWithTheReason() {
        let o = options { v in .init(value: hex(UInt64(v)), supported: false, errno: "EOPNOTSUPP", detail: "refused") }
        let r = Suite.needsSharedPT("sharedpt.stress", o)
        #expect(r?.status == .skip("MAP_SHARED_PT not supported by kernel \(Suite.release()): EOPNOTSUPP"))
    }

    @Test func aProbeThatCannotRunFails() {
        let o = options { _ throws(RunError) in throw .preflight("no memfd") }
        let r = Suite.needsSharedPT("sharedpt.stress", o)
        #expect(r?.status == .fail)
        #expect(r?.diagnostics.first?.hasPrefix("sharedpt.stress: MAP_SHARED_PT probe failed: ") == true)
    }
}

@Suite struct ProbeJudgementTests {
    let name = "probe.map_shared_pt"
    let taken = KernelFacts.SharedPT(
        value: "0x200000", supported: true, errno: nil, detail: "mmap(MAP_SHARED_VALIDATE | 0x200000) succeeded")
    let refused = KernelFacts.SharedPT(
        value: "0x200000", supported: false, errno: "EOPNOTSUPP", detail: "failed with EOPNOTSUPP")
    let refusal = "MAP_SHARED_PT 0x200000 refused by kernel 6.12.117: EOPNOTSUPP"

    func judge(
        _ expectation: SuiteOptions.Expectation, _ probe: KernelFacts.SharedPT, _ run: Suite.ProbeRun
    ) -> KTAPResult {
        Suite.judgeProbe(name, expectation: expectation, release: "6.12.117", probe: probe) { run }
    }

    @Test func passesWhenTheFlagIsTakenAndTheRunPasses() {
        let r = judge(.supported, taken, .completed(report(share: .pt, reason: "measured ok"), unsaved: nil))
        #expect(
            r
                == KTAPResult(
                    name: name, status: .pass,
                    diagnostics: [
                        "\(name): kernel 6.12.117: MAP_SHARED_PT 0x200000 supported: mmap(MAP_SHARED_VALIDATE | 0x200000) succeeded",
                        "\(name): run --share pt: pass: measured ok",
                    ]))
    }

    @Test func passesWhenARefusedFlagIsRefusedByTheRunToo() {
        for e in [SuiteOptions.Expectation.auto, .unsupported] {
            let r = judge(e, refused, .refused(refusal))
            #expect(r.status == .pass)
            #expect(r.diagnostics.last == "\(name): run --share pt refused cleanly: \(refusal)")
        }
    }

    @Test func failsAgainstTheExpectationWithoutRunning() {
        var ran = false
        let r = Suite.judgeProbe(name, expectation: .supported, release: "6.12.117", probe: refused) {
            ran = true
            return .failed("not reached")
        }
        #expect(r.status == .fail)
        #expect(r.diagnostics.last == "\(name): expected supported")
        #expect(!ran)
        #expect(judge(.unsupported, taken, .refused(refusal)).diagnostics.last == "\(name): expected unsupported")
    }

    @Test func failsWhenTheRunDisagreesWithTheProbe() {
        // Taken by the probe, refused by the run.
        #expect(judge(.auto, taken, .refused(refusal)).status == .fail)
        // Refused by the probe, yet a run with it completed (and even passed).
        let r = judge(.auto, refused, .completed(report(share: .pt), unsaved: nil))
        #expect(r.status == .fail)
        #expect(r.diagnostics.last == "\(name): the kernel refused the flag in probe but a run with it completed")
    }

    @Test func failsWhenTheRunFailsOrIsNotSaved() {
        #expect(judge(.auto, taken, .completed(report(share: .pt, verdict: .fail), unsaved: nil)).status == .fail)
        #expect(judge(.auto, taken, .completed(report(share: .pt, verdict: .skip), unsaved: nil)).status == .fail)
        let unsaved = judge(.auto, taken, .completed(report(share: .pt), unsaved: "could not write x"))
        #expect(unsaved.status == .fail)
        #expect(unsaved.diagnostics.last == "could not write x")
        let failed = judge(.auto, taken, .failed("fork: EAGAIN"))
        #expect(failed.status == .fail)
        #expect(failed.diagnostics.last == "\(name): run --share pt failed: fork: EAGAIN")
    }
}

extension Suite.Extra {
    var isFail: Bool {
        if case .fail = self { return true }
        return false
    }
}

/// The pressure tests (sharedpt.reclaim/memcg/oom/migrate) run unshared where the kernel lacks
/// the flag and none was expected (stock), and fail where it was expected.
@Suite struct SharedOrPlainTests {
    func options(supported: Bool, expect: SuiteOptions.Expectation) -> SuiteOptions {
        var o = SuiteOptions(outDirectory: "/results")
        o.expectSharedPT = expect
        o.sharedPTProbe = { v in
            .init(value: hex(UInt64(v)), supported: supported, errno: supported ? nil : "EOPNOTSUPP", detail: "d")
        }
        return o
    }

    @Test func unsupportedAndUnexpectedRunsUnshared() {
        var ran: (flag: UInt32, shared: Bool)?
        let r = SharedPTSemantics.runSharedOrPlain(
            "sharedpt.x", options(supported: false, expect: .unsupported), size: 2 << 20
        ) { f, c, shared throws(SharedPTError) in
            ran = (f.flag, shared)
            c.expect(true, "body ran")
        }
        #expect(ran?.flag == 0 && ran?.shared == false)
        #expect(r.status == .pass)
        #expect(
            r.diagnostics.first?.hasSuffix("runs unshared (plain MAP_SHARED), which proves the test itself") == true)
    }

    @Test func unsupportedButExpectedFailsWithoutRunning() {
        var ran = false
        let r = SharedPTSemantics.runSharedOrPlain(
            "sharedpt.x", options(supported: false, expect: .supported), size: 2 << 20
        ) { _, _, _ throws(SharedPTError) in ran = true }
        #expect(!ran)
        #expect(r.status == .fail)
    }

    @Test func unsupportedUnderAutoSkipsWithoutRunning() {
        var ran = false
        let r = SharedPTSemantics.runSharedOrPlain(
            "sharedpt.x", options(supported: false, expect: .auto), size: 2 << 20
        ) { _, _, _ throws(SharedPTError) in ran = true }
        #expect(!ran)
        #expect(r.status == .skip("MAP_SHARED_PT not supported by kernel \(Suite.release()): EOPNOTSUPP"))
    }

    @Test func supportedRunsShared() {
        var ran: (flag: UInt32, shared: Bool)?
        let o = options(supported: true, expect: .supported)
        _ = SharedPTSemantics.runSharedOrPlain("sharedpt.x", o, size: 2 << 20) { f, _, shared throws(SharedPTError) in
            ran = (f.flag, shared)
        }
        #expect(ran?.flag == o.mapSharedPTValue && ran?.shared == true)
    }
}
