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
        #expect(names.count == 25)
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
