import Testing

@testable import PTShareCore

/// Page-table bytes against workers as a benchmark report would plot them: without sharing every worker holds
/// 129 tables, with MAP_SHARED_PT the 128 PTE tables exist once, and shmem THP needs no PTE table at all (0 B).
private func bytesChart() -> Chart {
    let page = 4096.0
    let workers: [Double] = [10, 100, 1000, 10000]
    return Chart(
        title: "Page tables, 512 MiB shmem", xLabel: "Workers", yLabel: "Page tables", xScale: .log10,
        yScale: .log10, xUnit: .count, yUnit: .bytes,
        series: [
            Series(name: "none", points: workers.map { ChartPoint(x: $0, y: $0 * 129 * page) }, style: .palette(0)),
            Series(
                name: "pt",
                points: workers.map { w in
                    let y = 128 * page + w * page
                    return ChartPoint(x: w, y: y, low: y * 0.9, high: y * 1.1)
                }, style: .palette(1)),
            Series(name: "thp", points: workers.map { ChartPoint(x: $0, y: 0) }, style: .palette(2)),
        ],
        lines: [
            ReferenceLine(name: "model, unshared", points: workers.map { ChartPoint(x: $0, y: $0 * 129 * page) }),
            ReferenceLine(name: "physical limit: every PTE table once", horizontalAt: 128 * page),
        ])
}

private func occurrences(_ needle: String, in haystack: String) -> Int {
    haystack.split(separator: needle, omittingEmptySubsequences: false).count - 1
}

/// What every rendered chart must satisfy: one balanced `<svg>`, balanced groups, and no number that is not one.
private func expectWellFormed(_ svg: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let lower = svg.lowercased()
    #expect(!lower.contains("nan"), sourceLocation: sourceLocation)
    #expect(!lower.contains("inf"), sourceLocation: sourceLocation)
    #expect(svg.hasPrefix("<svg "), sourceLocation: sourceLocation)
    #expect(svg.hasSuffix("</svg>\n"), sourceLocation: sourceLocation)
    #expect(occurrences("<svg", in: svg) == 1, sourceLocation: sourceLocation)
    #expect(occurrences("</svg>", in: svg) == 1, sourceLocation: sourceLocation)
    #expect(
        occurrences("<g ", in: svg) + occurrences("<g>", in: svg) == occurrences("</g>", in: svg),
        sourceLocation: sourceLocation)
}

@Suite struct SVGChartTests {
    @Test func logLogBytesAgainstWorkers() {
        let svg = bytesChart().svg()
        expectWellFormed(svg)
        for name in ["none", "pt", "thp"] {
            #expect(svg.contains("<g class=\"series\" data-name=\"\(name)\""))
            #expect(svg.contains("<g class=\"markers\" data-name=\"\(name)\""))
        }
        #expect(svg.contains("<g class=\"axis x\">"))
        #expect(svg.contains("<g class=\"axis y\">"))
        #expect(svg.contains("<g class=\"reference\" data-name=\"model, unshared\""))
        #expect(svg.contains("<g class=\"reference\" data-name=\"physical limit: every PTE table once\""))
        #expect(svg.contains("<g class=\"legend\">"))
        #expect(svg.contains("<title id="))
        // Decades of workers; bytes at powers of two in exact binary units.
        for label in ["10", "100", "1k", "10k", "1 MiB", "32 MiB", "1 GiB"] {
            #expect(svg.contains(">\(label)</text>"), "tick label \(label)")
        }
        #expect(svg.contains("Page tables (bytes, log scale)"))
        #expect(svg.contains("Workers (log scale)"))
        // 0 B cannot sit on a log axis: it gets its own labelled line below a break, hollow markers and a note.
        #expect(svg.contains("class=\"zero\""))
        #expect(svg.contains(">0 B</text>"))
        #expect(svg.contains("class=\"break\""))
        #expect(svg.contains("0 B, drawn on the axis"))
        #expect(svg.contains("clip-path=\"url(#"))
    }

    @Test func zeroOnALogAxisIsHollowAndOnlyThere() throws {
        let svg = bytesChart().svg()
        func markers(_ name: String) throws -> Substring {
            let start = try #require(svg.firstRange(of: "<g class=\"markers\" data-name=\"\(name)\">"))
            let end = try #require(svg[start.upperBound...].firstRange(of: "</g>"))
            return svg[start.upperBound..<end.lowerBound]
        }
        #expect(try occurrences("fill=\"#ffffff\"", in: String(markers("thp"))) == 4)
        #expect(try !markers("none").contains("#ffffff"))
        // Without a 0 there is no break, no 0 line and no note.
        var chart = bytesChart()
        chart.series.removeLast()
        let plain = chart.svg()
        expectWellFormed(plain)
        #expect(!plain.contains("class=\"zero\""))
        #expect(!plain.contains("drawn on the axis"))
    }

    @Test func namesAreEscaped() {
        let name = "a<b & \"c\" 'd'>"
        let chart = Chart(
            title: "T & <U>", xLabel: "x", yLabel: "y",
            series: [Series(name: name, points: [ChartPoint(x: 1, y: 2)], style: .palette(0))],
            lines: [ReferenceLine(name: "<ref>", horizontalAt: 1)])
        let svg = chart.svg()
        expectWellFormed(svg)
        #expect(svg.contains("data-name=\"a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\""))
        #expect(svg.contains(">a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;</tspan>"))
        #expect(svg.contains("data-name=\"&lt;ref&gt;\""))
        #expect(svg.contains(">T &amp; &lt;U&gt;</title>"))
        #expect(!svg.contains("a<b"))
        #expect(!svg.contains("<ref>"))
        #expect(SVGWriter.escape("tab\tok\u{1}bell") == "tab\tok bell")
    }

    @Test func percentChart() {
        let chart = Chart(
            title: "Page-table bytes saved", xLabel: "Workers", yLabel: "Saved", xScale: .log10, yScale: .linear,
            xUnit: .count, yUnit: .percent,
            series: [
                Series(
                    name: "pt vs none",
                    points: [10, 100, 1000, 10000].map { w in ChartPoint(x: w, y: 100 * (1 - (128 + w) / (129 * w))) },
                    style: .palette(0))
            ])
        let svg = chart.svg()
        expectWellFormed(svg)
        #expect(svg.contains("<g class=\"series\" data-name=\"pt vs none\""))
        // The axis spans 0–100 % even though the data sit between 89 and 100 %.
        #expect(svg.contains(">0</text>"))
        #expect(svg.contains(">100 %</text>"))
        #expect(svg.contains("Saved (%)"))
        #expect(!svg.contains(">120 %</text>"))
    }

    @Test func emptyChartSaysNoData() {
        let charts = [
            Chart(title: "nothing", xLabel: "x", yLabel: "y"),
            Chart(
                title: "no points", xLabel: "x", yLabel: "y", xScale: .log10, yScale: .log10,
                series: [Series(name: "s", points: [], style: .palette(0))],
                lines: [ReferenceLine(name: "model", horizontalAt: 1)]),
            Chart(
                title: "only holes", xLabel: "x", yLabel: "y",
                series: [Series(name: "s", points: [ChartPoint(x: .nan, y: 1)], style: .palette(0))]),
        ]
        for chart in charts {
            let svg = chart.svg()
            expectWellFormed(svg)
            #expect(svg.contains(">no data</text>"))
            #expect(!svg.contains("class=\"series\""))
        }
    }

    @Test(arguments: [Chart.Scale.linear, .log10])
    func degenerateRangesRender(scale: Chart.Scale) {
        for (x, y) in [(100.0, 5.0 * 1_048_576), (1, 1), (0, 0), (-3, -3)] {
            let chart = Chart(
                title: "flat", xLabel: "Workers", yLabel: "Page tables", xScale: scale, yScale: scale, xUnit: .count,
                yUnit: .bytes,
                series: [
                    Series(name: "a", points: [ChartPoint(x: x, y: y), ChartPoint(x: x, y: y)], style: .palette(0)),
                    Series(name: "b", points: [ChartPoint(x: x, y: y, low: y, high: y)], style: .palette(1)),
                ])
            let svg = chart.svg()
            expectWellFormed(svg)
            #expect(svg.contains("<g class=\"series\" data-name=\"a\""), "\(scale) \(x) \(y)")
            #expect(!svg.contains(">no data</text>"))
        }
    }

    @Test func notFinitePointsAreLeftOutAndNoted() {
        let chart = Chart(
            title: "holes", xLabel: "x", yLabel: "y", xUnit: .count, yUnit: .nanoseconds,
            series: [
                Series(
                    name: "s",
                    points: [
                        ChartPoint(x: 1, y: 10), ChartPoint(x: 2, y: .nan), ChartPoint(x: .infinity, y: 3),
                        ChartPoint(x: 3, y: 30, low: -.infinity, high: .nan),
                    ], style: .palette(0))
            ])
        let svg = chart.svg()
        expectWellFormed(svg)
        #expect(svg.contains("2 not-finite points left out"))
    }

    /// The check behind "every number is finite": it does refuse NaN and ±∞, so an element holding one is left out.
    @Test func writerRefusesNonFiniteNumbers() {
        #expect(SVGWriter.number(.nan) == nil)
        #expect(SVGWriter.number(.infinity) == nil)
        #expect(SVGWriter.number(-.infinity) == nil)
        #expect(SVGWriter.number(1.5) == "1.5")
        #expect(SVGWriter.number(2) == "2")
        #expect(SVGWriter.number(-0.004) == "0")
        var path = SVGPath()
        path.move(1, 2)
        #expect(path.value == "M1 2")
        path.line(.nan, 3)
        #expect(path.value == nil)
    }

    @Test func logTicks() {
        let bytes = ChartAxis.log(unit: .bytes, values: [600 * 1024, 5.3e9], maxTicks: 8)
        #expect(bytes.ticks.map(\.label) == ["32 KiB", "1 MiB", "32 MiB", "1 GiB", "32 GiB"])
        let fewBytes = ChartAxis.log(unit: .bytes, values: [4096, 1_048_576], maxTicks: 8)
        #expect(fewBytes.ticks.map(\.label) == ["4 KiB", "16 KiB", "64 KiB", "256 KiB", "1 MiB"])
        let workers = ChartAxis.log(unit: .count, values: [10, 10000], maxTicks: 8)
        #expect(workers.ticks.map(\.label) == ["10", "100", "1k", "10k"])
        let padded = ChartAxis.log(unit: .count, values: [3, 4500], maxTicks: 8)
        #expect(padded.ticks.map(\.label) == ["1", "10", "100", "1k", "10k"])
        #expect(padded.minor.count == 8)
        let time = ChartAxis.log(unit: .nanoseconds, values: [1, 1e9], maxTicks: 10)
        #expect(
            time.ticks.map(\.label) == [
                "1 ns", "10 ns", "100 ns", "1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s",
            ])
        let seconds = ChartAxis.log(unit: .seconds, values: [0.002, 30], maxTicks: 8)
        #expect(seconds.ticks.map(\.label) == ["1 ms", "10 ms", "100 ms", "1 s", "10 s", "100 s"])
        let percent = ChartAxis.log(unit: .percent, values: [0.5, 99], maxTicks: 8)
        #expect(percent.ticks.map(\.label) == ["0.1 %", "1 %", "10 %", "100 %"])
        // Fewer ticks fit: every second decade.
        let wide = ChartAxis.log(unit: .count, values: [1, 1e8], maxTicks: 5)
        #expect(wide.ticks.map(\.label) == ["1", "100", "10k", "1M", "100M"])
    }

    @Test func linearTicksAreNice() {
        let workers = ChartAxis.linear(unit: .count, values: [0, 2500], includeZero: false, maxTicks: 6)
        #expect(workers.ticks.map(\.label) == ["0", "500", "1000", "1500", "2000", "2500"])
        let many = ChartAxis.linear(unit: .count, values: [0, 40000], includeZero: false, maxTicks: 5)
        #expect(many.ticks.map(\.label) == ["0", "10k", "20k", "30k", "40k"])
        let bytes = ChartAxis.linear(
            unit: .bytes, values: [1_048_576, 2.1 * 1_048_576], includeZero: true, maxTicks: 6)
        #expect(bytes.ticks.map(\.label) == ["0", "0.5 MiB", "1.0 MiB", "1.5 MiB", "2.0 MiB", "2.5 MiB"])
        // Steps made in KiB stay in KiB past 1 MiB rather than round to "0.2 MiB".
        let kib = ChartAxis.linear(unit: .bytes, values: [0, 1000 * 1024], includeZero: true, maxTicks: 6)
        #expect(kib.ticks.map(\.label) == ["0", "200 KiB", "400 KiB", "600 KiB", "800 KiB", "1000 KiB"])
        let time = ChartAxis.linear(unit: .nanoseconds, values: [0, 2_500_000], includeZero: true, maxTicks: 6)
        #expect(time.ticks.map(\.label) == ["0", "0.5 ms", "1.0 ms", "1.5 ms", "2.0 ms", "2.5 ms"])
        let percent = ChartAxis.linear(unit: .percent, values: [89, 99.2], includeZero: false, maxTicks: 6)
        #expect(percent.ticks.map(\.label) == ["0", "20 %", "40 %", "60 %", "80 %", "100 %"])
        let flat = ChartAxis.linear(unit: .count, values: [7, 7], includeZero: false, maxTicks: 6)
        #expect(flat.ticks.count >= 2)
        #expect(flat.fraction(7).map { $0 > 0 && $0 < 1 } == true)
    }

    @Test func paletteTellsSeriesApartWithoutColour() {
        let styles = (0..<12).map(SeriesStyle.palette)
        #expect(Set(styles.map { "\($0.marker)/\($0.dash)" }).count == 12)
        #expect(Set(styles.prefix(6).map(\.marker)).count == 6)
        #expect(Set(styles.prefix(6).map(\.color)).count == 6)
        #expect(SeriesStyle.palette(-1) == SeriesStyle.palette(83))
    }
}
