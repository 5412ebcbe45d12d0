/// `summary.md` of a sweep: what a cover letter quotes. Medians over the repeats; the spread
/// and every sample are in bench.json and `compare`.
public enum BenchSummary {
    /// One row of the page-table table: a backing, size and worker count, every share mode.
    struct Group {
        var backing: String
        var sizeBytes: UInt64
        var workers: Int
        var points: [String: BenchReport.Point]
    }

    static func groups(_ r: BenchReport) -> [Group] {
        var order: [String] = []
        var byKey: [String: Group] = [:]
        for p in r.points {
            let key = "\(p.backing) \(p.sizeBytes) \(p.workers)"
            if byKey[key] == nil {
                order.append(key)
                byKey[key] = Group(backing: p.backing, sizeBytes: p.sizeBytes, workers: p.workers, points: [:])
            }
            byKey[key]!.points[p.share] = p
        }
        return order.map { byKey[$0]! }
    }

    static func median(_ xs: [Double]) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// The median of `metric` over a point's completed samples.
    static func median(_ p: BenchReport.Point?, _ metric: (BenchReport.Metrics) -> Double) -> Double? {
        guard let p else { return nil }
        return median(p.completed.map(metric))
    }

    static func bytes(_ v: Double?) -> String { v.map { ByteSize.human(Int64($0)) } ?? "–" }

    static func cell(_ p: BenchReport.Point?) -> String {
        guard let p else { return "–" }
        if p.skipped != nil { return "SKIP (below)" }
        guard let m = median(p, { Double($0.attributedPageTableBytes) }) else {
            return "failed: \(p.samples.first?.error ?? "no sample")"
        }
        let verdicts = Set(p.completed.map(\.verdict.rawValue)).sorted().joined(separator: "/")
        return "\(bytes(m)) (\(verdicts))"
    }

    static func savings(_ base: BenchReport.Point?, _ p: BenchReport.Point?) -> Double? {
        guard let b = median(base, { Double($0.attributedPageTableBytes) }),
            let v = median(p, { Double($0.attributedPageTableBytes) }), b > 0
        else { return nil }
        return 100 * (1 - v / b)
    }

    static func percent(_ v: Double?) -> String { v.map { formatFixed($0, decimals: 1) + " %" } ?? "–" }

    static func ns(_ v: Double?) -> String {
        guard let v else { return "–" }
        if v >= 1e9 { return formatFixed(v / 1e9, decimals: 2) + " s" }
        if v >= 1e6 { return formatFixed(v / 1e6, decimals: 2) + " ms" }
        if v >= 1e3 { return formatFixed(v / 1e3, decimals: 1) + " µs" }
        return formatFixed(v, decimals: 0) + " ns"
    }

    static func seconds(_ v: Double?) -> String { v.map { formatFixed($0, decimals: 3) + " s" } ?? "–" }

    public static func render(_ r: BenchReport) -> String {
        var out: [String] = []
        let shares = r.spec.shares
        out.append("# ptshare bench: \(r.kernel.release) (\(r.kernel.machine))")
        out.append("")
        out.append("- command: `\(r.command.joined(separator: " "))`")
        var machine = "\(r.machine.onlineCpus) CPUs"
        if let m = r.machine.memTotalBytes { machine += ", \(ByteSize.human(Int64(m))) RAM" }
        if let p = r.machine.pidMax { machine += ", pid_max \(p)" }
        if let a = r.machine.accelerator { machine += ", QEMU \(a)" }
        out.append("- machine: \(machine)")
        out.append(
            "- started \(r.started), \(formatFixed(r.elapsedSeconds, decimals: 0)) s; \(r.spec.repeats) repeat(s) per "
                + "point, touch \(r.spec.touch), \(r.spec.mapConcurrency) workers mapping at once")
        out.append(
            "- shmem_enabled at start: \(r.kernel.shmemThpAtStart ?? "unreadable"); thp and pt+thp points run with "
                + "`always`, the others with `never` (as root)")
        if let f = r.fragmentation {
            out.append(
                "- fragmented first: \(ByteSize.human(Int64(f.heldBytes))) held, \(ByteSize.human(Int64(f.releasedBytes))) "
                    + "given back in single pages (1 of every \(f.stride)); free 2 MiB blocks "
                    + "\(f.freeHugeBlocksBefore.map(String.init) ?? "?") before, "
                    + "\(f.freeHugeBlocksAfter.map(String.init) ?? "?") after; the rest mlocked"
                    + (f.compactionMayMoveHeldPages == true ? " but movable by compaction" : " and unmovable")
                    + (f.holderDiedDuringSweep == true ? "; the holder DIED during the sweep" : ""))
        }
        out.append("")
        out.append("## Page tables of the mapping (median; the run's verdict against the model)")
        out.append("")
        var head = "| backing | size | workers | unshared model |"
        for s in shares { head += " \(s) |" }
        let compared = shares.filter { $0 != "none" && $0 != "hugetlb-skewed" }
        let base = shares.contains("none") ? "none" : (shares.contains("hugetlb-skewed") ? "hugetlb-skewed" : nil)
        if let base { for s in compared { head += " \(s) saves vs \(base) |" } }
        let thpModes = shares.filter { $0 == "thp" || $0 == "pt+thp" }
        for s in thpModes { head += " \(s): THP success |" }
        out.append(head)
        out.append("|" + String(repeating: " --- |", count: head.filter { $0 == "|" }.count - 1))
        let flagModes = shares.filter { $0 == "pt" || $0 == "pt+thp" }
        var wins: [String: (flag: [String], tie: [String], thp: [String])] = [:]
        for g in groups(r) {
            let measured = shares.compactMap { g.points[$0] }.first { !$0.completed.isEmpty }
            let unshared = median(measured, { Double($0.modelUnsharedPageTableBytes) })
            var row = "| \(g.backing) | \(ByteSize(g.sizeBytes)) | \(g.workers) | \(bytes(unshared)) |"
            for s in shares { row += " \(cell(g.points[s])) |" }
            if let base { for s in compared { row += " \(percent(savings(g.points[base], g.points[s]))) |" } }
            for s in thpModes {
                let rates = g.points[s]?.completed.compactMap(\.thpSuccessPercent) ?? []
                row += " \(percent(median(rates))) |"
            }
            out.append(row)
            let thp = median(g.points["thp"], { Double($0.attributedPageTableBytes) })
            for f in flagModes {
                guard let v = median(g.points[f], { Double($0.attributedPageTableBytes) }), let thp else { continue }
                let name = "\(g.backing) \(ByteSize(g.sizeBytes)) × \(g.workers)"
                if v < thp {
                    wins[f, default: ([], [], [])].flag.append("\(name) (\(bytes(v)) vs \(bytes(thp)))")
                } else if v == thp {
                    wins[f, default: ([], [], [])].tie.append("\(name) (\(bytes(v)))")
                } else {
                    wins[f, default: ([], [], [])].thp.append("\(name) (\(bytes(thp)) vs \(bytes(v)))")
                }
            }
        }
        if shares.contains("thp") {
            // Where the flag earns its place: THP needs no PTE table where it gets a huge folio.
            for f in flagModes {
                let w = wins[f] ?? ([], [], [])
                let list = { (xs: [String]) in xs.isEmpty ? "no point" : xs.joined(separator: ", ") }
                out.append("")
                out.append("\(f) uses fewer page-table bytes than shmem THP (thp) at: \(list(w.flag)).")
                out.append("\(f) and thp use the same at: \(list(w.tie)).")
                out.append("thp uses fewer than \(f) at: \(list(w.thp)).")
            }
        }
        out.append("")
        out.append("## Times (median; per-worker latencies from an HdrHistogram of every worker)")
        out.append("")
        out.append("| point | spawn | map+touch | teardown | mmap p50 | mmap p99 | touch p50 | touch p99 | touch max |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for p in r.points where p.skipped == nil && !p.completed.isEmpty {
            out.append(
                "| \(p.label) | \(seconds(median(p, { $0.spawnSeconds }))) | "
                    + "\(seconds(median(p, { $0.mapTouchSeconds }))) | \(seconds(median(p, { $0.teardownSeconds }))) | "
                    + "\(ns(median(p, { Double($0.mapNs.p50) }))) | \(ns(median(p, { Double($0.mapNs.p99) }))) | "
                    + "\(ns(median(p, { Double($0.touchNs.p50) }))) | \(ns(median(p, { Double($0.touchNs.p99) }))) | "
                    + "\(ns(median(p, { Double($0.touchNs.max) }))) |")
        }
        let skipped = r.points.filter { $0.skipped != nil }
        let failed = r.points.flatMap { p in
            p.samples.compactMap { s in s.error.map { "\(p.label) #\(s.repeatIndex + 1): \($0)" } }
        }
        if !skipped.isEmpty || !failed.isEmpty || !r.notApplicable.isEmpty {
            out.append("")
            out.append("## Not measured")
            out.append("")
            for p in skipped { out.append("- SKIP \(p.label): \(p.skipped!)") }
            for f in failed { out.append("- FAILED \(f)") }
            for n in r.notApplicable { out.append("- not applicable: \(n.point): \(n.reason)") }
        }
        return out.joined(separator: "\n") + "\n"
    }
}
