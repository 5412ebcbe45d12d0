import Testing

@testable import PTShareCore

// `ptshare compare`'s arithmetic and its output. The t-distribution values were checked
// against scipy.stats.t (2 · t.sf(|t|, df)) and agree to 1e-12 or better.

private func near(_ a: Double, _ b: Double, _ tolerance: Double = 1e-9) -> Bool {
    (a - b).magnitude <= tolerance
}

private let mib = 1_048_576.0
private let point = "memfd 64M × 1000, share pt"
private let pageTables = MetricInfo(name: "page tables", unit: .bytes, polarity: .lowerIsBetter)
private let spawn = MetricInfo(name: "spawn", unit: .seconds, polarity: .lowerIsBetter)
private let sharedTables = MetricInfo(name: "shared PTE tables", unit: .count, polarity: .higherIsBetter)

private func one(
    _ metric: MetricInfo, base: [Double], new: [Double], thresholds: Thresholds = Thresholds(default: 5)
) -> Comparison {
    Comparison.compare(
        base: [Sampled(point: point, metric: metric, values: base)],
        new: [Sampled(point: point, metric: metric, values: new)], thresholds: thresholds)
}

@Suite struct StatisticsTests {
    @Test func summaryUsesTheSampleStddev() throws {
        // mean 5, Σ(x − 5)² = 9+1+1+1+0+0+4+16 = 32, s² = 32/7.
        let s = try #require(Statistics.summary([2, 4, 4, 4, 5, 5, 7, 9]))
        #expect(s.n == 8)
        #expect(s.mean == 5)
        #expect(near(s.stddev, (32.0 / 7).squareRoot()))
        #expect(s.min == 2 && s.max == 9)
        #expect(near(s.relativeStddev ?? -1, (32.0 / 7).squareRoot() / 5))
    }

    @Test func summaryEdges() throws {
        #expect(Statistics.summary([]) == nil)
        let single = try #require(Statistics.summary([42]))
        #expect(single == Statistics.Summary(n: 1, mean: 42, stddev: 0, min: 42, max: 42))
        let zero = try #require(Statistics.summary([-1, 1]))
        #expect(zero.relativeStddev == nil)
        // |mean|: a negative mean still gives a positive ratio.
        #expect(near(Statistics.summary([-2, -4])?.relativeStddev ?? 0, 2.0.squareRoot() / 3))
    }

    @Test func incompleteBetaAgainstTheBinomialSum() {
        // For integer a, b: I_x(a, b) = Σ_{j=a}^{a+b−1} C(a+b−1, j) x^j (1−x)^(a+b−1−j).
        // I_0.3(2, 3) = 6·0.09·0.49 + 4·0.027·0.7 + 0.0081 = 0.3483.
        #expect(near(Statistics.regularizedIncompleteBeta(0.3, a: 2, b: 3), 0.3483, 1e-12))
        // The other branch (x above (a+1)/(a+b+2)): I_0.9(2, 3) = 1 − I_0.1(3, 2)
        // = 1 − (4·0.001·0.9 + 0.0001) = 0.9963.
        #expect(near(Statistics.regularizedIncompleteBeta(0.9, a: 2, b: 3), 0.9963, 1e-12))
        #expect(Statistics.regularizedIncompleteBeta(0, a: 2, b: 3) == 0)
        #expect(Statistics.regularizedIncompleteBeta(1, a: 2, b: 3) == 1)
    }

    @Test func studentTKnownValues() {
        #expect(near(Statistics.studentTTwoSidedP(t: 2.0, df: 10), 0.073388034770740, 1e-12))
        // df = 1 is Cauchy: p = 1 − (2/π)·atan(1) = 0.5.
        #expect(near(Statistics.studentTTwoSidedP(t: 1.0, df: 1), 0.5, 1e-12))
        #expect(near(Statistics.studentTTwoSidedP(t: 3.0, df: 5), 0.030099247897463, 1e-12))
        // df = 2 has a closed form: p = 1 − t/√(2 + t²).
        #expect(near(Statistics.studentTTwoSidedP(t: 10, df: 2), 1 - 10 / 102.0.squareRoot(), 1e-12))
        // Large df approaches the normal: 2·(1 − Φ(1.96)) = 0.04999579.
        #expect(near(Statistics.studentTTwoSidedP(t: 1.96, df: 1e6), 0.05, 1e-4))
        #expect(near(Statistics.studentTTwoSidedP(t: 1.96, df: 1e6), 0.049996067585, 1e-9))
        #expect(near(Statistics.studentTTwoSidedP(t: 1.96, df: 1e9), 0.049995790296, 1e-9))
        // x = df/(df + t²) within 1e-10 of 1: only the I_x(a, b) = 1 − I_(1−x)(b, a) swap gets this
        // (without it the continued fraction returns 0.883).
        #expect(near(Statistics.studentTTwoSidedP(t: 0.01, df: 1e6), 0.992021289365548, 1e-9))
        #expect(Statistics.studentTTwoSidedP(t: 0, df: 4) == 1)
        #expect(Statistics.studentTTwoSidedP(t: -.infinity, df: 4) == 0)
        // Symmetric in t; the CDF splits it.
        #expect(Statistics.studentTTwoSidedP(t: -2.0, df: 10) == Statistics.studentTTwoSidedP(t: 2.0, df: 10))
        #expect(near(Statistics.studentTCDF(2.0, df: 10), 1 - 0.073388034770740 / 2, 1e-12))
        #expect(near(Statistics.studentTCDF(-2.0, df: 10), 0.073388034770740 / 2, 1e-12))
        #expect(Statistics.studentTTwoSidedP(t: 1, df: 0).isNaN)
    }

    @Test func welchByHand() throws {
        // a = 10, 12, 14: mean 12, s² = (4 + 0 + 4)/2 = 4, s²/n = 4/3.
        // b = 20 … 24:    mean 22, s² = (4 + 1 + 0 + 1 + 4)/4 = 2.5, s²/n = 1/2.
        // t  = (12 − 22)/√(4/3 + 1/2) = −10·√(6/11) = −7.385489458760
        // df = (11/6)² / ((4/3)²/2 + (1/2)²/4) = (121/36)/(137/144) = 484/137 = 3.532846715328
        // p  = 0.002873359852 (scipy.stats.ttest_ind(a, b, equal_var=False) agrees)
        let a = try #require(Statistics.summary([10, 12, 14]))
        let b = try #require(Statistics.summary([20, 21, 22, 23, 24]))
        let w = try #require(Statistics.welch(a, b))
        #expect(near(w.t, -10 * (6.0 / 11).squareRoot(), 1e-12))
        #expect(near(w.df, 484.0 / 137, 1e-12))
        #expect(near(w.p, 0.002873359852124, 1e-12))
        // Swapping the sides flips t only.
        let swapped = try #require(Statistics.welch(b, a))
        #expect(near(swapped.t, -w.t, 1e-12) && swapped.df == w.df && swapped.p == w.p)
    }

    @Test func welchEdges() throws {
        let three = try #require(Statistics.summary([5, 5, 5]))
        let other = try #require(Statistics.summary([6, 6, 6]))
        let one = try #require(Statistics.summary([5]))
        #expect(Statistics.welch(one, three) == nil)
        // No spread on either side: equal means are the same, different means are different.
        #expect(Statistics.welch(three, three) == Statistics.WelchResult(t: 0, df: 4, p: 1))
        #expect(Statistics.welch(three, other) == Statistics.WelchResult(t: -.infinity, df: 4, p: 0))
        // One side without spread: df comes from the other side alone (n − 1).
        let spread = try #require(Statistics.summary([5, 6, 7]))
        let oneSided = try #require(Statistics.welch(three, spread))
        #expect(near(oneSided.df, 2, 1e-12))
    }

    @Test func bands() throws {
        let low = try #require(Statistics.summary([1, 2]))
        let high = try #require(Statistics.summary([3, 4]))
        let touching = try #require(Statistics.summary([2, 3]))
        #expect(Statistics.bandsDisjoint(low, high))
        #expect(Statistics.bandsDisjoint(high, low))
        // Sharing an end is overlap: the runs could have come from one kernel.
        #expect(!Statistics.bandsDisjoint(low, touching))
        #expect(!Statistics.bandsDisjoint(low, low))
    }
}

@Suite struct ComparisonTests {
    @Test func percentChangeFromZero() {
        #expect(Comparison.percentChange(base: 0, new: 0) == 0)
        #expect(Comparison.percentChange(base: 0, new: 3) == .infinity)
        #expect(Comparison.percentChange(base: 0, new: -3) == -.infinity)
        // |base|: a negative base moving up is a positive change.
        #expect(Comparison.percentChange(base: -4, new: -2) == 50)
        #expect(Comparison.formatChange(.infinity) == "+inf%")
        #expect(Comparison.formatChange(-.infinity) == "-inf%")
    }

    @Test func zeroBaseToZeroIsNoChange() throws {
        let c = one(pageTables, base: [0, 0, 0], new: [0, 0, 0])
        let r = try #require(c.rows.first)
        #expect(r.percentChange == 0 && r.mark == .notSignificant && c.exitCode == 0)
    }

    @Test func zeroBaseToSomethingIsBeyondEveryThreshold() throws {
        let c = one(pageTables, base: [0, 0, 0], new: [4096, 4096, 4096], thresholds: Thresholds(default: 1e9))
        let r = try #require(c.rows.first)
        #expect(r.percentChange == .infinity)
        #expect(r.mark == .regression && c.exitCode == 1)
        let line = "\n        0 B ±  0%          +inf%     4.0 KiB ±  0%     page tables  REGRESSION"
        #expect(c.renderText().contains(line))
    }

    @Test func significantRegressionBeyondTheThresholdFails() throws {
        // +11%, t = −13.47 on 4 df, p = 0.00018.
        let c = one(pageTables, base: [100 * mib, 101 * mib, 99 * mib], new: [110 * mib, 111 * mib, 112 * mib])
        let r = try #require(c.rows.first)
        #expect(r.method == .welch)
        #expect(near(r.percentChange, 11, 1e-9))
        #expect(near(r.welch?.p ?? 1, 0.000175635382616, 1e-12))
        #expect(r.mark == .regression)
        #expect(c.regressions.count == 1 && c.exitCode == 1)
    }

    @Test func theSameChangeWithinNoiseDoesNotFail() throws {
        // Same +11% of the mean, but a spread of ±50%: p = 0.80.
        let noisy = one(pageTables, base: [50 * mib, 100 * mib, 150 * mib], new: [61 * mib, 111 * mib, 161 * mib])
        let r = try #require(noisy.rows.first)
        #expect(r.method == .welch && !r.significant && r.mark == .notSignificant)
        #expect(near(r.welch?.p ?? 0, 0.800916461987, 1e-9))
        #expect(noisy.exitCode == 0)
        // Two runs a side: bands that overlap decide the same.
        let bands = one(pageTables, base: [90 * mib, 110 * mib], new: [100 * mib, 122 * mib])
        #expect(bands.rows.first?.method == .bands)
        #expect(bands.rows.first?.mark == .notSignificant && bands.exitCode == 0)
        // …and the premise: without the overlap the same two runs a side do fail.
        let apart = one(pageTables, base: [90 * mib, 110 * mib], new: [111 * mib, 111 * mib])
        #expect(apart.rows.first?.mark == .regression && apart.exitCode == 1)
    }

    @Test func significantButWithinTheThreshold() throws {
        let c = one(pageTables, base: [100 * mib, 101 * mib, 99 * mib], new: [102 * mib, 103 * mib, 101 * mib])
        let r = try #require(c.rows.first)
        #expect(r.significant == false)  // p = 0.070 with three runs a side
        let tight = one(
            pageTables, base: [100 * mib, 100.1 * mib, 99.9 * mib], new: [102 * mib, 102.1 * mib, 101.9 * mib])
        let t = try #require(tight.rows.first)
        #expect(t.significant && t.mark == .significant && tight.exitCode == 0)
    }

    @Test func improvementIsMarkedAndPasses() throws {
        let c = one(pageTables, base: [100 * mib, 101 * mib, 99 * mib], new: [50 * mib, 51 * mib, 49 * mib])
        #expect(c.rows.first?.mark == .improvement)
        #expect(c.improvements.count == 1 && c.exitCode == 0)
    }

    @Test func higherIsBetterDroppingIsARegression() throws {
        let drop = one(sharedTables, base: [32, 32], new: [16, 16])
        #expect(drop.rows.first?.method == .bands)
        #expect(drop.rows.first?.mark == .regression && drop.exitCode == 1)
        let rise = one(sharedTables, base: [16, 16], new: [32, 32])
        #expect(rise.rows.first?.mark == .improvement && rise.exitCode == 0)
    }

    @Test func perMetricThresholdOverridesTheDefault() throws {
        // spawn +10%, three tight runs a side: significant.
        let base = [1.00, 1.01, 0.99]
        let new = [1.10, 1.11, 1.09]
        #expect(one(spawn, base: base, new: new, thresholds: Thresholds(default: 5)).exitCode == 1)
        let looser = one(spawn, base: base, new: new, thresholds: Thresholds(default: 5, perMetric: ["spawn": 20]))
        #expect(looser.rows.first?.threshold == 20)
        #expect(looser.rows.first?.mark == .significant && looser.exitCode == 0)
        let stricter = one(spawn, base: base, new: new, thresholds: Thresholds(default: 50, perMetric: ["spawn": 5]))
        #expect(stricter.exitCode == 1)
        // No threshold at all: shown, never fails.
        let none = one(spawn, base: base, new: new, thresholds: Thresholds())
        #expect(none.rows.first?.threshold == nil && none.rows.first?.mark == .significant && none.exitCode == 0)
        // Per-metric only: other metrics cannot fail.
        let other = one(spawn, base: base, new: new, thresholds: Thresholds(perMetric: ["page tables": 1]))
        #expect(other.exitCode == 0)
    }

    @Test func rowsOnOneSideAreListedNotDropped() throws {
        let c = Comparison.compare(
            base: [
                Sampled(point: point, metric: pageTables, values: [1 * mib, 1 * mib]),
                Sampled(point: point, metric: spawn, values: [1.5]),
                Sampled(point: "anon 1G × 10", metric: spawn, values: []),
            ],
            new: [
                Sampled(point: point, metric: pageTables, values: [1 * mib]),
                Sampled(point: point, metric: pageTables, values: [1 * mib]),
                Sampled(point: "anon 1G × 10", metric: spawn, values: [2.0]),
                Sampled(point: "hugetlb 1G × 10", metric: sharedTables, values: [4, 4]),
            ],
            thresholds: Thresholds(default: 5))
        // The new side's two page-table entries are joined into one pair of runs.
        #expect(c.rows.count == 1 && c.rows.first?.new.n == 2)
        let s2 = Statistics.Summary(n: 2, mean: 4, stddev: 0, min: 4, max: 4)
        #expect(
            c.unpaired == [
                Comparison.Unpaired(
                    point: point, metric: spawn,
                    base: .sampled(Statistics.Summary(n: 1, mean: 1.5, stddev: 0, min: 1.5, max: 1.5)), new: .absent),
                Comparison.Unpaired(
                    point: "anon 1G × 10", metric: spawn, base: .empty,
                    new: .sampled(Statistics.Summary(n: 1, mean: 2, stddev: 0, min: 2, max: 2))),
                Comparison.Unpaired(point: "hugetlb 1G × 10", metric: sharedTables, base: .absent, new: .sampled(s2)),
            ])
        #expect(c.exitCode == 0)
        let text = c.renderText()
        #expect(text.contains("\nnot compared (3):\n"))
        #expect(text.contains("\n  memfd 64M × 1000, share pt: spawn: base 1.50 s (n=1), new missing\n"))
        #expect(text.contains("\n  anon 1G × 10: spawn: base no values, new 2.00 s (n=1)\n"))
        #expect(text.contains("\n  hugetlb 1G × 10: shared PTE tables: base missing, new 4 (n=2)\n"))
    }

    /// The whole text for one point: a regression by Welch and a change within noise.
    @Test func rendersText() {
        let c = Comparison.compare(
            base: [
                Sampled(point: point, metric: pageTables, values: [100 * mib, 101 * mib, 99 * mib]),
                Sampled(point: point, metric: spawn, values: [1.20, 1.25, 1.22]),
            ],
            new: [
                Sampled(point: point, metric: pageTables, values: [110 * mib, 111 * mib, 112 * mib]),
                Sampled(point: point, metric: spawn, values: [1.21, 1.30, 1.19]),
            ],
            thresholds: Thresholds(default: 5, perMetric: ["spawn": 10]))
        let lines = c.renderText().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            lines == [
                "significance: Welch's t-test p < 0.05 (n ≥ 3 on both sides) (~: not significant)",
                "thresholds: 5% (--fail-above), spawn 10%",
                "",
                "       base ±%stddev     %change         new ±%stddev  metric",
                "memfd 64M × 1000, share pt",
                "  100.0 MiB ±  1%         +11.0%   111.0 MiB ±  1%     page tables  REGRESSION  p<0.001",
                "     1.22 s ±  2%          +0.8%      1.23 s ±  5%     spawn        ~  p=0.805",
                "",
                "regressions: 1",
                "  memfd 64M × 1000, share pt: page tables +11.0% (threshold 5%, p<0.001)",
                "",
            ])
        #expect(c.exitCode == 1)
    }

    @Test func rendersMarkdown() {
        let c = one(sharedTables, base: [32, 32], new: [16, 16], thresholds: Thresholds())
        #expect(
            c.renderMarkdown() == """
                significance: disjoint min–max bands (fewer than 3 runs on a side) (~: not significant).

                thresholds: none (no metric can fail).

                ### memfd 64M × 1000, share pt

                | metric | base | ±%stddev | %change | new | ±%stddev | mark |
                |---|---:|---:|---:|---:|---:|---|
                | shared PTE tables | 32 | ±0% | -50.0% | 16 | ±0% | significant (bands disjoint) |

                regressions: none

                """)
    }

    @Test func methodLineNamesBothWhenMixed() {
        let c = Comparison.compare(
            base: [
                Sampled(point: point, metric: pageTables, values: [1, 2, 3]),
                Sampled(point: point, metric: spawn, values: [1]),
            ],
            new: [
                Sampled(point: point, metric: pageTables, values: [1, 2, 3]),
                Sampled(point: point, metric: spawn, values: [1]),
            ],
            thresholds: Thresholds())
        #expect(c.methods == [.welch, .bands])
        #expect(
            c.methodLine
                == "significance: Welch's t-test p < 0.05 where n ≥ 3 on both sides, else disjoint min–max bands")
    }

    @Test func valuesByUnit() {
        #expect(Comparison.format(25 * mib, .bytes) == "25.0 MiB")
        #expect(Comparison.format(1.23456, .seconds) == "1.23 s")
        #expect(Comparison.format(0.0123456, .seconds) == "0.0123 s")
        #expect(Comparison.format(9.996, .seconds) == "10.0 s")
        #expect(Comparison.format(850, .nanoseconds) == "850 ns")
        #expect(Comparison.format(15_400, .nanoseconds) == "15.4 µs")
        #expect(Comparison.format(1_256_000, .nanoseconds) == "1.26 ms")
        #expect(Comparison.format(2_500_000_000, .nanoseconds) == "2.50 s")
        #expect(Comparison.format(12.345, .percent) == "12.3%")
        #expect(Comparison.format(12345, .count) == "12345")
        #expect(Comparison.format(2.5, .count) == "2.50")
        #expect(Comparison.significantDigits(0.0009996, 3) == "0.00100")
        #expect(Comparison.significantDigits(-0.0123456, 3) == "-0.0123")
        // Past formatFixed's Int64 range (a near-zero base, --fail-above 1e300): printed, no trap.
        #expect(Comparison.formatChange(1e20) == "+1e+20%")
        #expect(Comparison.format(1e-300, .seconds) == "1e-300 s")
        #expect(Comparison.formatThreshold(1e300) == "1e+300")
    }
}
