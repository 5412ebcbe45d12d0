import Foundation
import Glibc
import PTShareCore
import Testing

/// Native tests that really fork and map. Serialized: PageTables is global, and one run's
/// workers would show up in another's measurement.
@Suite(.serialized)
struct RunTests {
    @Test func memfdPopulateMatchesUnsharedModel() throws {
        let json = tempPath("memfd.json")
        let d = try Driver.run([
            "run", "--backing", "memfd", "--size", "64M", "--workers", "64", "--touch", "populate", "--json", json,
        ])
        #expect(d.status == 0, "stderr: \(d.stderr)\nstdout: \(d.stdout)")
        let r = try readReport(json)
        #expect(r.schema == "ptshare.run.v1")
        #expect(r.verdict == .pass)
        #expect(r.scenario.workers == 64 && r.scenario.sizeBytes == 64 << 20 && r.scenario.share == "none")
        // 64 MiB of 4 KiB pages needs 32 PTE pages per worker: at least that, whatever the alignment.
        #expect(r.model.expectedPageTableBytes >= 64 * 32 * 4096)
        let dev = abs(r.measured.attributedPageTableBytes - r.model.expectedPageTableBytes)
        #expect(Double(dev) <= 0.10 * Double(r.model.expectedPageTableBytes))
        // Unshared tables: the per-process VmPTE sum tells the same story as PageTables.
        let vdev = abs(r.measured.vmpteAttributedBytes - r.model.expectedPageTableBytes)
        #expect(Double(vdev) <= 0.10 * Double(r.model.expectedPageTableBytes))
        #expect(r.measured.controlPageTablesDeltaBytes > 0)
        #expect(r.measured.smaps?.range["KernelPageSize"] == 4096)
        #expect(r.measured.smaps?.range["Rss"] == 64 << 20)
        #expect(d.stdout.contains("verdict: PASS"))
    }

    @Test func tmpfsReadAndAnonSharedWrite() throws {
        for args in [
            ["--backing", "tmpfs", "--touch", "read", "--address", "same"],
            ["--backing", "anon-shared", "--touch", "write"],
        ] {
            let json = tempPath("run.json")
            let d = try Driver.run(["run", "--size", "32M", "--workers", "32", "--json", json] + args)
            #expect(d.status == 0, "\(args): \(d.stderr) \(d.stdout)")
            let r = try readReport(json)
            #expect(r.verdict == .pass, "\(args): \(r.reason)")
            #expect(r.measured.attributedPerWorkerBytes >= 16 * 4096, "\(args)")
        }
    }

    @Test func touchNoneAllocatesNoTables() throws {
        let json = tempPath("none.json")
        let d = try Driver.run(["run", "--size", "256M", "--workers", "32", "--touch", "none", "--json", json])
        #expect(d.status == 0, "\(d.stderr)")
        let r = try readReport(json)
        #expect(r.model.expectedPageTableBytes == 0)
        #expect(r.verdict == .pass)
    }

    /// Node 0 exists wherever NUMA does. `--membind 0 --cpunodebind 0`: the workers run under
    /// bind:0 and every page of the file (the driver's fallocate, under the same policy) is on
    /// node 0; `--interleave 0` shows its own policy, so numa_maps follows the option, not a default.
    @Test func placementOnNodeZero() throws {
        if !Numa.available { try Test.cancel("this kernel has no NUMA memory policy") }
        for (args, policy, placement) in [
            (["--membind", "0", "--cpunodebind", "0"], "bind:0", NumaPlacement(cpuNodes: [0], memory: .bind([0]))),
            (["--interleave", "0"], "interleave:0", NumaPlacement(memory: .interleave([0]))),
        ] {
            let json = tempPath("numa.json")
            let d = try Driver.run(["run", "--workers", "4", "--size", "8M", "--json", json] + args)
            // 4: PageTables did not settle on a busy host; where the pages are does not depend on it.
            #expect(d.status == 0 || d.status == 4, "\(args): \(d.stderr) \(d.stdout)")
            let r = try readReport(json)
            #expect(r.scenario.placement?.numaPlacement == placement)
            #expect(d.stdout.contains("\nplacement: \(placement)\n"), "\(d.stdout)")
            let nm = try #require(r.measured.numaMaps)
            #expect(nm.missing == nil && nm.workersSampled == [0, 1, 2, 3])
            for w in nm.workers {
                #expect(w.policy == policy && w.pagesPerNode == [.init(node: 0, pages: 2048)], "\(args) worker \(w)")
            }
            let usage = r.nodeUsage()
            let n0 = try #require(usage.first { $0.node == 0 })
            #expect(n0.filePages == .success(2048) && n0.fileBytes == .success(8 << 20), "\(args)")
            #expect((try? n0.pageTableBytes.get()) != nil, "\(args): \(n0.pageTableBytes)")
            for n in usage where n.node != 0 { #expect(n.filePages == .success(0), "\(args) node \(n.node)") }
        }
    }

    @Test func sharePTOnKernelWithoutSupportFailsClearly() throws {
        let probe = try Driver.run(["probe", "--json"])
        #expect(probe.status == 0, "\(probe.stderr)")
        let facts = try JSONDecoder.snake.decode(KernelFacts.self, from: Data(probe.stdout.utf8))
        if facts.mapSharedPt.supported {
            try Test.cancel(
                "kernel \(facts.release) accepts MAP_SHARED_PT 0x200000; the refusal path cannot be exercised")
        }
        let d = try Driver.run(["run", "--share", "pt", "--size", "4M", "--workers", "2"])
        #expect(d.status == 3)
        #expect(
            d.stderr
                == "ptshare: error: --share pt: kernel \(facts.release) does not honour MAP_SHARED_PT 0x200000: "
                + "mmap(MAP_SHARED_VALIDATE | 0x200000) failed with EOPNOTSUPP (errno 95); boot a kernel with the "
                + "MAP_SHARED_PT series, or pass the value it uses with --map-shared-pt-value\n")
        // The environment variable reaches the same check.
        let e = try Driver.run(
            ["run", "--share", "pt", "--size", "4M", "--workers", "2"],
            environment: ["PTSHARE_MAP_SHARED_PT": "0x400000"])
        #expect(e.status == 3)
        #expect(e.stderr.contains("does not honour MAP_SHARED_PT 0x400000"))
    }

    @Test func killedWorkerFailsTheRunAndNothingIsLeft() throws {
        let (d, workers) = try holdingDriver()
        let victim = workers[5]
        kill(victim, SIGKILL)
        let code = try d.wait(timeoutSeconds: 30)
        #expect(code == 3)
        #expect(d.stderr.contains("(pid \(victim)) was killed by signal 9 (SIGKILL)"), "\(d.stderr)")
        for w in workers { #expect(!exists(w), "worker \(w) left behind in state \(String(describing: state(w)))") }
    }

    @Test func sigtermTearsDownEveryWorker() throws {
        let (d, workers) = try holdingDriver()
        kill(d.pid, SIGTERM)
        #expect(try d.wait(timeoutSeconds: 30) == 128 + SIGTERM)
        #expect(d.stderr.contains("interrupted by signal 15"))
        for w in workers { #expect(!exists(w), "worker \(w) left behind") }
    }

    /// SIGTERM while workers are still mapping, one at a time: the driver is blocked in poll
    /// waiting for reports, and the EINTR it gets there must read as the interruption.
    @Test func sigtermWhileWaitingForReportsIsAnInterruption() throws {
        let d = try Driver(["run", "--size", "256M", "--workers", "64", "--map-concurrency", "1"])
        #expect(eventually(30) { !mappedWorkers(of: d.pid, marker: "memfd:ptshare").isEmpty })
        usleep(100_000)
        kill(d.pid, SIGTERM)
        #expect(try d.wait(timeoutSeconds: 30) == 128 + SIGTERM, "\(d.stderr)")
        #expect(d.stderr.contains("interrupted by signal 15"), "\(d.stderr)")
        #expect(children(of: d.pid).isEmpty)
    }

    @Test func killedDriverTakesItsWorkersAlong() throws {
        // The driver gets no chance to clean up: PR_SET_PDEATHSIG must do it. The test becomes
        // the subreaper so orphans are reparented here and can be checked and reaped.
        try Sys.setChildSubreaper(true)
        defer { try? Sys.setChildSubreaper(false) }
        let (d, workers) = try holdingDriver()
        kill(d.pid, SIGKILL)
        #expect(try d.wait() == 128 + SIGKILL)
        for w in workers {
            var st: Int32 = 0
            var reaped = false
            #expect(
                eventually(10) {
                    reaped = reaped || waitpid(w, &st, WNOHANG) == w
                    return reaped || !exists(w)
                }, "worker \(w) outlived its driver (state \(String(describing: state(w))))")
        }
    }

    @Test func preflightRefusesWhatDoesNotFit() throws {
        let d = try Driver.run(["run", "--size", "64G", "--workers", "1000"])
        #expect(d.status == 3)
        #expect(d.stderr.hasPrefix("ptshare: error: run needs an estimated "))
        #expect(d.stderr.contains("but MemAvailable is"))
    }

    @Test func badUsageIsExUsageWithTheMessage() throws {
        let d = try Driver.run(["run", "--share", "pt", "--size", "3M"])
        #expect(d.status == 64)
        #expect(d.stderr.contains("--size 3M: --share pt (MAP_SHARED_PT) needs a multiple of 2M (the PMD size)"))
    }

    @Test func hugetlbPMDSharingOnAlignedMappings() throws {
        guard isRoot else { try Test.cancel("needs root to reserve huge pages and mount hugetlbfs") }
        let pool = "/sys/kernel/mm/hugepages/hugepages-2048kB"
        guard let before = try? String(contentsOfFile: pool + "/nr_hugepages", encoding: .utf8) else {
            try Test.cancel("no 2 MiB huge page pool at \(pool)")
        }
        let dir = tempPath("hugetlbfs")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard mount("none", dir, "hugetlbfs", 0, "pagesize=2M") == 0 else {
            try Test.cancel("mount -t hugetlbfs failed: errno \(errno)")
        }
        defer {
            umount(dir)
            rmdir(dir)
            try? before.write(toFile: pool + "/nr_hugepages", atomically: false, encoding: .utf8)
        }
        // Not enough pages: the message says how many and how to reserve them.
        try "0".write(toFile: pool + "/nr_hugepages", atomically: false, encoding: .utf8)
        let short = try Driver.run(["run", "--backing", "hugetlbfs", "--path", dir, "--size", "1G", "--workers", "4"])
        #expect(short.status == 3)
        #expect(short.stderr.contains("needs 512 free 2048 kB huge pages for --size 1G"), "\(short.stderr)")
        #expect(short.stderr.contains("echo 512 > \(pool)/nr_hugepages"), "\(short.stderr)")

        try "512".write(toFile: pool + "/nr_hugepages", atomically: false, encoding: .utf8)
        let got =
            UInt64(
                (try String(contentsOfFile: pool + "/nr_hugepages", encoding: .utf8)).trimmingCharacters(
                    in: .whitespacesAndNewlines)) ?? 0
        guard got >= 512 else { try Test.cancel("could reserve only \(got) of 512 huge pages") }

        // 1 GiB aligned, same file offset: one PMD table for all workers.
        let json = tempPath("huge.json")
        let d = try Driver.run([
            "run", "--backing", "hugetlbfs", "--path", dir, "--size", "1G", "--workers", "64", "--address", "same",
            "--touch", "populate-write", "--baseline", "--json", json,
        ])
        let r = try readReport(json)
        #expect(d.status == 0, "\(d.stderr) \(d.stdout)")
        #expect(r.scenario.leafPageSizeBytes == 2 << 20)
        let pmd = try #require(r.model.levels.first { $0.level == "pmd" })
        if r.kernel.hugetlbPmdSharing?.enabled == true {
            #expect(pmd.sharedPages == 1 && pmd.perWorkerPages == 0)
            // Far less than one PMD page per worker.
            #expect(r.measured.attributedPageTableBytes < 64 * 4096 / 2, "\(r.reason)")
        }
        #expect(r.measured.smaps?.range["KernelPageSize"] == 2 << 20)
        // Per-process VmPTE counts the shared PMD page in every sharer.
        #expect(r.measured.vmpteAttributedBytes >= 64 * 4096)
        // The baseline (same address moved by 2 MiB) has no whole 1 GiB span: one PMD page each.
        #expect(r.baseline?.address == "same+2M")
        #expect(r.baseline?.verdict == .pass, "\(r.baseline?.reason ?? "no baseline")")
        #expect((r.savings?.fraction ?? 0) >= 0.9, "\(String(describing: r.savings))")

        // Kernel-chosen address: not 1 GiB aligned, so no whole PUD span and no sharing.
        let autoJSON = tempPath("huge-auto.json")
        let a = try Driver.run([
            "run", "--backing", "hugetlbfs", "--path", dir, "--size", "1G", "--workers", "64", "--touch",
            "populate-write", "--json", autoJSON,
        ])
        let ra = try readReport(autoJSON)
        #expect(a.status == 0, "\(a.stderr) \(a.stdout)")
        #expect(ra.model.levels.first { $0.level == "pmd" }?.sharedPages == 0)
        #expect(ra.measured.attributedPageTableBytes >= 64 * 4096 * 9 / 10, "\(ra.reason)")
    }
}

extension JSONDecoder {
    static var snake: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}

/// A driver holding 16 workers with 8 MiB mapped, once all of them have the mapping.
func holdingDriver() throws -> (Driver, [pid_t]) {
    let d = try Driver(["run", "--size", "8M", "--workers", "16", "--hold", "60"])
    var workers: [pid_t] = []
    let ready = eventually(60) {
        workers = mappedWorkers(of: d.pid, marker: "memfd:ptshare")
        return workers.count == 16
    }
    try #require(ready, "16 workers never had the mapping; stderr: \(d.stderr)")
    return (d, workers)
}
