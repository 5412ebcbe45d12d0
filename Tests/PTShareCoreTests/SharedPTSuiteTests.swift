import CPTShare
import Glibc
import Testing

@testable import PTShareCore

@Suite struct SharedPTGateTests {
    @Test func supportedRuns() {
        for e in SuiteOptions.Expectation.allCases {
            #expect(
                Suite.sharedPTGate(
                    "sharedpt.stress", expectation: e, supported: true, release: "6.12.1", errno: nil, detail: "ok")
                    == nil)
        }
    }

    @Test func unsupportedSkipsWithTheReason() {
        for e in [SuiteOptions.Expectation.auto, .unsupported] {
            let r = Suite.sharedPTGate(
                "sharedpt.semantics.fork", expectation: e, supported: false, release: "6.12.117-ptshare-stock",
                errno: "EOPNOTSUPP", detail: "mmap failed with EOPNOTSUPP")
            #expect(
                r
                    == KTAPResult(
                        name: "sharedpt.semantics.fork",
                        status: .skip("MAP_SHARED_PT not supported by kernel 6.12.117-ptshare-stock: EOPNOTSUPP")))
        }
    }

    @Test func unsupportedFailsWhenSupportIsExpected() {
        let r = Suite.sharedPTGate(
            "sharedpt.stress", expectation: .supported, supported: false, release: "6.12.1", errno: "EINVAL",
            detail: "mmap(MAP_SHARED_VALIDATE | 0x200000) of a 2 MiB memfd at 0x7f0000000000 failed with EINVAL")
        #expect(r?.status == .fail)
        #expect(
            r?.diagnostics == [
                "sharedpt.stress: MAP_SHARED_PT not supported by kernel 6.12.1: EINVAL (expected supported)",
                "sharedpt.stress: mmap(MAP_SHARED_VALIDATE | 0x200000) of a 2 MiB memfd at 0x7f0000000000 failed with EINVAL",
            ])
    }

    @Test func everySharedPTTestIsRegisteredOnce() {
        let names = Suite.sharedPTTests.map(\.name)
        #expect(names.count == 65)
        #expect(names.allSatisfy { $0.hasPrefix("sharedpt.") })
        #expect(Array(Suite.testNames.suffix(names.count)) == names)
    }
}

@Suite struct SuiteOptionsTests {
    func options(_ change: (inout SuiteOptions) -> Void) -> SuiteOptions {
        var o = SuiteOptions(outDirectory: "/tmp/x")
        change(&o)
        return o
    }

    @Test func defaults() throws {
        let o = SuiteOptions(outDirectory: "/tmp/x")
        #expect(o.sharedPTSize == 256 << 20)
        #expect(o.minimumSharedPTSavings == 0.95)
        #expect(o.stressSeconds == 60)
        #expect(o.workers == 200)
        try o.validate()
    }

    @Test func sharedPTSizeMustBeWholeChunks() {
        #expect(
            throws: ValidationMessage(
                "--shared-pt-size 3M: must be a non-zero multiple of 2M (MAP_SHARED_PT maps whole PTE tables)")
        ) { try options { $0.sharedPTSize = 3 << 20 }.validate() }
        #expect(throws: ValidationMessage.self) { try options { $0.sharedPTSize = 0 }.validate() }
    }

    @Test func stressSecondsBounded() {
        #expect(throws: ValidationMessage("--stress-seconds 0: must be between 1 and 86400")) {
            try options { $0.stressSeconds = 0 }.validate()
        }
        #expect(throws: ValidationMessage("--stress-seconds 86401: must be between 1 and 86400")) {
            try options { $0.stressSeconds = 86401 }.validate()
        }
    }

    @Test func savingsIsAFraction() {
        #expect(throws: ValidationMessage.self) { try options { $0.minimumSharedPTSavings = 1.5 }.validate() }
    }
}

@Suite struct SharedPTStressReportTests {
    func report(_ error: ptshare_stress_error, slot: UInt32 = 3, child: Bool = false) -> ptshare_stress_report {
        var r = ptshare_stress_report()
        r.slot = slot
        r.pid = 1234
        r.error = error.rawValue
        r.in_child = child ? 1 : 0
        r.iterations = 10
        r.sigbus = 5
        r.forks = 2
        r.offset = 0x401010
        r.found = 0xA5
        r.expected = 0xA500_3000_0401_0000
        return r
    }

    @Test func cleanReportsAddUp() {
        var t = SharedPTStress.Tally()
        SharedPTStress.add(report(PTSHARE_STRESS_OK), truncator: 31, to: &t)
        SharedPTStress.add(report(PTSHARE_STRESS_OK, slot: 31), truncator: 31, to: &t)
        SharedPTStress.add(report(PTSHARE_STRESS_OK, child: true), truncator: 31, to: &t)
        #expect(t == SharedPTStress.Tally(reports: 3, iterations: 10, truncations: 10, sigbus: 5, forks: 2))
    }

    @Test func mismatchesNameTheWordAndTheValues() {
        #expect(
            SharedPTStress.describe(report(PTSHARE_STRESS_OWN))
                == "process 3 (pid 1234): its own word lost the value it wrote last: file offset 0x401010: found 0xa5, expected 0xa500300004010000"
        )
        var foreign = report(PTSHARE_STRESS_FOREIGN, child: true)
        foreign.found = ptshare_stress_word(2, 0x401, 9)
        foreign.refusal = PTSHARE_WORD_FUTURE.rawValue
        foreign.expected = 7
        #expect(
            SharedPTStress.describe(foreign)
                == "process 3 (pid 1234, a forked child): refused the word at file offset 0x401010 (page 1025, word 2), 0xa500204010000009: writer 2's generation 9 is newer than the 7 it has published"
        )
        var m = report(PTSHARE_STRESS_MMAP)
        m.err_no = EINVAL
        #expect(SharedPTStress.describe(m) == "process 3 (pid 1234): mmap with MAP_SHARED_PT failed: EINVAL (errno 22)")
        #expect(
            SharedPTStress.describe(report(PTSHARE_STRESS_SIGBUS))
                == "process 3 (pid 1234): SIGBUS at 0x401010, below the floor 0x400000 that is never truncated")
        #expect(SharedPTStress.describe(report(PTSHARE_STRESS_OK)) == nil)
    }

    @Test func failuresAreCollected() {
        var t = SharedPTStress.Tally()
        SharedPTStress.add(report(PTSHARE_STRESS_OWN), truncator: 31, to: &t)
        #expect(t.failures.count == 1)
    }

    @Test func pressureRoundsAddUpAndNameWhatFailed() {
        var t = SharedPTStress.Tally()
        let g = "/sys/fs/cgroup/ptshare-pressure"
        t.add(
            ptshare_squeeze_result(reclaim_errno: 0, compact_errno: 0, pid: 77, migrate_errno: 0, unmoved: 3), cgroup: g
        )
        // EAGAIN from memory.reclaim (less could be reclaimed) and no live candidate: no failure.
        t.add(
            ptshare_squeeze_result(reclaim_errno: EAGAIN, compact_errno: 0, pid: 0, migrate_errno: 0, unmoved: 0),
            cgroup: g)
        #expect(t.failures.isEmpty)
        #expect(t.reclaims == 2 && t.compactions == 2 && t.migrations == 1 && t.unmovedPages == 3)
        t.add(
            ptshare_squeeze_result(
                reclaim_errno: ENOMEM, compact_errno: EPERM, pid: 78, migrate_errno: EPERM, unmoved: 0),
            cgroup: g)
        #expect(t.reclaims == 2 && t.compactions == 2 && t.migrations == 1)
        #expect(t.failures.count == 3)
        #expect(t.failures[0].contains("\(g)/memory.reclaim") && t.failures[0].contains("ENOMEM"))
        #expect(t.failures[1].contains("compact_memory") && t.failures[1].contains("EPERM"))
        #expect(t.failures[2].contains("migrate_pages") && t.failures[2].contains("pid 78"))
    }
}

/// The decision a stress reader makes on each word (the C shim's ptshare_stress_judge_word), on
/// synthetic words: what a process attached to a stale or foreign table would read.
@Suite struct StressWordJudgeTests {
    /// Word 5 of page 0x300, below the floor unless `above`; writer 5 has published 40 and
    /// finished 20 over the page, the reader saw 30.
    func judge(
        _ word: UInt64, w: UInt32 = 5, page: UInt64 = 0x300, writes: Bool = true, published: UInt64 = 40,
        finished: UInt64 = 20, seen: UInt64 = 30, above: Bool = false
    ) -> ptshare_stress_refusal {
        ptshare_stress_refusal(
            rawValue: ptshare_stress_judge_word(
                word, w, page, writes ? 1 : 0, published, finished, seen, above ? 1 : 0))
    }

    @Test func wordsTheWriterWroteAreAccepted() {
        #expect(judge(ptshare_stress_word(5, 0x300, 30)) == PTSHARE_WORD_ACCEPTED)
        #expect(judge(ptshare_stress_word(5, 0x300, 40)) == PTSHARE_WORD_ACCEPTED)
        // A respawned writer goes on from its slot's published generation: newer is fine.
        #expect(judge(ptshare_stress_word(5, 0x300, 35)) == PTSHARE_WORD_ACCEPTED)
        // Not written yet, or zeroed by truncate/punch above the floor.
        #expect(judge(0, finished: 0, seen: 0) == PTSHARE_WORD_ACCEPTED)
        #expect(judge(0, above: true) == PTSHARE_WORD_ACCEPTED)
        // Above the floor a SIGBUS may have skipped the page: no lower bound from the writer.
        #expect(judge(ptshare_stress_word(5, 0x300, 10), seen: 0, above: true) == PTSHARE_WORD_ACCEPTED)
    }

    @Test func forgedWordsAreRefused() {
        #expect(judge(0x1234_5678_9abc_def0) == PTSHARE_WORD_NOT_STRESS)
        // Another writer's word in word 5 (a table of another file offset or process layout).
        #expect(judge(ptshare_stress_word(6, 0x300, 30)) == PTSHARE_WORD_WRITER)
        // The truncator writes no words.
        #expect(judge(ptshare_stress_word(5, 0x300, 30), writes: false) == PTSHARE_WORD_WRITER)
        // The right writer, another page: a table mapping the wrong chunk.
        #expect(judge(ptshare_stress_word(5, 0x301, 30)) == PTSHARE_WORD_PAGE)
        #expect(judge(ptshare_stress_word(5, 0x300, 0)) == PTSHARE_WORD_GENERATION)
        #expect(judge(ptshare_stress_word(5, 0x300, 41)) == PTSHARE_WORD_FUTURE)
        // An older generation than seen before: a stale page.
        #expect(judge(ptshare_stress_word(5, 0x300, 29)) == PTSHARE_WORD_BACKWARDS)
        #expect(judge(ptshare_stress_word(5, 0x300, 29), above: true) == PTSHARE_WORD_BACKWARDS)
        // Below the floor nothing zeroes a word the reader saw, or one its writer finished.
        #expect(judge(0) == PTSHARE_WORD_ZERO)
        #expect(judge(0, seen: 0) == PTSHARE_WORD_STALE)
        // Older than the writer finished there: a stale page this reader had not seen before.
        #expect(judge(ptshare_stress_word(5, 0x300, 19), seen: 0) == PTSHARE_WORD_STALE)
    }

    @Test func wordFieldsDecode() {
        let w = SharedPTStress.Word(ptshare_stress_word(31, 0x7ff, 0xfff_ffff))
        #expect(w == SharedPTStress.Word(0xA501_F07F_FFFF_FFFF))
        #expect([w.magic, w.writer, w.page, w.generation] == [0xA5, 31, 0x7ff, 0xfff_ffff])
    }

    @Test func refusalsSayWhy() {
        var r = ptshare_stress_report()
        r.slot = 1
        r.pid = 99
        r.error = PTSHARE_STRESS_FOREIGN.rawValue
        r.offset = 0x300 * 4096 + 5 * 8
        func line(_ why: ptshare_stress_refusal, _ found: UInt64, expected: UInt64 = 0) -> String? {
            r.refusal = why.rawValue
            r.found = found
            r.expected = expected
            return SharedPTStress.describe(r)
        }
        let at = "process 1 (pid 99): refused the word at file offset 0x300028 (page 768, word 5), "
        #expect(
            line(PTSHARE_WORD_PAGE, ptshare_stress_word(5, 0x301, 30))
                == at + "0xa50050301000001e: writer 5 wrote it for page 769, not page 768")
        #expect(
            line(PTSHARE_WORD_WRITER, ptshare_stress_word(6, 0x300, 30))
                == at + "0xa50060300000001e: it names writer 6, but word 5 is written by writer 5 only")
        #expect(
            line(PTSHARE_WORD_BACKWARDS, ptshare_stress_word(5, 0x300, 29), expected: 30)
                == at
                + "0xa50050300000001d: writer 5's generation 29 is older than generation 30 this reader saw there before"
        )
        #expect(
            line(PTSHARE_WORD_STALE, ptshare_stress_word(5, 0x300, 19), expected: 20)
                == at
                + "0xa500503000000013: writer 5's generation 19 is older than generation 20 it had finished writing there (below the floor 0x400000)"
        )
        #expect(
            line(PTSHARE_WORD_ZERO, 0, expected: 30)
                == at + "0x0: 0 below the floor 0x400000, where this reader saw writer 5's generation 30 before")
    }
}

/// The judge of a mid-storm census, on synthetic table maps.
@Suite struct StressCensusTests {
    func view(_ label: String, offset: UInt64 = 0, chunks: Int = 2) -> TableCensus.View {
        TableCensus.View(
            label: label, pid: 1, address: 0x4000_0000, fileOffset: offset, length: UInt64(chunks) * Geometry.pmdSize)
    }

    func map(_ slots: [TableSlot]) -> TableMap {
        TableMap(pte: slots, pmd: [], pteTables: 0, pmdLeaves: 0, pmdTables: 0, pudLeaves: 0)
    }

    func table(_ pfn: UInt64) -> TableSlot { TableSlot(kind: .table, pfn: pfn) }
    let empty = TableSlot(kind: .none, pfn: 0)

    @Test func sharingWhereFaultedPasses() {
        let t = TableCensus.layout(
            [view("a"), view("b"), view("c", offset: 2 << 20, chunks: 1)],
            [map([table(10), table(11)]), map([table(10), empty]), map([empty])])
        #expect(t.sharedChunks == 1)
        #expect(t.distinctTables == 2)
        let (ok, line) = t.judge(.sharedWhereFaulted)
        #expect(ok, "\(line)")
        #expect(
            line
                == "census (ptshare_probe): 2 chunks × 3 views, 2 distinct PTE tables; expected one table per faulted chunk, shared somewhere (1 chunks shared by several views)"
        )
    }

    @Test func twoTablesForOneChunkFail() {
        let t = TableCensus.layout(
            [view("a"), view("b")], [map([table(10), table(11)]), map([table(10), table(12)])])
        let (ok, line) = t.judge(.sharedWhereFaulted)
        #expect(!ok)
        #expect(line.hasSuffix(": chunk 1: 2 tables for 2 views"), "\(line)")
    }

    @Test func nothingSharedFails() {
        // Plain MAP_SHARED: every view has its own tables.
        let t = TableCensus.layout([view("a"), view("b")], [map([table(10), empty]), map([table(12), empty])])
        let (ok, line) = t.judge(.sharedWhereFaulted)
        #expect(!ok)
        #expect(line.hasSuffix(": chunk 0: 2 tables for 2 views"), "\(line)")
        let alone = TableCensus.layout([view("a")], [map([table(10), table(11)])])
        #expect(
            alone.judge(.sharedWhereFaulted).line.hasSuffix(
                ": no chunk is mapped through one table in two or more views: nothing shared"))
        #expect(!alone.judge(.sharedWhereFaulted).ok)
    }

    @Test func aLeafFails() {
        let t = TableCensus.layout(
            [view("a"), view("b")], [map([table(10), TableSlot(kind: .leaf, pfn: 7)]), map([table(10), empty])])
        let (ok, line) = t.judge(.sharedWhereFaulted)
        #expect(!ok)
        #expect(line.hasSuffix(": chunk 1 in a: no PTE table (leaf)"), "\(line)")
    }

    @Test func aRunTakesAtLeastThreeRounds() {
        #expect(SharedPTStress.roundInterval(seconds: 60) == 5_000_000_000)
        #expect(SharedPTStress.roundInterval(seconds: 20) == 5_000_000_000)
        #expect(SharedPTStress.roundInterval(seconds: 4) == 1_000_000_000)
        #expect(SharedPTStress.roundInterval(seconds: 1) == 250_000_000)
    }

    @Test func roundsAndCensusesAreJudged() {
        let shared = TableCensus.layout([view("a"), view("b")], [map([table(1), table(2)]), map([table(1), empty])])
        let split = TableCensus.layout([view("a"), view("b")], [map([table(1), table(2)]), map([table(3), empty])])
        var c = Checks("s")
        SharedPTStress.judge(
            [.init(views: 2, census: nil, stoppedNanoseconds: 3_000_000), .init(views: 3, census: nil)], census: false,
            into: &c)
        #expect(
            c.lines == [
                "s: 2 stop rounds (at least 3), views of the file per round 2–3, stopped 3 ms in all (longest 3 ms; waiting for state T 0 ms in all) -- FAILED"
            ])
        c = Checks("s")
        let rounds = [
            SharedPTStress.Round(views: 2, census: shared), .init(views: 2, census: split),
            .init(views: 2, census: shared),
        ]
        SharedPTStress.judge(rounds, census: true, into: &c)
        #expect(!c.ok)
        #expect(
            c.lines == [
                "s: 3 stop rounds (at least 3), views of the file per round 2–2, stopped 0 ms in all (longest 0 ms; waiting for state T 0 ms in all)",
                "s: census 2: census (ptshare_probe): 2 chunks × 2 views, 3 distinct PTE tables; expected one table per faulted chunk, shared somewhere (0 chunks shared by several views): chunk 0: 2 tables for 2 views -- FAILED",
                "s: 3 censuses, 2 with one table per faulted chunk and sharing; distinct PTE tables per census 2–3, chunks shared by several views 0–1 -- FAILED",
            ])
    }
}

@Suite struct LockdepPatternTests {
    @Test func lockdepReportsAreProblems() {
        let log = """
            [   1.0] ======================================================
            [   1.1] WARNING: possible circular locking dependency detected
            [   2.0] [ INFO: possible recursive locking detected ]
            [   3.0] inconsistent lock state
            [   4.0] all fine
            """
        // ConsoleScan knows lockdep's titles itself: the VM's console scan and the stress test's
        // kernel-log check both catch them.
        #expect(ConsoleScan.problems(in: log).map(\.line) == [2, 3, 4])
    }

    @Test func serialConsoleLinesEndInCRLF() {
        let log = "Linux version 6.12\r\nBUG: Bad rss-counter state\r\n# kernel log: clean\r\n"
        #expect(ConsoleScan.problems(in: log).map(\.line) == [2])
    }
}

@Suite struct ChecksTests {
    @Test func linesSayWhatHappened() {
        var c = Checks("sharedpt.x")
        c.fails("mprotect", SharerReply(error: EINVAL), EINVAL)
        c.fails("mlock", SharerReply(), EINVAL)
        c.fails("mremap", SharerReply(error: EFAULT), EINVAL)
        c.sigbus("read", SharerReply(signal: SIGBUS))
        c.sigbus("read", SharerReply(value: 7))
        c.intact("check", SharerReply(error: EBADMSG, value: 0x3000, found: 9), seed: 0x1000)
        c.zeroes("zero", SharerReply(error: EBADMSG, value: 0x10, found: 0xAB))
        c.reads("word", SharerReply(value: 5), 5)
        c.succeeds("walk", SharerReply(signal: SIGSEGV, value: 0x2000))
        #expect(!c.ok)
        #expect(
            c.lines == [
                "sharedpt.x: mprotect: EINVAL (errno 22)",
                "sharedpt.x: mlock: succeeded, expected EINVAL -- FAILED",
                "sharedpt.x: mremap: EFAULT (errno 14), expected EINVAL -- FAILED",
                "sharedpt.x: read: SIGBUS",
                "sharedpt.x: read: no SIGBUS (ok) -- FAILED",
                "sharedpt.x: check: page at offset 0x3000 holds 0x9, expected 0x1003 -- FAILED",
                "sharedpt.x: zero: byte at offset 0x10 is 0xab, expected 0 (stale data) -- FAILED",
                "sharedpt.x: word: 0x5",
                "sharedpt.x: walk: SIGSEGV at offset 0x2000 -- FAILED",
            ])
    }
}

/// sharedpt.negative.non_shmem's regular file: where it looks, and what it refuses.
@Suite struct NonShmemFileTests {
    /// /proc/mounts as scripts/guest/init leaves the guest with --pmem (constructed from its
    /// mount commands, not captured).
    static let guestMounts = """
        rootfs / rootfs rw,size=1993836k,nr_inodes=498459 0 0
        proc /proc proc rw,relatime 0 0
        sysfs /sys sysfs rw,relatime 0 0
        devtmpfs /dev devtmpfs rw,relatime,size=1993840k,nr_inodes=498460,mode=755 0 0
        debugfs /sys/kernel/debug debugfs rw,relatime 0 0
        tmpfs /dev/shm tmpfs rw,relatime 0 0
        tmpfs /tmp tmpfs rw,relatime 0 0
        none /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0
        /dev/pmem0 /mnt/pmem ext4 rw,relatime 0 0
        ptshare /results 9p rw,sync,dirsync,relatime,access=client,msize=262144,trans=virtio 0 0

        """

    @Test func guestFindsThePmemMount() throws {
        let mounts = try Mounts.parse(Self.guestMounts)
        #expect(
            SharedPTNegative.regularFileCandidates(outDirectory: "/results", mounts: mounts) == [
                "/results", "/var/tmp", "/tmp", "/root", "/mnt/pmem",
            ])
    }

    @Test func onlyWritableBlockDeviceMountsAreAdded() throws {
        let mounts = try Mounts.parse(
            """
            /dev/vda / ext4 rw,relatime 0 0
            /dev/vdb /mnt/ro ext4 ro,relatime 0 0
            /dev/vdc /tmp xfs rw 0 0
            /dev/shm /mnt/odd tmpfs rw 0 0
            server:/x /mnt/nfs nfs rw 0 0

            """)
        #expect(
            SharedPTNegative.regularFileCandidates(outDirectory: "out", mounts: mounts) == [
                "out", "/var/tmp", "/tmp", "/root", "/",
            ])
    }

    @Test func shmemAndMissingDirectoriesAreRefusedByName() throws {
        guard let shm = try? Sys.statfs("/dev/shm"), shm.type == ptshare_TMPFS_MAGIC else {
            try Test.cancel("/dev/shm is not tmpfs here")
        }
        let r = SharedPTNegative.regularFile(candidates: ["/dev/shm", "/nonexistent-ptshare"])
        guard case .failure(let why) = r else {
            Issue.record("a file was made: \(r)")
            return
        }
        #expect(
            why.description
                == "no writable directory off tmpfs/ramfs/hugetlbfs that maps MAP_SHARED among /dev/shm (f_type 0x1021994), /nonexistent-ptshare (not there)"
        )
    }

    @Test func diskDirectoryIsUsedAndTheFileUnlinked() throws {
        guard let fs = try? Sys.statfs("/var/tmp"),
            ![ptshare_TMPFS_MAGIC, ptshare_RAMFS_MAGIC].contains(fs.type)
        else { try Test.cancel("/var/tmp is missing or on shmem here") }
        let r = SharedPTNegative.regularFile(candidates: ["/dev/shm", "/var/tmp"])
        guard case .success(let (path, fd)) = r else {
            Issue.record("no file: \(r)")
            return
        }
        defer { Sys.close(fd) }
        #expect(path.hasPrefix("/var/tmp/ptshare-sharedpt."))
        #expect(access(path, F_OK) != 0)
    }
}
