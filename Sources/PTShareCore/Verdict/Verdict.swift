public enum VerdictStatus: String, Sendable, Codable {
    case pass, fail, skip

    /// CLI exit status: kselftest's convention (0 pass, 1 fail, 4 skip).
    public var exitCode: Int32 {
        switch self {
        case .pass: return 0
        case .fail: return 1
        case .skip: return 4
        }
    }
}

public struct Verdict: Sendable, Equatable, Codable {
    public var status: VerdictStatus
    public var reason: String
    /// The absolute difference allowed between measured and expected bytes.
    public var allowedDeviationBytes: Int64

    /// Measured attributed bytes against the model. The tolerance is relative to the expected
    /// bytes, but never tighter than that fraction of one table page per worker: a model that
    /// expects (almost) nothing still has to tell "shared" from "one page each".
    public static func judge(
        attributed: Int64, model: ModelResult, workers: Int, tolerance: Double, samplingStable: Bool
    ) -> Verdict {
        let floor = Int64(workers) * Int64(Geometry.page)
        let allowed = Int64((Double(max(model.expectedPageTableBytes, floor)) * tolerance).rounded())
        let deviation = attributed - model.expectedPageTableBytes
        let pct =
            model.expectedPageTableBytes == 0
            ? "" : " (\(formatFixed(Double(deviation) * 100 / Double(model.expectedPageTableBytes), decimals: 1)) %)"
        let text =
            "measured \(ByteSize.human(attributed)) vs model \(ByteSize.human(model.expectedPageTableBytes)): "
            + "deviation \(ByteSize.human(deviation))\(pct), allowed ±\(ByteSize.human(allowed))"
        // A measurement that never settled cannot support a verdict either way.
        if !samplingStable {
            return Verdict(
                status: .skip,
                reason: text + "; PageTables did not settle while sampling (another process allocating page tables?)",
                allowedDeviationBytes: allowed)
        }
        return Verdict(status: abs(deviation) <= allowed ? .pass : .fail, reason: text, allowedDeviationBytes: allowed)
    }
}

extension Verdict {
    /// The verdict once the probe module's census is in: its line added, and a census that
    /// disagrees with the model failing the run.
    public func judgingTables(_ t: RunReport.Tables, faultedIn: Bool) -> Verdict {
        let line =
            "tables: \(t.distinctPteTables) distinct PTE tables (model \(t.expectedDistinctPteTables)), "
            + "\(t.distinctPmdTables) distinct PMD tables (model \(t.expectedDistinctPmdTables))"
        var v = self
        if !faultedIn {
            // Nothing faulted in: what the module sees is other mappings' tables, which the
            // model only estimates from smaps. Reported, not judged.
            v.reason += "; " + line + " (not judged: nothing faulted in)"
        } else if !t.matchesModel && status != .fail {
            // Table identity is exact: a mismatch fails even a run whose totals never settled.
            v = Verdict(status: .fail, reason: reason + "; " + line, allowedDeviationBytes: allowedDeviationBytes)
        } else {
            v.reason += "; " + line
        }
        return v
    }
}

/// Savings of a run against the unshared baseline of the same scenario.
public struct Savings: Sendable, Equatable, Codable {
    public var baselineAttributedBytes: Int64
    public var attributedBytes: Int64
    /// 1 − attributed / baseline; nil when the baseline measured nothing.
    public var fraction: Double?

    public init(baseline: Int64, measured: Int64) {
        baselineAttributedBytes = baseline
        attributedBytes = measured
        fraction = baseline > 0 ? 1 - Double(measured) / Double(baseline) : nil
    }
}
