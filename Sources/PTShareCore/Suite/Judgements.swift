/// The suite's decisions, apart from the runs that feed them: each takes finished reports and
/// the options and returns the KTAP result (or the extra check line), so that every pass, fail
/// and skip of a measurement test can be reached from synthetic reports in a unit test.
extension Suite {
    /// What `run --share pt` came to in probe.map_shared_pt.
    enum ProbeRun {
        case completed(RunReport, unsaved: String?)
        /// The run's own preflight refused the flag (RunError.sharedPTUnsupported), described.
        case refused(String)
        case failed(String)
    }

    /// probe.map_shared_pt: the probe agrees with `--expect-map-shared-pt`; then `run` (called
    /// only then) agrees with the probe: within tolerance and saved where the flag is taken,
    /// refused cleanly where it is not.
    static func judgeProbe(
        _ name: String, expectation: SuiteOptions.Expectation, release: String, probe: KernelFacts.SharedPT,
        run: () -> ProbeRun
    ) -> KTAPResult {
        var diag = [
            "\(name): kernel \(release): MAP_SHARED_PT \(probe.value) "
                + "\(probe.supported ? "supported" : "not supported"): \(probe.detail)"
        ]
        switch (expectation, probe.supported) {
        case (.supported, false), (.unsupported, true):
            diag.append("\(name): expected \(expectation.rawValue)")
            return KTAPResult(name: name, status: .fail, diagnostics: diag)
        default: break
        }
        switch run() {
        case .completed(let r, let unsaved):
            diag.append("\(name): run --share pt: \(r.verdict.rawValue): \(r.reason)")
            if let unsaved { diag.append(unsaved) }
            let ok = probe.supported && r.verdict == .pass && unsaved == nil
            if !probe.supported {
                diag.append("\(name): the kernel refused the flag in probe but a run with it completed")
            }
            return KTAPResult(name: name, status: ok ? .pass : .fail, diagnostics: diag)
        case .refused(let why):
            diag.append("\(name): run --share pt refused cleanly: \(why)")
            return KTAPResult(name: name, status: probe.supported ? .fail : .pass, diagnostics: diag)
        case .failed(let why):
            diag.append("\(name): run --share pt failed: \(why)")
            return KTAPResult(name: name, status: .fail, diagnostics: diag)
        }
    }

    /// One run judged on its verdict, the saved JSON and `extra` (if any). A skipped run stays a
    /// SKIP only when its report was saved: the results folder must hold what the KTAP says ran.
    static func judgeVerdict(
        _ name: String, _ s: Scenario, _ r: RunReport, unsaved: String?, extra: (RunReport) -> Extra?
    ) -> KTAPResult {
        var diag = [
            "\(name): \(s.backing.rawValue) \(ByteSize(s.size)) × \(s.workers), touch \(s.touch.rawValue): "
                + "\(r.verdict.rawValue): \(r.reason)"
        ]
        if let unsaved { diag.append(unsaved) }
        if r.verdict == .skip && unsaved == nil {
            return KTAPResult(name: name, status: .skip(r.reason), diagnostics: diag)
        }
        var ok = r.verdict == .pass && unsaved == nil
        switch extra(r) {
        case .pass(let line)?: diag.append(line)
        case .fail(let line)?:
            diag.append(line)
            ok = false
        case nil: break
        }
        return KTAPResult(name: name, status: ok ? .pass : .fail, diagnostics: diag)
    }

    /// control.overhead: the harness's own page tables per worker within the bound.
    static func controlOverheadLine(_ name: String, _ o: SuiteOptions, _ r: RunReport) -> Extra {
        let per = r.measured.controlPerWorkerBytes
        let line =
            "\(name): harness page tables per worker \(ByteSize.human(per)), bound \(ByteSize.human(o.controlBoundBytes))"
        return per <= o.controlBoundBytes ? .pass(line) : .fail(line)
    }

    /// tables.hugetlb.pmd_shared: the census matches the model, which shares a PMD table, and
    /// every 2 MiB step of every worker is a PMD leaf (no PTE table anywhere).
    static func hugetlbTablesLine(_ name: String, _ o: SuiteOptions, _ r: RunReport) -> Extra {
        guard let t = r.tables else { return .fail("\(name): no table census in the report") }
        let shared = r.model.level("pmd")?.sharedPages ?? 0
        let leaves = Int(o.hugetlbSize / Geometry.pmdSize) * o.workers
        let line =
            "\(name): \(t.distinctPmdTables) distinct PMD tables for \(o.workers) workers (model "
            + "\(t.expectedDistinctPmdTables), \(shared) shared), \(t.distinctPteTables) PTE tables, "
            + "\(t.pmdLeafSteps) PMD-leaf steps (expected \(leaves))"
        let ok = t.matchesModel && shared >= 1 && t.distinctPteTables == 0 && t.pmdLeafSteps == leaves
        return ok ? .pass(line) : .fail(line)
    }

    /// sharedpt.memfd.tables: one PTE table per 2 MiB chunk for all workers, as the model says,
    /// and the model sharing every chunk.
    static func sharedPTTablesLine(_ name: String, _ o: SuiteOptions, _ r: RunReport) -> Extra {
        guard let t = r.tables else { return .fail("\(name): no table census in the report") }
        // The run's own size: the DAX tests map less than --shared-pt-size.
        let chunks = Int(r.scenario.sizeBytes / Geometry.pmdSize)
        let pte = r.model.level("pte")
        let line =
            "\(name): \(t.distinctPteTables) distinct PTE tables for \(r.scenario.workers) workers (model "
            + "\(t.expectedDistinctPteTables), \(pte?.sharedPages ?? 0) shared of \(chunks) chunks), "
            + "\(t.distinctPmdTables) distinct PMD tables (model \(t.expectedDistinctPmdTables)); "
            + "query took \(t.queryMilliseconds) ms"
        let ok =
            t.matchesModel && (pte?.sharedPages ?? 0) == chunks && t.distinctPteTables == t.expectedDistinctPteTables
        return ok ? .pass(line) : .fail(line)
    }

    /// hugetlb.pmd_share.savings: both runs within tolerance, the model sharing a PMD table, both
    /// reports saved, and the aligned run saving at least the minimum against the skewed one.
    static func judgeHugetlbPMDShare(
        _ name: String, _ o: SuiteOptions, aligned a: RunReport, skewed u: RunReport, unsaved: [String]
    ) -> KTAPResult {
        var diag = unsaved
        diag.append("\(name): 1 GiB-aligned: \(a.verdict.rawValue): \(a.reason)")
        diag.append("\(name): skewed by 2 MiB (no whole 1 GiB span): \(u.verdict.rawValue): \(u.reason)")
        let shared = a.model.level("pmd")?.sharedPages ?? 0
        let savings = Savings(
            baseline: u.measured.attributedPageTableBytes, measured: a.measured.attributedPageTableBytes)
        let pct = savings.fraction.map { formatFixed($0 * 100, decimals: 1) + " %" } ?? "n/a"
        diag.append(
            "\(name): PageTables for the mapping: aligned \(ByteSize.human(a.measured.attributedPageTableBytes)), "
                + "skewed \(ByteSize.human(u.measured.attributedPageTableBytes)); savings \(pct) "
                + "(required \(formatFixed(o.minimumHugetlbSavings * 100, decimals: 0)) %); "
                + "PMD tables shared by the model: \(shared)")
        let ok =
            a.verdict == .pass && u.verdict == .pass && shared >= 1 && unsaved.isEmpty
            && (savings.fraction ?? 0) >= o.minimumHugetlbSavings
        return KTAPResult(name: name, status: ok ? .pass : .fail, diagnostics: diag)
    }

    /// sharedpt.*.savings, given the unshared baseline and the `--share pt` run of scenario `s`:
    /// both saved, the merged run (`Runner.withBaseline`) within tolerance of its model, the
    /// model sharing every whole 2 MiB chunk, savings at least the minimum, the VmPTE sum on the
    /// unshared model, and smaps showing the `sp` flag and every page resident.
    static func judgeSharedPTSavings(
        _ name: String, _ o: SuiteOptions, _ s: Scenario, baseline b: RunReport, shared: RunReport, unsaved: [String]
    ) -> KTAPResult {
        let r = Runner.withBaseline(shared, baseline: b)
        var diag = unsaved
        var ok = diag.isEmpty
        let label = "\(s.backing.rawValue) \(ByteSize(s.size)) × \(s.workers)"
        diag.append("\(name): \(label), share none (baseline): \(b.verdict.rawValue): \(b.reason)")
        diag.append("\(name): \(label), share pt: \(shared.verdict.rawValue): \(shared.reason)")
        if r.verdict == .skip {
            return KTAPResult(name: name, status: ok ? .skip(r.reason) : .fail, diagnostics: diag)
        }
        let pte = r.model.level("pte")
        let chunks = Int(s.size / Geometry.pmdSize)
        let fraction = r.savings?.fraction ?? 0
        let pct = r.savings?.fraction.map { formatFixed($0 * 100, decimals: 1) + " %" } ?? "n/a"
        // The flag shares PTE tables only: a worker's PMD table over a 1 GiB span that held
        // nothing before stays its own, and for a small mapping it is a real part of the total
        // (32 MiB: 1 of 17 tables, 94.1 % at most; CI on 2026-11-30 saw 93.6 % fail a flat
        // 95 %). So the floor is the minimum share of what the model says sharing can save.
        let ceiling = 1 - Double(r.model.expectedPageTableBytes) / Double(max(r.model.unsharedPageTableBytes, 1))
        let required = o.minimumSharedPTSavings * ceiling
        let savingsOK = fraction >= required
        let chunksOK = (pte?.sharedPages ?? 0) == chunks
        diag.append(
            "\(name): PageTables for the mapping: shared \(ByteSize.human(r.measured.attributedPageTableBytes)), "
                + "unshared \(ByteSize.human(b.measured.attributedPageTableBytes)); savings \(pct) (required "
                + "\(formatFixed(required * 100, decimals: 1)) %: \(formatFixed(o.minimumSharedPTSavings * 100, decimals: 0)) % "
                + "of the model's \(formatFixed(ceiling * 100, decimals: 1)) %); PTE tables shared by the model: "
                + "\(pte?.sharedPages ?? 0) of \(chunks)" + (savingsOK && chunksOK ? "" : " -- FAILED"))
        ok = ok && r.verdict == .pass && savingsOK && chunksOK
        // Per process, every table its page tables point to counts, shared or not.
        let vmpte = r.measured.vmpteAttributedBytes
        let unshared = r.model.unsharedPageTableBytes
        let vmpteOK = Double(abs(vmpte - unshared)) <= o.tolerance * Double(max(unshared, 1))
        diag.append(
            "\(name): VmPTE sum \(ByteSize.human(vmpte)) vs the unshared model \(ByteSize.human(unshared)) "
                + "(each sharer counts the shared tables)" + (vmpteOK ? "" : " -- FAILED"))
        ok = ok && vmpteOK
        if let sm = r.measured.smaps {
            let sp = sm.vmFlags.contains("sp")
            let rss = sm.range["Rss"] ?? 0
            // DAX pages are in no RSS (smaps skips device pages): 0 is what a DAX mapping shows.
            let want = s.backing == .dax ? 0 : s.size
            diag.append(
                "\(name): smaps of the range: VmFlags \(sm.vmFlags.joined(separator: " ")) "
                    + (sp ? "(has sp)" : "(no sp -- FAILED)") + ", Rss \(ByteSize(rss)) of \(ByteSize(s.size))"
                    + (s.backing == .dax ? " (DAX pages are in no RSS)" : "") + (rss == want ? "" : " -- FAILED"))
            ok = ok && sp && rss == want
        } else {
            diag.append("\(name): no smaps sample in the report -- FAILED")
            ok = false
        }
        return KTAPResult(name: name, status: ok ? .pass : .fail, diagnostics: diag)
    }
}
