import Testing

@testable import PTShareCore

/// A small report as a 64 MiB × 4-worker MAP_SHARED_PT run would produce it, built by hand.
private func sampleReport(smaps: Bool = true) -> RunReport {
    let page: UInt64 = 4096
    func point(_ pageTables: UInt64) -> RunReport.MeminfoPoint {
        RunReport.MeminfoPoint(
            Meminfo(fields: [
                "PageTables": pageTables, "SecPageTables": 0, "Shmem": 64 << 20, "Mapped": 70 << 20,
                "MemAvailable": 20 << 30, "HugePages_Total": 0, "HugePages_Free": 0, "HugePages_Rsvd": 0,
                "HugePages_Surp": 0,
            ]))
    }
    func sampling(_ pageTables: UInt64, stable: Bool = true) -> RunReport.Sampling {
        RunReport.Sampling(
            StableSample(
                meminfo: Meminfo(fields: ["PageTables": pageTables]), pageTablesSamples: [pageTables, pageTables],
                stable: stable, spreadBytes: 0, milliseconds: 50, statRefresh: true))
    }
    let model = PageTableModel.expected(
        ModelInput(
            workers: 4, address: 0x7f00_0020_0000, size: 64 << 20, leafSize: 4096, touched: true, share: .pt,
            occupied: [0x7f00_0000_0000..<0x7f00_0000_1000]))
    let measured = RunReport.Measured(
        pageTablesDeltaBytes: 400 * 1024, controlPageTablesDeltaBytes: 256 * 1024,
        attributedPageTableBytes: 144 * 1024, attributedPerWorkerBytes: 36 * 1024, controlPerWorkerBytes: 64 * 1024,
        driverVmpteBytes: .init(base: 200 * 1024, control: 200 * 1024, mapped: 204 * 1024),
        vmpteSumBytes: 1024 * 1024, vmpteControlSumBytes: 256 * 1024, vmpteAttributedBytes: 768 * 1024,
        mappingAddress: "0x7f0000200000", distinctMappingAddresses: 1,
        meminfo: .init(base: point(1_000_000), control: point(1_262_144), mapped: point(1_409_600)),
        sampling: .init(base: sampling(1_000_000), control: sampling(1_262_144), mapped: sampling(1_409_600)),
        numaNodes: [
            .init(node: 0, pageTables: .init(base: 1_000_000, control: 1_262_144, mapped: nil), attributedBytes: nil)
        ],
        smaps: smaps
            ? .init(
                workersSampled: [0, 3], range: ["Rss": 64 << 20, "KernelPageSize": 4096, "AnonHugePages": 0],
                rollup: ["Rss": 70 << 20, "Pss_Shmem": 16 << 20], vmFlags: ["rd", "wr", "sh", "mr"])
            : nil)
    return RunReport(
        tool: .init(version: "0.1.0-test"),
        kernel: .init(
            release: "6.18.44-ptshare", machine: "x86_64",
            hugetlbPmdSharing: .init(
                enabled: true, basis: "CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING =y in /proc/config.gz"),
            shmemThp: "never"),
        scenario: .init(
            backing: "memfd", object: "memfd:ptshare", sizeBytes: 64 << 20, workers: 4, share: "pt",
            touch: "populate", address: "same", mapSharedPtValue: "0x200000", mmapFlags: "0x300003",
            leafPageSizeBytes: page, tolerance: 0.1),
        measured: measured,
        model: .init(
            expectedPageTableBytes: model.expectedPageTableBytes, unsharedPageTableBytes: model.unsharedPageTableBytes,
            perWorkerBytes: model.perWorkerBytes, sharedBytes: model.sharedBytes, levels: model.levels,
            reason: model.reason, occupiedRanges: 1, pmdMappedBytes: 0),
        timings: .init(
            spawnSeconds: 0.125, mapTouchSeconds: 0.5, readySeconds: 0.625, measureSeconds: 0.25,
            teardownSeconds: 0.0625,
            mapNs: .init([1000, 2000, 3000]), touchNs: .init([10_000, 20_000])),
        verdict: .pass,
        reason: "measured 144.0 KiB vs model 128.0 KiB",
        allowedDeviationBytes: 16_384)
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite struct ReportJSONTests {
    @Test func encodesSnakeCaseKeys() throws {
        let json = text(try JSONOutput.encode(sampleReport()))
        #expect(json.hasSuffix("}\n"))
        for needle in [
            "\"schema\" : \"ptshare.run.v1\"",
            "\"page_tables_delta_bytes\" : 409600",
            "\"control_page_tables_delta_bytes\" : 262144",
            "\"attributed_page_table_bytes\" : 147456",
            "\"vmpte_sum_bytes\" : 1048576",
            "\"expected_page_table_bytes\" : ",
            "\"size_bytes\" : 67108864",
            "\"map_shared_pt_value\" : \"0x200000\"",
            "\"hugetlb_pmd_sharing\" : {",
            "\"leaf_page_size_bytes\" : 4096",
            "\"allowed_deviation_bytes\" : 16384",
            "\"verdict\" : \"pass\"",
            "\"already_present\" : ",
            "\"per_worker_pages\" : ",
            "\"map_ns\" : {",
            "\"p99\" : 3000",
            "\"release\" : \"6.18.44-ptshare\"",
        ] {
            #expect(json.contains(needle), "missing \(needle)")
        }
        // No camelCase property name leaks through.
        for camel in [
            "pageTablesDeltaBytes", "sizeBytes", "mapSharedPtValue", "vmpteSumBytes", "expectedPageTableBytes",
        ] {
            #expect(!json.contains("\"\(camel)\""), "camelCase key \(camel)")
        }
        // Keys are sorted: "allowed_deviation_bytes" comes before "kernel", "kernel" before "verdict".
        let a = try #require(json.range(of: "\"allowed_deviation_bytes\""))
        let k = try #require(json.range(of: "\"kernel\""))
        let v = try #require(json.range(of: "\"verdict\""))
        #expect(a.lowerBound < k.lowerBound && k.lowerBound < v.lowerBound)
    }

    @Test func schemaName() {
        #expect(RunReport.schemaName == "ptshare.run.v1")
        #expect(sampleReport().schema == "ptshare.run.v1")
        #expect(sampleReport().tool.name == "ptshare")
    }

    @Test func roundTripsWithoutSmaps() throws {
        let original = sampleReport(smaps: false)
        let bytes = try JSONOutput.encode(original)
        let back = try JSONOutput.decodeRun(bytes)
        try checkEqual(original, back)
        #expect(try JSONOutput.encode(back) == bytes)
    }

    /// The smaps dictionaries are keyed by the kernel's field names ("Rss", "KernelPageSize",
    /// "Pss_Shmem"); TextReport looks them up by those names, so they must survive a round trip.
    @Test func roundTripsSmapsFieldNames() throws {
        let original = sampleReport(smaps: true)
        let bytes = try JSONOutput.encode(original)
        let back = try JSONOutput.decodeRun(bytes)
        try checkEqual(original, back)
        let sm = try #require(back.measured.smaps)
        #expect(sm.range == original.measured.smaps?.range)
        #expect(sm.rollup == original.measured.smaps?.rollup)
        #expect(sm.range["KernelPageSize"] == 4096)
        #expect(try JSONOutput.encode(back) == bytes)
    }

    private func checkEqual(_ a: RunReport, _ b: RunReport) throws {
        #expect(b.schema == a.schema)
        #expect(b.tool.name == a.tool.name && b.tool.version == a.tool.version)
        #expect(b.kernel.release == a.kernel.release)
        #expect(b.kernel.machine == a.kernel.machine)
        #expect(b.kernel.hugetlbPmdSharing?.enabled == a.kernel.hugetlbPmdSharing?.enabled)
        #expect(b.kernel.hugetlbPmdSharing?.basis == a.kernel.hugetlbPmdSharing?.basis)
        #expect(b.kernel.shmemThp == a.kernel.shmemThp)

        let (sa, sb) = (a.scenario, b.scenario)
        #expect(sb.backing == sa.backing)
        #expect(sb.object == sa.object)
        #expect(sb.sizeBytes == sa.sizeBytes)
        #expect(sb.workers == sa.workers)
        #expect(sb.share == sa.share)
        #expect(sb.touch == sa.touch)
        #expect(sb.address == sa.address)
        #expect(sb.mapSharedPtValue == sa.mapSharedPtValue)
        #expect(sb.mmapFlags == sa.mmapFlags)
        #expect(sb.leafPageSizeBytes == sa.leafPageSizeBytes)
        #expect(sb.tolerance == sa.tolerance)

        let (ma, mb) = (a.measured, b.measured)
        #expect(mb.pageTablesDeltaBytes == ma.pageTablesDeltaBytes)
        #expect(mb.controlPageTablesDeltaBytes == ma.controlPageTablesDeltaBytes)
        #expect(mb.attributedPageTableBytes == ma.attributedPageTableBytes)
        #expect(mb.attributedPerWorkerBytes == ma.attributedPerWorkerBytes)
        #expect(mb.controlPerWorkerBytes == ma.controlPerWorkerBytes)
        #expect(mb.vmpteSumBytes == ma.vmpteSumBytes)
        #expect(mb.vmpteControlSumBytes == ma.vmpteControlSumBytes)
        #expect(mb.vmpteAttributedBytes == ma.vmpteAttributedBytes)
        #expect(mb.mappingAddress == ma.mappingAddress)
        #expect(mb.distinctMappingAddresses == ma.distinctMappingAddresses)
        #expect(mb.meminfo.mapped.pageTables == ma.meminfo.mapped.pageTables)
        #expect(mb.meminfo.base.memAvailable == ma.meminfo.base.memAvailable)
        #expect(mb.meminfo.control.hugePagesRsvd == ma.meminfo.control.hugePagesRsvd)
        #expect(mb.sampling.mapped.pageTablesSamples == ma.sampling.mapped.pageTablesSamples)
        #expect(mb.sampling.control.stable == ma.sampling.control.stable)
        #expect(mb.sampling.base.milliseconds == ma.sampling.base.milliseconds)
        #expect(mb.numaNodes.map(\.node) == ma.numaNodes.map(\.node))
        #expect(mb.numaNodes.map(\.pageTables.mapped) == ma.numaNodes.map(\.pageTables.mapped))
        #expect(mb.numaNodes.map(\.pageTables.control) == ma.numaNodes.map(\.pageTables.control))
        #expect(mb.numaNodes.map(\.attributedBytes) == ma.numaNodes.map(\.attributedBytes))
        #expect(mb.smaps?.workersSampled == ma.smaps?.workersSampled)
        #expect(mb.smaps?.vmFlags == ma.smaps?.vmFlags)

        #expect(b.model.expectedPageTableBytes == a.model.expectedPageTableBytes)
        #expect(b.model.unsharedPageTableBytes == a.model.unsharedPageTableBytes)
        #expect(b.model.perWorkerBytes == a.model.perWorkerBytes)
        #expect(b.model.sharedBytes == a.model.sharedBytes)
        #expect(b.model.levels == a.model.levels)
        #expect(b.model.reason == a.model.reason)
        #expect(b.model.occupiedRanges == a.model.occupiedRanges)
        #expect(b.model.pmdMappedBytes == a.model.pmdMappedBytes)

        #expect(b.timings.spawnSeconds == a.timings.spawnSeconds)
        #expect(b.timings.mapTouchSeconds == a.timings.mapTouchSeconds)
        #expect(b.timings.readySeconds == a.timings.readySeconds)
        #expect(b.timings.measureSeconds == a.timings.measureSeconds)
        #expect(b.timings.teardownSeconds == a.timings.teardownSeconds)
        #expect(b.timings.mapNs.median == a.timings.mapNs.median)
        #expect(b.timings.mapNs.p99 == a.timings.mapNs.p99)
        #expect(b.timings.touchNs.mean == a.timings.touchNs.mean)
        #expect(b.timings.touchNs.max == a.timings.touchNs.max)

        #expect(b.verdict == a.verdict)
        #expect(b.reason == a.reason)
        #expect(b.allowedDeviationBytes == a.allowedDeviationBytes)
    }

    @Test func rejectsOtherDocuments() {
        #expect(throws: (any Error).self) { try JSONOutput.decodeRun(Array("{}".utf8)) }
        #expect(throws: (any Error).self) { try JSONOutput.decodeRun(Array("not json".utf8)) }
    }
}

@Suite struct TextReportTests {
    @Test func rendersVerdictAndRows() {
        let r = sampleReport()
        let out = TextReport.render(r)
        #expect(out.hasSuffix("\n"))
        #expect(out.contains("verdict: PASS"))
        #expect(out.contains("verdict: PASS: measured 144.0 KiB vs model 128.0 KiB\n"))
        #expect(
            out.hasPrefix(
                "ptshare run: memfd 64M × 4 workers, share pt, touch populate, address same (mapped at 0x7f0000200000)\n"
            ))
        #expect(out.contains("kernel 6.18.44-ptshare (x86_64), leaf pages 4.0 KiB, mmap flags 0x300003"))
        #expect(out.contains("hugetlb PMD sharing: on (CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING =y in /proc/config.gz)"))
        #expect(out.contains("attributed: raw - control"))
        #expect(out.contains("model: " + r.model.reason))
        #expect(out.contains("node 0 PageTables attributed: n/a"))
        #expect(out.contains("smaps of the range (mean of 2 workers): Rss 64.0 MiB"))
        #expect(out.contains("KernelPageSize 4.0 KiB, MMUPageSize n/a"))
        #expect(out.contains("timings: spawn 0.13 s, map+touch 0.50 s (ready 0.63 s), measure 0.25 s, teardown 0.06 s"))
        #expect(out.contains("per worker mmap p50 2 µs p99 3 µs, touch p50 20 µs p99 20 µs"))
        #expect(!out.contains("warning: PageTables did not settle"))
    }

    @Test func rendersFailAndUnstableWarning() {
        var r = sampleReport(smaps: false)
        r.verdict = .fail
        r.reason = "too much"
        r.measured.sampling.mapped.stable = false
        let out = TextReport.render(r)
        #expect(out.contains("verdict: FAIL: too much"))
        #expect(out.contains("warning: PageTables did not settle at every sampling point"))
        #expect(!out.contains("smaps of the range"))
    }
}

/// The after-teardown point: in the JSON under the documented keys, and a line of the text.
@Suite struct TeardownReportTests {
    func report(after: UInt64, stable: Bool = true) -> RunReport {
        var r = sampleReport()
        r.measured.meminfo.afterTeardown = RunReport.MeminfoPoint(Meminfo(fields: ["PageTables": after]))
        r.measured.sampling.afterTeardown = RunReport.Sampling(
            StableSample(
                meminfo: Meminfo(fields: ["PageTables": after]), pageTablesSamples: [after], stable: stable,
                spreadBytes: 0, milliseconds: 300, statRefresh: true))
        r.measured.driverVmpteBytes.afterTeardown = 204 * 1024
        // Base 1_000_000, driver +4 KiB since: 1_004_096 is clean, 16 KiB more is a leak.
        r.measured.teardownLeakBytes = Int64(after) - 1_000_000 - 4096
        r.measured.teardownNoiseBytes = 8192
        return r
    }

    @Test func jsonCarriesTheAfterTeardownPoint() throws {
        let json = text(try JSONOutput.encode(report(after: 1_020_480)))
        for needle in [
            "\"after_teardown\" : {", "\"teardown_leak_bytes\" : 16384", "\"teardown_noise_bytes\" : 8192",
            "\"after_teardown\" : 208896",
        ] {
            #expect(json.contains(needle), "\(needle)")
        }
        let back = try JSONOutput.decodeRun(try JSONOutput.encode(report(after: 1_020_480)))
        #expect(back.measured.meminfo.afterTeardown?.pageTables == 1_020_480)
        #expect(back.measured.sampling.afterTeardown?.milliseconds == 300)
        #expect(back.measured.teardownLeakBytes == 16384)
    }

    @Test func reportsWithoutTheKeysStillDecode() throws {
        let json = text(try JSONOutput.encode(sampleReport()))
        #expect(!json.contains("after_teardown"))
        let back = try JSONOutput.decodeRun(Array(json.utf8))
        #expect(back.measured.teardownLeakBytes == nil)
    }

    @Test func textShowsTheLeak() {
        let clean = TextReport.render(report(after: 1_004_096))
        #expect(
            clean.contains(
                "after teardown: PageTables 980.6 KiB (base 976.6 KiB), left behind 0 B, allowed noise 8192 B\n"))
        let leak = TextReport.render(report(after: 1_020_480))
        #expect(leak.contains("left behind 16384 B, allowed noise 8192 B -- LEAK\n"))
        let unsettled = TextReport.render(report(after: 1_020_480, stable: false))
        #expect(
            unsettled.contains("left behind 16384 B, allowed noise 8192 B (not judged: PageTables did not settle)\n"))
        #expect(unsettled.contains("warning: PageTables did not settle at every sampling point"))
    }
}

/// sampleReport on a two-node machine under `--cpunodebind 1 --membind 1`: tables and pages on node 1.
private func numaReport(numaMaps: RunReport.NumaMapsReport?) -> RunReport {
    var r = sampleReport()
    r.scenario.placement = .init(NumaPlacement(cpuNodes: [1], memory: .bind([1])))
    r.measured.numaNodes = [
        .init(
            node: 0, pageTables: .init(base: 400_000, control: 450_000, mapped: 450_000), attributedBytes: 0,
            filePages: numaMaps?.reference?.pages(on: 0)),
        .init(
            node: 1, pageTables: .init(base: 600_000, control: 812_144, mapped: 959_600), attributedBytes: 147_456,
            filePages: numaMaps?.reference?.pages(on: 1)),
    ]
    r.measured.numaMaps = numaMaps
    return r
}

private func worker(_ i: Int, _ perNode: [Int: UInt64]) -> RunReport.NumaMapsWorker {
    .init(
        worker: i,
        NumaMapsEntry(
            address: 0x7f00_0020_0000, policy: "bind:1", file: "/memfd:ptshare (deleted)", pagesPerNode: perNode,
            counters: ["dirty": 16384, "mapmax": 4], kernelPageSize: 4096))
}

@Suite struct NumaReportTests {
    @Test func nodeUsageFromTheReport() {
        let r = numaReport(
            numaMaps: .init(workersSampled: [0, 3], workers: [worker(0, [1: 16384]), worker(3, [1: 16384])]))
        #expect(
            r.nodeUsage() == [
                NodeUsage(node: 0, pageTableBytes: .success(0), filePages: .success(0), fileBytes: .success(0)),
                NodeUsage(
                    node: 1, pageTableBytes: .success(147_456), filePages: .success(16384),
                    fileBytes: .success(64 << 20)),
            ])
        #expect(r.measured.numaNodes.map(\.filePages) == [0, 16384])
        let out = TextReport.render(r)
        #expect(out.contains("\nplacement: cpunodebind 1, membind 1\n"))
        #expect(out.contains("\nnode 0 PageTables attributed: 0 B; the mapping's pages here: 0 (0 B)\n"))
        #expect(out.contains("\nnode 1 PageTables attributed: 144.0 KiB; the mapping's pages here: 16384 (64.0 MiB)\n"))
        #expect(
            out.contains(
                "\nnuma_maps of worker 0 (policy bind:1): 16384 pages mapped, the same per node in all 2 sampled workers\n"
            ))
    }

    @Test func workersThatDiffer() {
        let r = numaReport(
            numaMaps: .init(workersSampled: [0, 3], workers: [worker(0, [1: 16384]), worker(3, [1: 512])]))
        #expect(r.measured.numaMaps?.samePagesPerNode == false)
        #expect(TextReport.render(r).contains("; the sampled workers differ per node (measured.numa_maps in the JSON)"))
    }

    @Test func missingReadingsCarryTheirReason() {
        let why = "open /proc/42/numa_maps failed: ENOENT (errno 2): No such file or directory"
        var r = numaReport(numaMaps: .init(workersSampled: [0], workers: [], missing: why))
        r.measured.numaNodes[0].attributedBytes = nil
        r.measured.numaNodes[0].pageTablesMissing = "no PageTables line in /sys/devices/system/node/node0/meminfo"
        let u = r.nodeUsage()
        #expect(
            u[0].pageTableBytes
                == .failure(MissingReading("no PageTables line in /sys/devices/system/node/node0/meminfo")))
        #expect(u[1].pageTableBytes == .success(147_456))
        #expect(u.allSatisfy { $0.filePages == .failure(MissingReading("numa_maps: \(why)")) })
        #expect(r.measured.numaNodes.allSatisfy { $0.filePages == nil })
        let out = TextReport.render(r)
        #expect(
            out.contains(
                "\nnode 0 PageTables attributed: n/a (no PageTables line in /sys/devices/system/node/node0/meminfo)\n"))
        #expect(out.contains("\nnode 1 PageTables attributed: 144.0 KiB\n"))
        #expect(out.contains("\nnuma_maps: not read: \(why)\n"))

        let unsampled = numaReport(numaMaps: nil)
        #expect(
            unsampled.nodeUsage().allSatisfy {
                $0.filePages == .failure(MissingReading("numa_maps not read: no worker sampled (--smaps-workers 0)"))
            })
    }

    @Test func jsonAddsOptionalKeysToV1() throws {
        let r = numaReport(numaMaps: .init(workersSampled: [0], workers: [worker(0, [1: 16384])]))
        let bytes = try JSONOutput.encode(r)
        let json = text(bytes)
        #expect(json.contains("\"schema\" : \"ptshare.run.v1\""))
        for needle in [
            "\"placement\" : {", "\"cpunodebind\" : [", "\"membind\" : [", "\"numa_maps\" : {",
            "\"pages_per_node\" : [", "\"file_pages\" : 16384", "\"kernel_page_size_bytes\" : 4096",
            "\"policy\" : \"bind:1\"", "\"workers_sampled\" : [",
        ] {
            #expect(json.contains(needle), "missing \(needle)")
        }
        #expect(!json.contains("\"interleave\""))
        let back = try JSONOutput.decodeRun(bytes)
        #expect(back.scenario.placement == r.scenario.placement)
        #expect(back.measured.numaMaps?.workers == r.measured.numaMaps?.workers)
        #expect(back.nodeUsage() == r.nodeUsage())
        #expect(try JSONOutput.encode(back) == bytes)
        // A report without them (as every run wrote before) has none of the keys and still reads.
        let plain = text(try JSONOutput.encode(sampleReport()))
        for key in ["placement", "numa_maps", "file_pages", "page_tables_missing"] {
            #expect(!plain.contains("\"\(key)\""), "\(key)")
        }
        let old = try JSONOutput.decodeRun(Array(plain.utf8))
        #expect(old.scenario.placement == nil && old.measured.numaMaps == nil)
        #expect(!TextReport.render(old).contains("placement:"))
    }
}
