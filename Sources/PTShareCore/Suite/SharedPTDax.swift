import CPTShare
import Glibc

/// sharedpt.dax.*: files accessed by DAX (fs-dax on pmem, ext4 -o dax=always in the guest)
/// with MAP_SHARED_PT (series patch 10). DAX maps a chunk by a 2 MiB PMD leaf, with no PTE
/// table, where the file's blocks are 2 MiB-aligned on the device; the flag keeps that and
/// shares the tables of the chunks mapped by PTEs. The tests that need PTE-mapped chunks run
/// their workers under PR_SET_THP_DISABLE, which stands in for blocks off the 2 MiB grid.
extension Suite {
    /// The first -o dax=always mount, or the KTAP result (SKIP, FAIL) saying why there is none.
    static func daxMount(_ name: String) -> Result<MountEntry, KTAPResultBox> {
        let mounts: [MountEntry]
        do { mounts = try ProcFS.mounts() } catch {
            return .failure(.init(KTAPResult(name: name, status: .fail, diagnostics: ["\(name): \(error)"])))
        }
        guard let m = mounts.first(where: { $0.option("dax") == "always" || $0.option("dax") == "" }) else {
            return .failure(
                .init(
                    KTAPResult(
                        name: name,
                        status: .skip(
                            "no file system is mounted -o dax=always (ptshare vm --pmem mounts one at /mnt/pmem)"))))
        }
        return .success(m)
    }

    /// N workers × a 32 MiB DAX file with the flag at one 2 MiB-aligned address, populated;
    /// `thpDisabled`: every chunk PTE-mapped.
    static func sharedPTDaxScenario(_ mount: MountEntry, _ o: SuiteOptions, thpDisabled: Bool) -> Scenario {
        Scenario(
            backing: .dax, path: mount.mountPoint, size: daxSize, workers: o.workers, share: .pt, touch: .populate,
            address: .same, mapSharedPTValue: o.mapSharedPTValue, tolerance: o.tolerance, thpDisabled: thpDisabled)
    }

    /// As sharedpt.memfd.savings with a DAX file whose chunks are PTE-mapped (PR_SET_THP_DISABLE):
    /// where DAX cannot use PMD leaves, the flag saves what it saves for shmem.
    static func sharedPTDaxSavings(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.dax.savings"
        if let r = needsSharedPT(name, o) { return r }
        // The census gives the model DAX's PMD leaves (Runner.pmdMappedBytes).
        if let r = needsProbeModule(name, o) { return r }
        switch daxMount(name) {
        case .success(let m): return sharedPTSavings(name, o, sharedPTDaxScenario(m, o, thpDisabled: true))
        case .failure(let box): return box.result
        }
    }

    /// PTE-mapped chunks (PR_SET_THP_DISABLE) with the flag share one table per chunk among all
    /// workers (census against the model). Then, with PMD leaves allowed, the same scenario
    /// without and with the flag: the flag must keep every PMD leaf DAX maps without it (none
    /// needs a table), and its run must match the model given them. No PMD leaf even without
    /// the flag (the file's blocks off the grid): SKIP, that half proved nothing.
    static func sharedPTDaxTables(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.dax.tables"
        if let r = needsSharedPT(name, o) { return r }
        if let r = needsProbeModule(name, o) { return r }
        let mount: MountEntry
        switch daxMount(name) {
        case .success(let m): mount = m
        case .failure(let box): return box.result
        }
        let pte = verdictTest(name, o, sharedPTDaxScenario(mount, o, thpDisabled: true), tables: .on) { r in
            sharedPTTablesLine(name, o, r)
        }
        let chunks = Int(daxSize / Geometry.pmdSize)
        var unproven: String?
        let s = sharedPTDaxScenario(mount, o, thpDisabled: false)
        let plain: RunReport
        let r: RunReport
        do {
            plain = try Runner.run(RunOptions(scenario: Runner.baselineScenario(of: s), tables: .on))
            r = try Runner.run(RunOptions(scenario: s, tables: .on))
        } catch {
            return KTAPResult(
                name: name, status: .fail, diagnostics: pte.diagnostics + ["\(name): PMD runs failed: \(error)"])
        }
        let plainLeaves = plain.tables?.pmdLeafSteps ?? 0
        let unsaved = [save(plain, o, "\(name).pmd.baseline.json"), save(r, o, "\(name).pmd.json")].compactMap { $0 }
        let pmd = judgeVerdict(name, s, r, unsaved: unsaved.isEmpty ? nil : unsaved.joined(separator: "; ")) { r in
            guard let t = r.tables else { return .fail("\(name): no table census in the PMD run's report") }
            let line =
                "\(name): PMD leaves allowed: without the flag \(plainLeaves) PMD leaves, with it \(t.pmdLeafSteps), "
                + "for \(chunks) chunks × \(s.workers) workers; \(t.distinctPteTables) distinct PTE tables with the flag "
                + "(model \(t.expectedDistinctPteTables))"
            if plainLeaves == 0 {
                unproven = "no chunk was PMD-mapped even without the flag (the file's blocks off the 2 MiB grid?)"
                return .pass(line)
            }
            // The flag must never lose a PMD leaf DAX maps without it.
            return t.pmdLeafSteps >= plainLeaves ? .pass(line) : .fail(line + ": the flag lost PMD leaves")
        }
        let diag = pte.diagnostics + pmd.diagnostics
        let ok = pte.status == .pass && pmd.status == .pass
        if ok, let why = unproven { return KTAPResult(name: name, status: .skip(why), diagnostics: diag) }
        return KTAPResult(name: name, status: ok ? .pass : .fail, diagnostics: diag)
    }
}

extension SharedPTSemantics {
    /// sharedpt.semantics.coherence on a DAX file: a write by one sharer is read by all.
    static func daxCoherence(_ o: SuiteOptions) -> KTAPResult { coherence("sharedpt.dax.coherence", o, dax: true) }

    /// MAP_SYNC: a write fault makes the block's metadata durable before the PTE turns
    /// writable (dax_finish_sync_fault()), so a MAP_SYNC mapping must not share a table with
    /// one without it, whose faults install writable PTEs over blocks whose allocation may not
    /// be on the media yet. Two MAP_SYNC sharers (VmFlags `sf`) share one table per chunk; a
    /// third without MAP_SYNC has tables of its own; what either side writes, the other reads.
    static func daxMapSync(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.dax.map_sync", o, dax: true) { f, c throws(SharedPTError) in
            let s = try f.spawn(3)
            var a: [UInt64] = []
            for i in 0..<2 {
                a.append(try map(f, s[i], i, &c, extraFlags: ptshare_MAP_SYNC, label: " with MAP_SYNC"))
                expectFlags(s[i], i, a[i], shared: true, with: ["sf"], &c)
            }
            a.append(try map(f, s[2], 2, &c, label: " without MAP_SYNC"))
            try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
            for i in 1..<3 { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            let v = { (i: Int) in view(s[i], i, a[i], length: f.size) }
            census([v(0), v(1)], &c, o)
            census([v(0), v(2)], &c, o, .separateTables)
            try fill(s[2], 2, a[2], f.size, seed: 0x2000, &c)
            for i in 0..<2 { try check(s[i], i, a[i], f.size, seed: 0x2000, &c) }
        }
    }

    /// First, DAX pages stay out of every RSS counter: sharer 1 joins tables full of DAX
    /// pages, the file is truncated to nothing, and sharer 1 exits; had joining counted the
    /// pages (zap never uncounts a DAX page), its exit would report a bad rss-counter.
    /// Then sharedpt.semantics.truncate and .holepunch on the same file: SIGBUS past EOF in every
    /// sharer (and the read-only mapper with tables of its own), zeroes where the file grew back,
    /// zeroes in a hole punched across a chunk boundary, data intact elsewhere.
    static func daxTruncate(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.dax.truncate", o, dax: true) { f, c throws(SharedPTError) in
            let log = KernelLog.open()
            let (s, _) = try sharersWithData(f, 2, &c, o)
            try f.truncate(to: 0)
            c.note("ftruncate to 0: the DAX pages sharer 1 found in the tables it joined are gone")
            try s[1].exit()
            c.note("sharer 1 exited")
            f.killSharers()
            try f.truncate(to: f.size)
            // check_mm() runs when the mm is dropped, which a CPU that ran it lazily may defer.
            Sys.sleep(milliseconds: 500)
            expectCleanLog(log, &c)
            try truncateSteps(f, &c, o)
            f.killSharers()
            c.note("the truncate's sharers killed; new sharers for the hole punch")
            try holePunchSteps(f, &c, o)
        }
    }
}
