/// Whether PageTables came back to its base once everything a run or test started was reaped.
/// Nothing reads PageTables after a run otherwise, and the next run takes a fresh base: a
/// kernel that leaks a shared table on exit would pass every other check.
public enum LeakCheck {
    /// How far a settled PageTables reading may sit above the base with nothing leaked: the
    /// noise measured on 2026-11-29 (README, "Teardown noise"). In the guest (patched, TCG,
    /// 2 vCPUs, root, stat_refresh) all 22 after-teardown readings equalled their base to the
    /// byte once the driver's VmPTE change was taken out: 0 B. Natively (6.18, 2 CPUs busy
    /// with kernel builds) no reading settled in 6 runs (spread 20 KiB-1.7 MiB over the
    /// 30-reading window): those are not judged, so they set no noise. A host that settles
    /// with some noise raises `RunOptions/SuiteOptions.teardownNoiseBytes`.
    public static let settleNoiseBytes: Int64 = 0

    public struct Outcome: Sendable, Equatable {
        /// pass: within the noise; fail: a leak beyond it; skip: a reading never settled.
        public var status: VerdictStatus
        /// after − before − the driver's own VmPTE change.
        public var leakBytes: Int64
        public var line: String
    }

    /// Pure: the settled readings before and after (PageTables, bytes), the driver's VmPTE
    /// change between them (its own tables are not the scenario's), the allowed noise, and
    /// whether both readings settled. A drop below the base is no leak (other processes exit).
    public static func judge(
        before: Int64, after: Int64, driverChange: Int64, noise: Int64, settled: Bool
    ) -> Outcome {
        let leak = after - before - driverChange
        // Exact bytes: a leaked table is 4096 of them, lost in "12.3 MiB".
        let text =
            "PageTables before \(before) B, after teardown \(after) B: \(leak) B above the base "
            + "(the driver's own VmPTE change, \(driverChange) B, taken out), allowed noise \(noise) B"
        if !settled {
            return Outcome(status: .skip, leakBytes: leak, line: text + "; not judged: PageTables did not settle")
        }
        if leak > noise {
            return Outcome(
                status: .fail, leakBytes: leak,
                line: text + "; LEAK: \(leak) B (\(ByteSize.human(leak))) did not come back")
        }
        return Outcome(status: .pass, leakBytes: leak, line: text)
    }

    /// Pure: a verdict with the teardown's outcome folded in. A leak fails it; a reading that
    /// never settled turns a pass into a skip (no judgement either way); the line is added to
    /// the reason in every case, so that a report always says how the teardown went.
    public static func merge(_ v: Verdict, _ o: Outcome) -> Verdict {
        var r = v
        r.reason += "; teardown: " + o.line
        switch (v.status, o.status) {
        case (_, .fail): r.status = .fail
        case (.pass, .skip): r.status = .skip
        default: break
        }
        return r
    }

    /// A settled reading the same way as a run's base (a long quiet window: tables of
    /// processes that just exited are uncounted after an RCU grace period, not at exit),
    /// with the driver's own VmPTE.
    public static func read() throws(RunError) -> Reading {
        let s = try Sampler.stablePageTables(window: Sampler.baseWindow, limitMs: Sampler.baseLimitMs)
        return Reading(sample: s, driverVmPTE: try Runner.driverVmPTE())
    }

    public struct Reading: Sendable {
        public var sample: StableSample
        public var driverVmPTE: Int64
        public var pageTables: Int64 { Int64(sample.meminfo.pageTables ?? 0) }
    }

    /// `judge` on two readings.
    public static func judge(_ before: Reading, _ after: Reading, noise: Int64 = settleNoiseBytes) -> Outcome {
        judge(
            before: before.pageTables, after: after.pageTables, driverChange: after.driverVmPTE - before.driverVmPTE,
            noise: noise, settled: before.sample.stable && after.sample.stable)
    }
}
