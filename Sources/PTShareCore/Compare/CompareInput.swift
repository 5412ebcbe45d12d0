/// What `ptshare compare` reads: a bench folder or bench.json, a run report, or a folder of run
/// reports; each becomes samples per point and metric.
public enum CompareInput {
    /// The metrics a point carries, with their unit and which way is better.
    public static let metrics: [(MetricInfo, @Sendable (BenchReport.Metrics) -> Double?)] = [
        (
            .init(name: "page_table_bytes", unit: .bytes, polarity: .lowerIsBetter),
            { Double($0.attributedPageTableBytes) }
        ),
        (
            .init(name: "distinct_pte_tables", unit: .count, polarity: .lowerIsBetter),
            { $0.distinctPteTables.map(Double.init) }
        ),
        (.init(name: "thp_success_percent", unit: .percent, polarity: .higherIsBetter), { $0.thpSuccessPercent }),
        (.init(name: "spawn_seconds", unit: .seconds, polarity: .lowerIsBetter), { $0.spawnSeconds }),
        (.init(name: "map_touch_seconds", unit: .seconds, polarity: .lowerIsBetter), { $0.mapTouchSeconds }),
        (.init(name: "teardown_seconds", unit: .seconds, polarity: .lowerIsBetter), { $0.teardownSeconds }),
        (.init(name: "mmap_p50_ns", unit: .nanoseconds, polarity: .lowerIsBetter), { Double($0.mapNs.p50) }),
        (.init(name: "mmap_p99_ns", unit: .nanoseconds, polarity: .lowerIsBetter), { Double($0.mapNs.p99) }),
        (.init(name: "touch_p50_ns", unit: .nanoseconds, polarity: .lowerIsBetter), { Double($0.touchNs.p50) }),
        (.init(name: "touch_p99_ns", unit: .nanoseconds, polarity: .lowerIsBetter), { Double($0.touchNs.p99) }),
    ]

    public static var metricNames: [String] { metrics.map(\.0.name) }

    /// Every metric of every point's completed samples; `only` keeps the named metrics.
    public static func sampled(_ r: BenchReport, only: Set<String>? = nil) -> [Sampled] {
        var out: [Sampled] = []
        for p in r.points {
            let done = p.completed
            guard !done.isEmpty else { continue }
            for (info, value) in metrics where only?.contains(info.name) ?? true {
                let v = done.compactMap(value)
                if !v.isEmpty { out.append(Sampled(point: p.label, metric: info, values: v)) }
            }
        }
        return out
    }

    /// Run reports as one-sample bench points (a `--baseline` run's unshared half is not one:
    /// only its attributed bytes are kept, not its metrics).
    public static func bench(fromRuns runs: [RunReport]) -> BenchReport {
        var points: [BenchReport.Point] = []
        for r in runs {
            let s = r.scenario
            let label =
                "\(s.backing) \(ByteSize(s.sizeBytes)) × \(s.workers), share \(s.share)"
                + (r.kernel.shmemThp == "always" ? " (shmem THP always)" : "")
            let m = Bench.metrics(r, thp: nil)
            if let i = points.firstIndex(where: { $0.label == label }) {
                points[i].samples.append(.init(repeatIndex: points[i].samples.count, metrics: m))
            } else {
                points.append(
                    .init(
                        label: label, backing: s.backing, sizeBytes: s.sizeBytes, workers: s.workers, share: s.share,
                        samples: [.init(repeatIndex: 0, metrics: m)]))
            }
        }
        let k = runs.first?.kernel
        return BenchReport(
            tool: runs.first?.tool ?? .init(version: PTShareVersion.string),
            kernel: .init(release: k?.release ?? "?", machine: k?.machine ?? "?", shmemThpAtStart: k?.shmemThp),
            machine: .init(onlineCpus: 0), command: [], started: "", elapsedSeconds: 0,
            spec: .init(
                workers: [], sizesBytes: [], shares: [], backings: [], repeats: 1, fragment: false, touch: "",
                mapConcurrency: 0),
            points: points, notApplicable: [])
    }

    /// Reads `path`: a folder holding bench.json, a folder of run reports, or one file of either
    /// schema. The error names the path and what it held.
    public static func load(_ path: String) throws(ValidationMessage) -> BenchReport {
        let isDirectory = ProcFS.isDirectory(path)
        if isDirectory && ProcFS.exists(path + "/bench.json") { return try loadFile(path + "/bench.json") }
        if !isDirectory { return try loadFile(path) }
        var runs: [RunReport] = []
        for name in ProcFS.listDirectory(path) where name.hasSuffix(".json") {
            guard let text = try? ProcFS.read(path + "/" + name), text.contains("\"\(RunReport.schemaName)\"") else {
                continue
            }
            do { runs.append(try JSONOutput.decodeRun(Array(text.utf8))) } catch {
                throw ValidationMessage(
                    "\(path)/\(name): a \(RunReport.schemaName) report that does not decode: \(error)")
            }
        }
        if runs.isEmpty {
            throw ValidationMessage("\(path): no bench.json and no \(RunReport.schemaName) report in the folder")
        }
        return bench(fromRuns: runs)
    }

    static func loadFile(_ path: String) throws(ValidationMessage) -> BenchReport {
        let text: String
        do { text = try ProcFS.read(path) } catch { throw ValidationMessage("\(path): \(error)") }
        let bytes = Array(text.utf8)
        if text.contains("\"\(BenchReport.schemaName)\"") {
            do { return try JSONOutput.decodeBench(bytes) } catch {
                throw ValidationMessage("\(path): a \(BenchReport.schemaName) document that does not decode: \(error)")
            }
        }
        if text.contains("\"\(RunReport.schemaName)\"") {
            do { return bench(fromRuns: [try JSONOutput.decodeRun(bytes)]) } catch {
                throw ValidationMessage("\(path): a \(RunReport.schemaName) report that does not decode: \(error)")
            }
        }
        throw ValidationMessage(
            "\(path): neither \(BenchReport.schemaName) nor \(RunReport.schemaName) (no \"schema\" of either)")
    }
}
