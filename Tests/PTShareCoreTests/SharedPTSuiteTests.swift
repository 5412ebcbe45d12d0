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
        #expect(names.count == 24)
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
        #expect(
            SharedPTStress.describe(report(PTSHARE_STRESS_FOREIGN, child: true))
                == "process 3 (pid 1234, a forked child): another process's word is neither 0 nor that process's value for the page: file offset 0x401010: found 0xa5, expected 0xa500300004010000"
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
