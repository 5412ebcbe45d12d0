import Testing

@testable import PTShareCore

private let invalidTail =
    "': expected a number of bytes with an optional K, M, G or T suffix (binary units), e.g. 64M or 1G"

private func invalidMessage(_ s: String) -> String { "invalid size '" + s + invalidTail }

// MARK: - ByteSize

@Suite struct ByteSizeTests {
    static let valid: [(String, UInt64)] = [
        ("64M", UInt64(64) << 20),
        ("1G", UInt64(1) << 30),
        ("4096", 4096),
        ("2T", UInt64(2) << 40),
        ("64K", 64 << 10),
        ("64k", 64 << 10),
        ("64m", 64 << 20),
        ("1g", 1 << 30),
        ("1t", 1 << 40),
        ("64MiB", 64 << 20),
        ("64mib", 64 << 20),
        ("64KiB", 64 << 10),
        ("1GiB", 1 << 30),
        ("64MB", 64 << 20),
        ("64mb", 64 << 20),
        ("64B", 64),
        ("64b", 64),
        ("0", 0),
        (" 64M ", 64 << 20),
        ("\t1G\n", 1 << 30),
        ("16777215T", UInt64(16_777_215) << 40),  // (2^24 − 1) T: the largest whole-T value below 2^64
        ("18446744073709551615", UInt64.max),
    ]

    @Test(arguments: valid)
    func parsesValid(_ text: String, _ bytes: UInt64) throws {
        #expect(try ByteSize.parse(text) == ByteSize(bytes))
    }

    @Test(arguments: ["", "M", "64Q", "-1", "+1", "1.5G", "64 M", "0x10", "G64", "MiB", "B", "64MM", "٦٤M", " "])
    func rejectsInvalid(_ text: String) {
        #expect(throws: ByteSize.ParseError.invalid(text)) { try ByteSize.parse(text) }
    }

    @Test func invalidMessageText() {
        #expect(ByteSize.ParseError.invalid("64Q").description == invalidMessage("64Q"))
        #expect(
            ByteSize.ParseError.invalid("").description
                == "invalid size '': expected a number of bytes with an optional K, M, G or T suffix (binary units), e.g. 64M or 1G"
        )
        do {
            _ = try ByteSize.parse("64Q")
            Issue.record("64Q parsed")
        } catch {
            #expect(error.description == invalidMessage("64Q"))
        }
    }

    @Test(arguments: ["99999999999T", "16777216T", "18014398509481984K"])
    func overflow(_ text: String) {
        #expect(throws: ByteSize.ParseError.overflow(text)) { try ByteSize.parse(text) }
        #expect(ByteSize.ParseError.overflow(text).description == "invalid size '\(text)': larger than 2^64 bytes")
    }

    /// A plain number of bytes too large for 64 bits is just as much "larger than 2^64 bytes"
    /// as a suffixed one.
    @Test func overflowWithoutSuffix() {
        #expect(throws: ByteSize.ParseError.overflow("18446744073709551616")) {
            try ByteSize.parse("18446744073709551616")
        }
        #expect(throws: ByteSize.ParseError.overflow("99999999999999999999")) {
            try ByteSize.parse("99999999999999999999")
        }
    }

    @Test func description() {
        #expect(ByteSize(64 << 20).description == "64M")
        #expect(ByteSize(1 << 30).description == "1G")
        #expect(ByteSize(2 << 40).description == "2T")
        #expect(ByteSize(4096).description == "4K")
        #expect(ByteSize(4097).description == "4097")
        #expect(ByteSize(3 << 20).description == "3M")
        #expect(ByteSize(1536 << 10).description == "1536K")
        #expect(ByteSize(1023).description == "1023")
        #expect(ByteSize(0).description == "0")
        #expect("\(ByteSize(64 << 20))" == "64M")
    }

    @Test(arguments: [UInt64(4096), 4097, 64 << 20, 1 << 30, 3 << 40, 1536 << 10, 12345])
    func descriptionRoundTrips(_ bytes: UInt64) throws {
        #expect(try ByteSize.parse(ByteSize(bytes).description) == ByteSize(bytes))
    }

    @Test func human() {
        #expect(ByteSize.human(0) == "0 B")
        #expect(ByteSize.human(1023) == "1023 B")
        #expect(ByteSize.human(1024) == "1.0 KiB")
        #expect(ByteSize.human(1536) == "1.5 KiB")
        #expect(ByteSize.human(25 << 20) == "25.0 MiB")
        #expect(ByteSize.human(8_388_608) == "8.0 MiB")
        #expect(ByteSize.human(1 << 30) == "1.0 GiB")
        #expect(ByteSize.human(3 << 29) == "1.5 GiB")
        #expect(ByteSize.human(2 << 40) == "2048.0 GiB")
        #expect(ByteSize.human(-2048) == "-2.0 KiB")
        #expect(ByteSize.human(-5) == "-5 B")
        #expect(ByteSize.human(-(25 << 20)) == "-25.0 MiB")
        #expect(ByteSize.human(1_048_575) == "1024.0 KiB")
    }

    @Test func comparable() {
        #expect(ByteSize(1) < ByteSize(2))
        #expect(!(ByteSize(2) < ByteSize(2)))
    }
}

@Suite struct FormatFixedTests {
    @Test func formats() {
        #expect(formatFixed(1.25, decimals: 1) == "1.3")
        #expect(formatFixed(3.14159, decimals: 2) == "3.14")
        #expect(formatFixed(2.5, decimals: 0) == "3")
        #expect(formatFixed(-1.5, decimals: 0) == "-2")
        #expect(formatFixed(12, decimals: 3) == "12.000")
        #expect(formatFixed(0.001, decimals: 3) == "0.001")
        #expect(formatFixed(0.05, decimals: 2) == "0.05")
        #expect(formatFixed(10.0, decimals: 1) == "10.0")
        #expect(formatFixed(-12.34, decimals: 1) == "-12.3")
        #expect(formatFixed(0, decimals: 1) == "0.0")
        #expect(formatFixed(0.96, decimals: 1) == "1.0")
        #expect(formatFixed(99.99, decimals: 1) == "100.0")
    }

    @Test func negativeThatRoundsToZeroHasNoSign() {
        #expect(formatFixed(-0.04, decimals: 1) == "0.0")
        #expect(formatFixed(-0.0, decimals: 2) == "0.00")
        #expect(formatFixed(-0.4, decimals: 0) == "0")
    }

    @Test func nonFinite() {
        #expect(formatFixed(.infinity, decimals: 1) == "inf")
        #expect(formatFixed(-.infinity, decimals: 1) == "-inf")
        #expect(formatFixed(.nan, decimals: 1) == "nan")
    }
}

// MARK: - AddressMode, MapSharedPT

@Suite struct AddressModeTests {
    @Test func parses() {
        #expect(AddressMode.parse("auto") == .auto)
        #expect(AddressMode.parse("same") == .same)
        #expect(AddressMode.parse("0x7f0000000000") == .fixed(0x7f00_0000_0000))
        #expect(AddressMode.parse("0x7F0000000000") == .fixed(0x7f00_0000_0000))
        #expect(AddressMode.parse("0x1000") == .fixed(0x1000))
    }

    @Test(arguments: ["", "nowhere", "Auto", "0x", "0x0", "0xzz", "7f0000000000", "0x10000000000000000", "1234"])
    func rejects(_ s: String) {
        #expect(AddressMode.parse(s) == nil)
    }

    @Test func description() {
        #expect(AddressMode.auto.description == "auto")
        #expect(AddressMode.same.description == "same")
        #expect(AddressMode.fixed(0x7f00_0020_0000).description == "0x7f0000200000")
    }
}

@Suite struct MapSharedPTTests {
    @Test func defaults() {
        #expect(MapSharedPT.defaultValue == 0x200000)
        #expect(MapSharedPT.environmentVariable == "PTSHARE_MAP_SHARED_PT")
    }

    @Test func acceptsFreeBits() {
        #expect(MapSharedPT.parse("0x200000") == .success(0x200000))
        #expect(MapSharedPT.parse("0X200000") == .success(0x200000))
        #expect(MapSharedPT.parse("0x400000") == .success(0x400000))
        #expect(MapSharedPT.parse("0x2000000") == .success(0x2000000))
    }

    @Test(arguments: ["200000", "", "0x", "0x0", "0xzz", "2097152", "0x100000000"])
    func rejectsNonHex(_ s: String) {
        #expect(
            MapSharedPT.parse(s)
                == .failure(.init("MAP_SHARED_PT value '\(s)' is not a hexadecimal flag like 0x200000")))
    }

    @Test func rejectsMultipleBits() {
        #expect(
            MapSharedPT.parse("0x3") == .failure(.init("MAP_SHARED_PT value 0x3 must be a single bit, like 0x200000")))
        #expect(
            MapSharedPT.parse("0x600000")
                == .failure(.init("MAP_SHARED_PT value 0x600000 must be a single bit, like 0x200000")))
    }

    @Test func rejectsDefinedBits() {
        #expect(
            MapSharedPT.parse("0x40000")
                == .failure(
                    .init(
                        "MAP_SHARED_PT value 0x40000 collides with MAP_HUGETLB; pick a bit the kernel does not define, like 0x200000"
                    )))
        #expect(
            MapSharedPT.parse("0x1")
                == .failure(
                    .init(
                        "MAP_SHARED_PT value 0x1 collides with the MAP_TYPE field (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_DROPPABLE); pick a bit the kernel does not define, like 0x200000"
                    )))
        #expect(
            MapSharedPT.parse("0x100000")
                == .failure(
                    .init(
                        "MAP_SHARED_PT value 0x100000 collides with MAP_FIXED_NOREPLACE; pick a bit the kernel does not define, like 0x200000"
                    )))
        #expect(
            MapSharedPT.parse("0x80000000")
                == .failure(
                    .init(
                        "MAP_SHARED_PT value 0x80000000 collides with MAP_HUGE_* size bits; pick a bit the kernel does not define, like 0x200000"
                    )))
    }

    /// Bits the kernel uses on x86-64 but `definedBits` does not list: 0x04 and 0x08 lie in the
    /// MAP_TYPE field (0x0f; MAP_DROPPABLE = 0x08 since Linux 6.11), 0x80 is MAP_ABOVE4G (x86,
    /// Linux 6.4). None of them can be a MAP_SHARED_PT value.
    @Test(arguments: ["0x4", "0x8", "0x80"])
    func rejectsOtherBitsTheKernelDefines(_ s: String) {
        guard case .failure = MapSharedPT.parse(s) else {
            Issue.record("MAP_SHARED_PT value \(s) accepted, but the kernel already defines that bit")
            return
        }
    }
}

// MARK: - Scenario.validate

@Suite struct ScenarioValidationTests {
    private func message(_ s: Scenario) -> String? {
        do {
            try s.validate()
            return nil
        } catch {
            return error.description
        }
    }

    private func base(
        backing: Backing = .memfd, path: String? = nil, size: UInt64 = 64 << 20, workers: Int = 64,
        share: ShareMode = .none, address: AddressMode = .auto, tolerance: Double = 0.10
    ) -> Scenario {
        Scenario(
            backing: backing, path: path, size: size, workers: workers, share: share, address: address,
            tolerance: tolerance)
    }

    @Test func defaults() {
        let s = Scenario(backing: .memfd, size: 64 << 20, workers: 64)
        #expect(s.share == .none)
        #expect(s.touch == .populate)
        #expect(s.address == .auto)
        #expect(s.mapSharedPTValue == 0x200000)
        #expect(s.tolerance == 0.10)
        #expect(s.path == nil)
        #expect(Scenario.maxWorkers == 100_000)
    }

    @Test func validScenarios() {
        #expect(message(base()) == nil)
        #expect(message(base(workers: 1)) == nil)
        #expect(message(base(workers: 100_000)) == nil)
        #expect(message(base(size: 4096)) == nil)
        #expect(message(base(backing: .tmpfs, path: "/dev/shm")) == nil)
        #expect(message(base(backing: .hugetlbfs, path: "/mnt/huge", size: 1 << 30)) == nil)
        #expect(message(base(share: .pt, address: .fixed(0x7f00_0020_0000))) == nil)
        #expect(message(base(share: .pt, address: .same)) == nil)
        #expect(message(base(address: .fixed(0x7f00_0000_1000))) == nil)
        #expect(message(base(tolerance: 0.999)) == nil)
        #expect(message(base(backing: .anonShared)) == nil)
    }

    @Test func workersOutOfRange() {
        #expect(message(base(workers: 0)) == "--workers 0: must be between 1 and 100000")
        #expect(message(base(workers: 100_001)) == "--workers 100001: must be between 1 and 100000")
        #expect(message(base(workers: -3)) == "--workers -3: must be between 1 and 100000")
    }

    @Test func sizeZero() {
        #expect(message(base(size: 0)) == "--size 0: the mapping needs at least one page")
    }

    @Test func sizeNotPageMultiple() {
        #expect(message(base(size: 4097)) == "--size 4097: must be a multiple of the 4 KiB page size")
        #expect(message(base(size: 1536)) == "--size 1536: must be a multiple of the 4 KiB page size")
        // The size is spelled the way ByteSize writes it.
        #expect(message(base(size: 2048 + (64 << 20))) == "--size 65538K: must be a multiple of the 4 KiB page size")
        #expect(message(base(size: 6 << 10)) == "--size 6K: must be a multiple of the 4 KiB page size")
    }

    @Test func toleranceOutOfRange() {
        #expect(message(base(tolerance: 0)) == "--tolerance 0.0: must be between 0 and 1 (0.10 = 10 %)")
        #expect(message(base(tolerance: 1)) == "--tolerance 1.0: must be between 0 and 1 (0.10 = 10 %)")
        #expect(message(base(tolerance: 2)) == "--tolerance 2.0: must be between 0 and 1 (0.10 = 10 %)")
        #expect(message(base(tolerance: -0.5)) == "--tolerance -0.5: must be between 0 and 1 (0.10 = 10 %)")
        #expect(message(base(tolerance: .nan)) == "--tolerance nan: must be between 0 and 1 (0.10 = 10 %)")
    }

    /// A DAX file is valid here; which mount and whether the file is DAX are preflight's.
    @Test func dax() {
        #expect(message(base(backing: .dax)) == nil)
        #expect(message(base(backing: .dax, path: "/mnt/pmem")) == nil)
    }

    @Test func pathWithoutFileBacking() {
        #expect(
            message(base(backing: .memfd, path: "/tmp"))
                == "--path is for file backings (tmpfs, hugetlbfs, dax), not --backing memfd")
        #expect(
            message(base(backing: .anonShared, path: "/tmp"))
                == "--path is for file backings (tmpfs, hugetlbfs, dax), not --backing anon-shared")
    }

    @Test func sharedPTNeedsPMDMultipleSize() {
        #expect(
            message(base(size: 3 << 20, share: .pt))
                == "--size 3M: --share pt (MAP_SHARED_PT) needs a multiple of 2M (the PMD size)")
        #expect(
            message(base(size: 4096, share: .pt))
                == "--size 4K: --share pt (MAP_SHARED_PT) needs a multiple of 2M (the PMD size)")
        // Without pt, 3M is fine.
        #expect(message(base(size: 3 << 20)) == nil)
    }

    @Test func sharedPTNeedsPMDAlignedAddress() {
        #expect(
            message(base(share: .pt, address: .fixed(0x7f00_0000_1000)))
                == "--address 0x7f0000001000: --share pt (MAP_SHARED_PT) needs a multiple of 0x200000 (the PMD size)")
    }

    @Test func fixedAddressNotPageAligned() {
        #expect(
            message(base(address: .fixed(0x7f00_0000_0001)))
                == "--address 0x7f0000000001: must be a multiple of the 4 KiB page size")
    }

    @Test func checksRunInOrder() {
        // Workers first, then size, then tolerance, then backing.
        #expect(message(base(size: 0, workers: 0)) == "--workers 0: must be between 1 and 100000")
        #expect(message(base(size: 0, tolerance: 5)) == "--size 0: the mapping needs at least one page")
        #expect(
            message(base(backing: .dax, tolerance: 5)) == "--tolerance 5.0: must be between 0 and 1 (0.10 = 10 %)")
    }
}

// MARK: - Verdict

@Suite struct VerdictTests {
    private func model(expected: Int64) -> ModelResult {
        ModelResult(
            expectedPageTableBytes: expected, unsharedPageTableBytes: expected, perWorkerBytes: 0, sharedBytes: 0,
            levels: [], reason: "test")
    }

    private let unstableSuffix = "; PageTables did not settle while sampling (another process allocating page tables?)"

    @Test func exitCodes() {
        #expect(VerdictStatus.pass.exitCode == 0)
        #expect(VerdictStatus.fail.exitCode == 1)
        #expect(VerdictStatus.skip.exitCode == 4)
    }

    /// Expected 0 with 100 workers: the floor is 100 × 4096 = 409,600 bytes, allowed =
    /// 409,600 × 0.10 = 40,960 bytes.
    @Test func perWorkerFloorWhenModelExpectsNothing() {
        let m = model(expected: 0)
        let atLimit = Verdict.judge(attributed: 40_960, model: m, workers: 100, tolerance: 0.10, samplingStable: true)
        #expect(atLimit.status == .pass)
        #expect(atLimit.allowedDeviationBytes == 40_960)
        #expect(atLimit.reason == "measured 40.0 KiB vs model 0 B: deviation 40.0 KiB, allowed ±40.0 KiB")

        let over = Verdict.judge(attributed: 40_961, model: m, workers: 100, tolerance: 0.10, samplingStable: true)
        #expect(over.status == .fail)
        #expect(over.allowedDeviationBytes == 40_960)

        let negative = Verdict.judge(attributed: -40_960, model: m, workers: 100, tolerance: 0.10, samplingStable: true)
        #expect(negative.status == .pass)
        let negativeOver = Verdict.judge(
            attributed: -40_961, model: m, workers: 100, tolerance: 0.10, samplingStable: true)
        #expect(negativeOver.status == .fail)

        // "Shared" (≈0) against "one page each" (409,600) is told apart.
        let onePageEach = Verdict.judge(
            attributed: 409_600, model: m, workers: 100, tolerance: 0.10, samplingStable: true)
        #expect(onePageEach.status == .fail)
    }

    /// Expected 8 MiB (64 × 32 × 4096) with 64 workers: the floor (262,144) is below it, so
    /// allowed = 8,388,608 × 0.10 = 838,860.8 → 838,861.
    @Test func relativeToleranceAboveTheFloor() {
        let m = model(expected: 8_388_608)
        let up = Verdict.judge(
            attributed: 8_388_608 + 838_861, model: m, workers: 64, tolerance: 0.10, samplingStable: true)
        #expect(up.status == .pass)
        #expect(up.allowedDeviationBytes == 838_861)
        #expect(up.reason == "measured 8.8 MiB vs model 8.0 MiB: deviation 819.2 KiB (10.0 %), allowed ±819.2 KiB")

        let upOver = Verdict.judge(
            attributed: 8_388_608 + 838_862, model: m, workers: 64, tolerance: 0.10, samplingStable: true)
        #expect(upOver.status == .fail)

        let down = Verdict.judge(
            attributed: 8_388_608 - 838_861, model: m, workers: 64, tolerance: 0.10, samplingStable: true)
        #expect(down.status == .pass)
        #expect(down.reason == "measured 7.2 MiB vs model 8.0 MiB: deviation -819.2 KiB (-10.0 %), allowed ±819.2 KiB")
        let downOver = Verdict.judge(
            attributed: 8_388_608 - 838_862, model: m, workers: 64, tolerance: 0.10, samplingStable: true)
        #expect(downOver.status == .fail)

        let exact = Verdict.judge(attributed: 8_388_608, model: m, workers: 64, tolerance: 0.10, samplingStable: true)
        #expect(exact.status == .pass)
        #expect(exact.reason == "measured 8.0 MiB vs model 8.0 MiB: deviation 0 B (0.0 %), allowed ±819.2 KiB")
    }

    /// Expected just under the floor: the floor wins.
    @Test func floorWinsWhenExpectedIsSmall() {
        // 200 workers, hugetlb PMD sharing: expected 4096; floor 819,200 × 0.10 = 81,920.
        let m = model(expected: 4096)
        let v = Verdict.judge(attributed: 4096 + 81_920, model: m, workers: 200, tolerance: 0.10, samplingStable: true)
        #expect(v.allowedDeviationBytes == 81_920)
        #expect(v.status == .pass)
        let w = Verdict.judge(attributed: 4096 + 81_921, model: m, workers: 200, tolerance: 0.10, samplingStable: true)
        #expect(w.status == .fail)
    }

    /// A measurement whose PageTables never settled supports no verdict: SKIP, within the
    /// tolerance or not, with the reason.
    @Test func unstableSamplingIsASkip() {
        let m = model(expected: 0)
        let within = Verdict.judge(attributed: 0, model: m, workers: 100, tolerance: 0.10, samplingStable: false)
        #expect(within.status == .skip)
        #expect(within.reason == "measured 0 B vs model 0 B: deviation 0 B, allowed ±40.0 KiB" + unstableSuffix)
        let outside = Verdict.judge(attributed: 1 << 20, model: m, workers: 100, tolerance: 0.10, samplingStable: false)
        #expect(outside.status == .skip)
        #expect(outside.reason.hasSuffix(unstableSuffix))
        let stable = Verdict.judge(attributed: 0, model: m, workers: 100, tolerance: 0.10, samplingStable: true)
        #expect(!stable.reason.contains("did not settle"))
    }
}

@Suite struct SavingsTests {
    @Test func fraction() {
        let s = Savings(baseline: 1000, measured: 250)
        #expect(s.baselineAttributedBytes == 1000)
        #expect(s.attributedBytes == 250)
        #expect(s.fraction == 0.75)
        #expect(Savings(baseline: 1000, measured: 1000).fraction == 0)
        #expect(Savings(baseline: 1000, measured: 0).fraction == 1)
        #expect(Savings(baseline: 1000, measured: 1500).fraction == -0.5)
    }

    @Test func noBaseline() {
        #expect(Savings(baseline: 0, measured: 100).fraction == nil)
        #expect(Savings(baseline: -5, measured: 100).fraction == nil)
    }
}

// MARK: - Runner.sampleIndices, RunReport.Stats, Preflight

@Suite struct SampleIndicesTests {
    @Test func spreadsEvenly() {
        #expect(Runner.sampleIndices(workers: 10, count: 4) == [0, 3, 6, 9])
        #expect(Runner.sampleIndices(workers: 10, count: 3) == [0, 4, 9])
        #expect(Runner.sampleIndices(workers: 10, count: 2) == [0, 9])
        #expect(Runner.sampleIndices(workers: 200, count: 8) == [0, 28, 56, 85, 113, 142, 170, 199])
    }

    @Test func edges() {
        #expect(Runner.sampleIndices(workers: 10, count: 0) == [])
        #expect(Runner.sampleIndices(workers: 10, count: -1) == [])
        #expect(Runner.sampleIndices(workers: 0, count: 4) == [])
        #expect(Runner.sampleIndices(workers: 10, count: 10) == Array(0..<10))
        #expect(Runner.sampleIndices(workers: 10, count: 50) == Array(0..<10))
        #expect(Runner.sampleIndices(workers: 10, count: 1) == [0])
        #expect(Runner.sampleIndices(workers: 1, count: 1) == [0])
        #expect(Runner.sampleIndices(workers: 1, count: 8) == [0])
    }

    @Test(arguments: [(2, 1), (7, 3), (64, 8), (100_000, 8), (9, 8)])
    func distinctSortedInRange(_ workers: Int, _ count: Int) {
        let idx = Runner.sampleIndices(workers: workers, count: count)
        #expect(idx.count == min(count, workers))
        #expect(idx == idx.sorted())
        #expect(Set(idx).count == idx.count)
        #expect(idx.allSatisfy { $0 >= 0 && $0 < workers })
        #expect(idx.first == 0)
    }
}

@Suite struct StatsTests {
    @Test func knownList() {
        let s = RunReport.Stats([5, 1, 3, 2, 4])
        #expect(s.min == 1)
        #expect(s.max == 5)
        #expect(s.median == 3)
        #expect(s.p99 == 5)
        #expect(s.mean == 3)
    }

    @Test func hundredValues() {
        // 1…100: median is the upper middle (index 50 → 51), p99 by nearest rank is the 99th
        // value (99), mean 5050 / 100 = 50 (integer division).
        let s = RunReport.Stats(Array(1...100).reversed())
        #expect(s.min == 1)
        #expect(s.max == 100)
        #expect(s.median == 51)
        #expect(s.p99 == 99)
        #expect(s.mean == 50)
    }

    @Test func twoHundredValues() {
        let s = RunReport.Stats(Array(1...200))
        #expect(s.p99 == 198)
        #expect(s.median == 101)
    }

    @Test func singleValue() {
        let s = RunReport.Stats([42])
        #expect(s.min == 42)
        #expect(s.max == 42)
        #expect(s.median == 42)
        #expect(s.p99 == 42)
        #expect(s.mean == 42)
    }

    @Test func empty() {
        let s = RunReport.Stats([])
        #expect(s.min == 0)
        #expect(s.max == 0)
        #expect(s.median == 0)
        #expect(s.p99 == 0)
        #expect(s.mean == 0)
    }
}

@Suite struct PreflightTests {
    @Test func worstCaseTableBytes() {
        // 4 KiB leaves, 1 GiB: PTE ⌈1G/2M⌉ + 1 = 513, PMD 1 + 1 = 2, PUD 1 + 1 = 2: 517 pages.
        #expect(Preflight.worstCaseTableBytes(size: 1 << 30, leafSize: 4096) == 517 * 4096)
        // 4 KiB leaves, 64 MiB: 33 + 2 + 2 = 37 pages.
        #expect(Preflight.worstCaseTableBytes(size: 64 << 20, leafSize: 4096) == 37 * 4096)
        // 4 KiB leaves, 4 KiB: 2 + 2 + 2 = 6 pages.
        #expect(Preflight.worstCaseTableBytes(size: 4096, leafSize: 4096) == 6 * 4096)
        // 4 KiB leaves, 3 MiB: ⌈3/2⌉ + 1 = 3, 2, 2: 7 pages.
        #expect(Preflight.worstCaseTableBytes(size: 3 << 20, leafSize: 4096) == 7 * 4096)
        // 2 MiB leaves, 1 GiB: PMD 2, PUD 2: 4 pages.
        #expect(Preflight.worstCaseTableBytes(size: 1 << 30, leafSize: 2 << 20) == 4 * 4096)
        // 1 GiB leaves, 2 GiB: PUD 1 + 1 = 2 pages.
        #expect(Preflight.worstCaseTableBytes(size: 2 << 30, leafSize: 1 << 30) == 2 * 4096)
    }

    /// The worst case is never below what the model computes for one unshared worker.
    @Test(arguments: [UInt64(4096), 1 << 20, 64 << 20, 1 << 30, 3 << 30])
    func boundsTheModel(_ size: UInt64) {
        for offset: UInt64 in [0, 4096, 2 << 20, (1 << 30) - 4096] {
            let r = PageTableModel.expected(
                ModelInput(
                    workers: 1, address: 0x7f00_0000_0000 + offset, size: size, leafSize: 4096, touched: true,
                    share: .none))
            #expect(UInt64(r.unsharedPageTableBytes) <= Preflight.worstCaseTableBytes(size: size, leafSize: 4096))
        }
    }

    @Test func overheadConstant() {
        #expect(Preflight.perWorkerOverheadBytes == 192 * 1024)
    }
}
