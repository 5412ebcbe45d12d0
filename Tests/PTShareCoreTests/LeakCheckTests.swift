import Testing

@testable import PTShareCore

/// The teardown leak decision on synthetic readings: what a kernel that forgets to free a
/// shared table per chunk would leave behind must fail, the measured noise must not.
@Suite struct LeakCheckTests {
    let base: Int64 = 12_894_208
    let noise = LeakCheck.settleNoiseBytes

    @Test func backAtBaseOrBelowPasses() {
        for after in [base, base - 4096, base - 2 << 20] {
            let o = LeakCheck.judge(before: base, after: after, driverChange: 0, noise: noise, settled: true)
            #expect(o.status == .pass, "\(o.line)")
            #expect(o.leakBytes == after - base)
        }
    }

    @Test func noiseUpToTheAllowanceIsNoLeak() {
        let o = LeakCheck.judge(before: base, after: base + noise, driverChange: 0, noise: noise, settled: true)
        #expect(o.status == .pass)
        let one = LeakCheck.judge(before: base, after: base + noise + 1, driverChange: 0, noise: noise, settled: true)
        #expect(one.status == .fail)
    }

    /// The mutant the lead runs: the last detach forgets to free, one 4 KiB table per chunk
    /// of sharedpt.teardown.no_leak's 16-chunk memfd.
    @Test func aLeakedTablePerChunkFailsAndNamesTheBytes() {
        let leaked = Int64(16) * 4096
        #expect(leaked == 65536)
        let o = LeakCheck.judge(before: base, after: base + leaked, driverChange: 0, noise: 8192, settled: true)
        #expect(o.status == .fail)
        #expect(o.leakBytes == 65536)
        #expect(
            o.line
                == "PageTables before 12894208 B, after teardown 12959744 B: 65536 B above the base (the driver's "
                + "own VmPTE change, 0 B, taken out), allowed noise 8192 B; LEAK: 65536 B (64.0 KiB) did not come back")
    }

    @Test func theDriversOwnTablesAreTakenOut() {
        let o = LeakCheck.judge(before: base, after: base + 12288, driverChange: 12288, noise: 0, settled: true)
        #expect(o.status == .pass)
        #expect(o.leakBytes == 0)
        let hidden = LeakCheck.judge(before: base, after: base + 12288, driverChange: -4096, noise: 0, settled: true)
        #expect(hidden.leakBytes == 16384)
        #expect(hidden.status == .fail)
    }

    @Test func anUnsettledReadingIsNotJudged() {
        let o = LeakCheck.judge(before: base, after: base + (1 << 20), driverChange: 0, noise: noise, settled: false)
        #expect(o.status == .skip)
        #expect(o.line.hasSuffix("; not judged: PageTables did not settle"))
    }

    @Test func mergeFailsAPassingRunOnALeakAndKeepsAFailure() {
        let pass = Verdict(status: .pass, reason: "measured 8.0 MiB vs model 8.0 MiB", allowedDeviationBytes: 1)
        let leak = LeakCheck.judge(before: base, after: base + 65536, driverChange: 0, noise: noise, settled: true)
        let clean = LeakCheck.judge(before: base, after: base, driverChange: 0, noise: noise, settled: true)
        let unsettled = LeakCheck.judge(before: base, after: base, driverChange: 0, noise: noise, settled: false)
        #expect(LeakCheck.merge(pass, leak).status == .fail)
        #expect(LeakCheck.merge(pass, leak).reason == pass.reason + "; teardown: " + leak.line)
        #expect(LeakCheck.merge(pass, clean).status == .pass)
        #expect(LeakCheck.merge(pass, unsettled).status == .skip)
        var fail = pass
        fail.status = .fail
        #expect(LeakCheck.merge(fail, clean).status == .fail)
        #expect(LeakCheck.merge(fail, unsettled).status == .fail)
        var skip = pass
        skip.status = .skip
        #expect(LeakCheck.merge(skip, leak).status == .fail)
        #expect(LeakCheck.merge(skip, clean).status == .skip)
    }
}

/// Suite.run's check around every sharedpt.* test, and the size of sharedpt.teardown.no_leak.
@Suite struct SuiteTeardownTests {
    let base: Int64 = 12_894_208
    let noise = LeakCheck.settleNoiseBytes

    @Test func aSharedPTTestThatLeaksFailsWithTheLine() {
        let leak = LeakCheck.judge(before: base, after: base + 65536, driverChange: 0, noise: noise, settled: true)
        let clean = LeakCheck.judge(before: base, after: base + 4096, driverChange: 0, noise: 4096, settled: true)
        let unsettled = LeakCheck.judge(before: base, after: base, driverChange: 0, noise: noise, settled: false)
        let passed = KTAPResult(name: "sharedpt.x", status: .pass, diagnostics: ["sharedpt.x: fine"])
        let skipped = KTAPResult(name: "sharedpt.x", status: .skip("no census"))

        let failed = Suite.teardownVerdict(passed, leak)
        #expect(failed.status == .fail)
        #expect(failed.diagnostics == ["sharedpt.x: fine", "sharedpt.x: teardown: \(leak.line) -- FAILED"])
        #expect(Suite.teardownVerdict(skipped, leak).status == .fail)

        #expect(Suite.teardownVerdict(passed, clean).status == .pass)
        #expect(Suite.teardownVerdict(passed, clean).diagnostics.last == "sharedpt.x: teardown: \(clean.line)")
        #expect(Suite.teardownVerdict(skipped, clean).status == .skip("no census"))
        #expect(Suite.teardownVerdict(passed, unsettled).status == .pass)

        let unread = Suite.teardownVerdict(passed, nil, error: "cannot read /proc/meminfo")
        #expect(unread.status == .fail)
        #expect(unread.diagnostics.last == "sharedpt.x: PageTables after the test: cannot read /proc/meminfo -- FAILED")
    }
    /// A kernel whose last detach forgets to free leaks a 4 KiB table per chunk: the
    /// teardown test's files are big enough for that to stand well above the noise.
    @Test func theTeardownScenariosLeakWellAboveTheNoise() {
        for sc in SharedPTTeardown.scenarios {
            let leaked = Int64(sc.size / Geometry.pmdSize) * 4096
            #expect(leaked >= 16 * 4096 && leaked > LeakCheck.settleNoiseBytes, "\(sc.label)")
            let o = LeakCheck.judge(before: base, after: base + leaked, driverChange: 0, noise: noise, settled: true)
            #expect(o.status == .fail, "\(sc.label)")
        }
        #expect(
            SharedPTTeardown.scenarios.map(\.label) == [
                "creator_first", "creator_last", "all_at_once", "sigkill_populating", "execve", "munmap_piecewise",
            ])
    }
}
