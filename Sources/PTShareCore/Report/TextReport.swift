/// The human table printed on stdout after a run.
public enum TextReport {
    public static func render(_ r: RunReport) -> String {
        let s = r.scenario
        let m = r.measured
        let w = Int64(s.workers)
        var out: [String] = []
        out.append(
            "ptshare run: \(s.backing) \(ByteSize(s.sizeBytes)) × \(s.workers) workers, share \(s.share), "
                + "touch \(s.touch), address \(s.address) (mapped at \(m.mappingAddress))")
        out.append(
            "kernel \(r.kernel.release) (\(r.kernel.machine)), leaf pages \(ByteSize.human(Int64(s.leafPageSizeBytes))), "
                + "mmap flags \(s.mmapFlags)")
        if let p = s.placement {
            out.append("placement: \(p.numaPlacement)")
        }
        if let p = r.kernel.hugetlbPmdSharing {
            out.append("hugetlb PMD sharing: \(p.enabled.map { $0 ? "on" : "off" } ?? "unknown") (\(p.basis))")
        }
        out.append("")
        let rows: [(String, Int64)] = [
            ("PageTables delta (raw)", m.pageTablesDeltaBytes),
            ("control: same workers, nothing mapped", m.controlPageTablesDeltaBytes),
            ("attributed: raw - control", m.attributedPageTableBytes),
            ("VmPTE sum, attributed (counts shared tables per sharer)", m.vmpteAttributedBytes),
            ("model", r.model.expectedPageTableBytes),
            ("model without any sharing", r.model.unsharedPageTableBytes),
        ]
        let width = rows.map(\.0.count).max()! + 2
        out.append(pad("", width) + lpad("total", 12) + lpad("per worker", 14))
        for (name, v) in rows {
            out.append(pad(name, width) + lpad(ByteSize.human(v), 12) + lpad(ByteSize.human(v / w), 14))
        }
        let usage = r.nodeUsage()
        for (n, u) in zip(m.numaNodes, usage) {
            var line = "node \(n.node) PageTables attributed: "
            switch u.pageTableBytes {
            case .success(let b): line += ByteSize.human(b)
            case .failure(let e): line += "n/a (\(e.reason))"
            }
            if case .success(let p) = u.filePages, case .success(let b) = u.fileBytes {
                line += "; the mapping's pages here: \(p) (\(ByteSize.human(Int64(b))))"
            }
            out.append(line)
        }
        if let nm = m.numaMaps {
            if let why = nm.missing {
                out.append("numa_maps: not read: \(why)")
            } else if let w = nm.reference {
                out.append(
                    "numa_maps of worker \(w.worker) (policy \(w.policy)): \(w.pages) pages mapped"
                        + (nm.samePagesPerNode
                            ? ", the same per node in all \(nm.workers.count) sampled workers"
                            : "; the sampled workers differ per node (measured.numa_maps in the JSON)"))
            }
        }
        if let sm = m.smaps {
            let f = { (k: String) in sm.range[k].map { ByteSize.human(Int64($0)) } ?? "n/a" }
            out.append(
                "smaps of the range (mean of \(sm.workersSampled.count) workers): Rss \(f("Rss")), Pss \(f("Pss")), "
                    + "KernelPageSize \(f("KernelPageSize")), MMUPageSize \(f("MMUPageSize"))")
        }
        if let t = r.tables {
            out.append(
                "tables (ptshare_probe v\(t.interfaceVersion), \(t.workersQueried) workers, \(t.queryMilliseconds) ms): "
                    + "distinct PTE tables \(t.distinctPteTables) (model \(t.expectedDistinctPteTables)), "
                    + "distinct PMD tables \(t.distinctPmdTables) (model \(t.expectedDistinctPmdTables)), "
                    + "PMD-leaf steps \(t.pmdLeafSteps)")
        }
        if let leak = m.teardownLeakBytes, let after = m.meminfo.afterTeardown?.pageTables {
            let noise = m.teardownNoiseBytes ?? 0
            out.append(
                "after teardown: PageTables \(ByteSize.human(Int64(after))) (base \(ByteSize.human(Int64(m.meminfo.base.pageTables ?? 0)))), "
                    + "left behind \(leak) B, allowed noise \(noise) B"
                    + (!m.sampling.base.stable || m.sampling.afterTeardown?.stable != true
                        ? " (not judged: PageTables did not settle)" : leak > noise ? " -- LEAK" : ""))
        }
        out.append("")
        out.append("model: \(r.model.reason)")
        let t = r.timings
        out.append(
            "timings: spawn \(sec(t.spawnSeconds)), map+touch \(sec(t.mapTouchSeconds)) (ready \(sec(t.readySeconds))), "
                + "measure \(sec(t.measureSeconds)), teardown \(sec(t.teardownSeconds)); per worker mmap p50 "
                + "\(usec(t.mapNs.median)) p99 \(usec(t.mapNs.p99)), touch p50 \(usec(t.touchNs.median)) p99 \(usec(t.touchNs.p99))"
        )
        let points =
            [m.sampling.base, m.sampling.control, m.sampling.mapped] + [m.sampling.afterTeardown].compactMap { $0 }
        if points.contains(where: { !$0.stable }) {
            out.append("warning: PageTables did not settle at every sampling point")
        }
        if points.contains(where: { !$0.statRefresh }) {
            out.append(
                "warning: per-CPU vmstat deltas were not folded (/proc/sys/vm/stat_refresh needs root): "
                    + "PageTables may be off by a few dozen pages")
        }
        if let b = r.baseline, let s = r.savings {
            out.append(
                "baseline (share \(b.share), address \(b.address) at \(b.mappingAddress)): attributed "
                    + "\(ByteSize.human(b.attributedPageTableBytes)), model \(ByteSize.human(b.expectedPageTableBytes)), "
                    + "\(b.verdict.rawValue); savings \(s.fraction.map { formatFixed($0 * 100, decimals: 1) + " %" } ?? "n/a")"
            )
        }
        out.append("")
        out.append("verdict: \(r.verdict.rawValue.uppercased()): \(r.reason)")
        return out.joined(separator: "\n") + "\n"
    }

    static func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
    static func lpad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
    static func sec(_ s: Double) -> String { formatFixed(s, decimals: 2) + " s" }
    static func usec(_ ns: UInt64) -> String { formatFixed(Double(ns) / 1000, decimals: 0) + " µs" }
}
