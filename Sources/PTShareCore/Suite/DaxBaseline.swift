import Glibc

/// dax.baseline.model: the model holds for fs-dax files without sharing, on any kernel.
extension Suite {
    /// The DAX file's size: a 32 MiB file fits the guest's default 64 MiB pmem with ext4's own
    /// blocks (journal, inode tables) beside it.
    static let daxSize: UInt64 = 32 << 20

    /// N workers each map a 32 MiB file on the -o dax=always mount twice over, unshared: at a
    /// 2 MiB-aligned address (file offset 0), where the kernel maps a chunk whose extent is
    /// 2 MiB-aligned on the device by a PMD leaf and needs no PTE table for it, and 4 KiB off
    /// that grid, where only PTE leaves can map it. Each run is judged against the model, which is
    /// given the kernel's choice as the census counted it (no /proc file counts DAX pages), and
    /// the census against the model. The aligned run must have PMD leaves and the skewed one none;
    /// an aligned run without any proves nothing about PMD mappings: SKIP.
    static func daxBaseline(_ o: SuiteOptions) -> KTAPResult {
        let name = "dax.baseline.model"
        if let r = needsProbeModule(name, o) { return r }
        let mount: MountEntry
        switch daxMount(name) {
        case .success(let m): mount = m
        case .failure(let box): return box.result
        }
        let aligned = Scenario(
            backing: .dax, path: mount.mountPoint, size: daxSize, workers: o.workers, touch: .populate,
            address: .same, tolerance: o.tolerance)
        var skewed = aligned
        skewed.address = .sameSkewed(Geometry.page)
        var diag: [String] = []
        var ok = true
        var unproven: String?
        let chunks = daxSize / Geometry.pmdSize
        for (label, s) in [("aligned", aligned), ("skewed", skewed)] {
            let r: RunReport
            do { r = try Runner.run(RunOptions(scenario: s, tables: .on)) } catch {
                return KTAPResult(
                    name: name, status: .fail, diagnostics: diag + ["\(name): \(label) run failed: \(error)"])
            }
            let result = judgeVerdict(name, s, r, unsaved: save(r, o, "\(name).\(label).json")) { r in
                guard let t = r.tables else { return .fail("\(name): \(label): no table census in the report") }
                let perWorker = t.pmdLeafSteps / max(t.workersQueried, 1)
                let line =
                    "\(name): \(label) (\(s.address)): the kernel mapped \(perWorker) of \(chunks) chunks per worker "
                    + "by a PMD leaf (census: \(t.pmdLeafSteps) PMD leaves, \(t.distinctPteTables) distinct PTE "
                    + "tables, model \(t.expectedDistinctPteTables))"
                if label == "skewed" { return perWorker == 0 && t.pmdLeafSteps == 0 ? .pass(line) : .fail(line) }
                if t.pmdLeafSteps == 0 {
                    unproven =
                        "the aligned run got no PMD leaf (file extents off the 2 MiB grid?): PMD mapping untested"
                }
                return .pass(line)
            }
            diag += result.diagnostics.map { $0.hasPrefix("\(name): ") ? $0 : "\(name): \($0)" }
            if result.status != .pass { ok = false }
        }
        if ok, let why = unproven { return KTAPResult(name: name, status: .skip(why), diagnostics: diag) }
        return KTAPResult(name: name, status: ok ? .pass : .fail, diagnostics: diag)
    }
}
