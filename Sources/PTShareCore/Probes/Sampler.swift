/// PageTables is global and page tables are freed after an RCU grace period, so one read can
/// still include a previous run's tables. Sample until the value holds still.
public struct StableSample: Sendable {
    public var meminfo: Meminfo
    /// Every PageTables reading taken, in bytes, oldest first.
    public var pageTablesSamples: [UInt64]
    /// True when the last `window` readings were equal before the time limit.
    public var stable: Bool
    /// max − min of the last `window` readings.
    public var spreadBytes: UInt64
    public var milliseconds: Int
    /// Whether per-CPU vmstat deltas were folded (/proc/sys/vm/stat_refresh) before each reading.
    public var statRefresh: Bool
}

public enum Sampler {
    /// The base's quiet window and limit: tables of processes that exited just before are
    /// uncounted after an RCU grace period, not at exit.
    public static let baseWindow = 30
    public static let baseLimitMs = 5000

    public static func stablePageTables(window: Int = 5, intervalMs: Int = 10, limitMs: Int = 3000)
        throws(RunError) -> StableSample
    {
        let start = Sys.monotonicNanoseconds()
        var samples: [UInt64] = []
        var last: Meminfo
        var refreshed = true
        while true {
            refreshed = ProcFS.refreshVMStats() && refreshed
            last = try ProcFS.meminfo()
            let pt: UInt64
            do { pt = try last.require("PageTables") } catch { throw .parse(error) }
            samples.append(pt)
            let elapsed = Int((Sys.monotonicNanoseconds() - start) / 1_000_000)
            switch decide(samples, window: window, elapsedMs: elapsed, limitMs: limitMs) {
            case .settled:
                return StableSample(
                    meminfo: last, pageTablesSamples: samples, stable: true, spreadBytes: 0, milliseconds: elapsed,
                    statRefresh: refreshed)
            case .gaveUp(let spread):
                return StableSample(
                    meminfo: last, pageTablesSamples: samples, stable: false, spreadBytes: spread,
                    milliseconds: elapsed,
                    statRefresh: refreshed)
            case .sampleAgain: break
            }
            if Sys.stopSignal != 0 { throw .interrupted(signal: Sys.stopSignal) }
            Sys.sleep(milliseconds: intervalMs)
        }
    }

    /// What the readings so far (oldest first) say after `elapsedMs`.
    public enum Decision: Sendable, Equatable {
        /// The last `window` readings are equal.
        case settled
        /// The time limit passed first; `spread` is max − min of the last `window` readings.
        case gaveUp(spread: UInt64)
        case sampleAgain
    }

    /// The settle rule, apart from the reading: `window` equal readings in a row settle, even
    /// at the time limit; past the limit without them the sampler gives up.
    public static func decide(_ samples: [UInt64], window: Int, elapsedMs: Int, limitMs: Int) -> Decision {
        let tail = samples.suffix(window)
        let spread = (tail.max() ?? 0) - (tail.min() ?? 0)
        if tail.count == window && spread == 0 { return .settled }
        if elapsedMs >= limitMs { return .gaveUp(spread: spread) }
        return .sampleAgain
    }
}
