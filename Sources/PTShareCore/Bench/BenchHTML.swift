/// `index.html` of a sweep: one self-contained page (inline SVG and CSS, no script, nothing
/// fetched) with the plots a cover letter needs and the summary's tables under them.
public enum BenchHTML {
    /// The charts of one backing and size: page-table bytes, savings, per-worker latency and
    /// map+touch time, each against workers.
    public static func charts(_ r: BenchReport) -> [Chart] {
        var out: [Chart] = []
        var seen: [String] = []
        for p in r.points where !seen.contains("\(p.backing) \(p.sizeBytes)") {
            seen.append("\(p.backing) \(p.sizeBytes)")
            let group = r.points.filter { $0.backing == p.backing && $0.sizeBytes == p.sizeBytes }
            out += charts(group, backing: p.backing, size: p.sizeBytes)
        }
        return out
    }

    static func charts(_ points: [BenchReport.Point], backing: String, size: UInt64) -> [Chart] {
        let what = "\(backing), \(ByteSize(size)) per worker"
        var shares: [String] = []
        for p in points where !shares.contains(p.share) { shares.append(p.share) }
        func series(_ share: String, _ i: Int, name: String? = nil, _ metric: (BenchReport.Metrics) -> Double)
            -> Series
        {
            let pts = points.filter { $0.share == share && !$0.completed.isEmpty }.sorted { $0.workers < $1.workers }
                .map { p -> ChartPoint in
                    let v = p.completed.map(metric)
                    return ChartPoint(
                        x: Double(p.workers), y: BenchSummary.median(v) ?? 0, low: v.min(), high: v.max())
                }
            return Series(name: name ?? share, points: pts, style: .palette(i))
        }
        let bytes = shares.enumerated().map { i, s in series(s, i) { Double($0.attributedPageTableBytes) } }
        var lines: [ReferenceLine] = []
        let workers = Set(points.map(\.workers)).sorted()
        let unshared = workers.compactMap { w -> ChartPoint? in
            let m = points.first { $0.workers == w && !$0.completed.isEmpty }?.completed.first
            return m.map { ChartPoint(x: Double(w), y: Double($0.modelUnsharedPageTableBytes)) }
        }
        if !unshared.isEmpty { lines.append(ReferenceLine(name: "model, unshared", points: unshared, dash: .dashed)) }
        if backing != Backing.hugetlbfs.rawValue {
            // What no kernel can beat with PTE-mapped pages: every PTE table once for all
            // workers, a PMD table each (PageTableModel with the flag, in a 1 GiB span of its own
            // as bench maps; the PUD table above it, for 512 GiB, is there before: a page at 0).
            let limit = workers.map { w in
                ChartPoint(
                    x: Double(w),
                    y: Double(
                        PageTableModel.expected(
                            ModelInput(
                                workers: w, address: Geometry.pudSize, size: size, leafSize: Geometry.page,
                                touched: true, share: .pt, occupied: [0..<Geometry.page])
                        ).expectedPageTableBytes))
            }
            lines.append(ReferenceLine(name: "limit: each PTE table once (model)", points: limit, dash: .dotted))
        }
        var out = [
            Chart(
                title: "Page tables of the mapping, \(what)", xLabel: "workers", yLabel: "page-table bytes",
                xScale: .log10, yScale: .log10, xUnit: .count, yUnit: .bytes, series: bytes, lines: lines)
        ]
        if let base = shares.first(where: { $0 == "none" || $0 == "hugetlb-skewed" }) {
            let baseBytes = Dictionary(
                points.filter { $0.share == base }.compactMap { p in
                    BenchSummary.median(p, { Double($0.attributedPageTableBytes) }).map { (p.workers, $0) }
                }, uniquingKeysWith: { a, _ in a })
            let saved = shares.enumerated().filter { $0.element != base }.map { i, s -> Series in
                let pts = points.filter { $0.share == s }.sorted { $0.workers < $1.workers }.compactMap {
                    p -> ChartPoint? in
                    guard let b = baseBytes[p.workers], b > 0 else { return nil }
                    let v = p.completed.map { 100 * (1 - Double($0.attributedPageTableBytes) / b) }
                    guard let m = BenchSummary.median(v) else { return nil }
                    return ChartPoint(x: Double(p.workers), y: m, low: v.min(), high: v.max())
                }
                return Series(name: s, points: pts, style: .palette(i))
            }
            out.append(
                Chart(
                    title: "Page-table savings against \(base), \(what)", xLabel: "workers", yLabel: "saved",
                    xScale: .log10, yScale: .linear, xUnit: .count, yUnit: .percent, series: saved))
        }
        var latency: [Series] = []
        for (i, s) in shares.enumerated() {
            var p50 = series(s, i, name: "\(s) touch p50") { Double($0.touchNs.p50) }
            var p99 = series(s, i, name: "\(s) touch p99") { Double($0.touchNs.p99) }
            // One share mode, one marker; p99 dashed against p50's solid line.
            p50.style.dash = .solid
            p99.style.dash = .dashed
            latency += [p50, p99]
        }
        out.append(
            Chart(
                title: "Per-worker populate time (HdrHistogram), \(what)", xLabel: "workers",
                yLabel: "MADV_POPULATE time per worker", xScale: .log10, yScale: .log10, xUnit: .count,
                yUnit: .nanoseconds, series: latency))
        let mapTouch = shares.enumerated().map { i, s in series(s, i) { $0.mapTouchSeconds } }
        out.append(
            Chart(
                title: "All workers mapped and populated, \(what)", xLabel: "workers", yLabel: "map+touch time",
                xScale: .log10, yScale: .log10, xUnit: .count, yUnit: .seconds, series: mapTouch))
        return out
    }

    public static func render(_ r: BenchReport) -> String {
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>ptshare bench: \(SVGWriter.escape(r.kernel.release))</title>
            <style>
            body { font-family: sans-serif; max-width: 1400px; margin: 1em auto; color: #111; }
            .charts { display: flex; flex-wrap: wrap; gap: 12px; }
            table { border-collapse: collapse; margin: 0.5em 0; font-size: 90%; }
            th, td { border: 1px solid #999; padding: 2px 6px; text-align: right; }
            td:first-child, th:first-child { text-align: left; }
            code { background: #eee; }
            </style></head><body>

            """
        let summary = BenchSummary.render(r).split(separator: "\n", omittingEmptySubsequences: false)
        // The header (title and list) first, then the plots, then the tables.
        let firstTable = summary.firstIndex { $0.hasPrefix("## ") } ?? summary.endIndex
        h += markdown(summary[..<firstTable])
        h += "<div class=\"charts\">\n"
        for c in charts(r) { h += c.svg(width: 680, height: 420) + "\n" }
        h += "</div>\n"
        h += markdown(summary[firstTable...])
        h += "</body></html>\n"
        return h
    }

    /// The summary's few markdown forms (headings, lists, tables, `code`) as HTML.
    static func markdown(_ lines: ArraySlice<Substring>) -> String {
        var out = ""
        var inList = false
        var inTable = false
        func close() {
            if inList { out += "</ul>\n" }
            if inTable { out += "</table>\n" }
            inList = false
            inTable = false
        }
        for raw in lines {
            let line = String(raw)
            if line.hasPrefix("|") {
                if inList { close() }
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                    .map { String($0).trimmingWhitespace() }
                if cells.allSatisfy({ $0.allSatisfy { $0 == "-" || $0 == ":" } && !$0.isEmpty }) { continue }
                let tag = inTable ? "td" : "th"
                if !inTable { out += "<table>\n" }
                inTable = true
                out += "<tr>" + cells.map { "<\(tag)>\(inline($0))</\(tag)>" }.joined() + "</tr>\n"
            } else if line.hasPrefix("- ") {
                if inTable { close() }
                if !inList { out += "<ul>\n" }
                inList = true
                out += "<li>\(inline(String(line.dropFirst(2))))</li>\n"
            } else {
                close()
                if line.hasPrefix("## ") {
                    out += "<h2>\(inline(String(line.dropFirst(3))))</h2>\n"
                } else if line.hasPrefix("# ") {
                    out += "<h1>\(inline(String(line.dropFirst(2))))</h1>\n"
                } else if !line.isEmpty {
                    out += "<p>\(inline(line))</p>\n"
                }
            }
        }
        close()
        return out
    }

    /// Escaped text with `code` spans.
    static func inline(_ s: String) -> String {
        let parts = s.split(separator: "`", omittingEmptySubsequences: false)
        return parts.enumerated().map { i, p in
            i % 2 == 1 ? "<code>\(SVGWriter.escape(String(p)))</code>" : SVGWriter.escape(String(p))
        }
        .joined()
    }
}
