/// `name value` counter files: /proc/vmstat, and cgroup v2's memory.stat and memory.events.
/// One counter a line, a decimal value; anything else is malformed, never skipped.
public enum Counters {
    public static func parse(_ text: String, source: String) throws(ProcParseError) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in ProcText.lines(text) {
            let t = ProcText.tokens(line.text)
            guard t.count == 2 else {
                throw ProcText.failure(source, line, "expected \"name value\", found \(t.count) fields")
            }
            guard let v = ProcText.decimal(t[1]) else {
                throw ProcText.failure(source, line, "non-numeric value \"\(t[1])\"")
            }
            guard out.updateValue(v, forKey: String(t[0])) == nil else {
                throw ProcText.failure(source, line, "\"\(t[0])\" appears twice")
            }
        }
        if out.isEmpty { throw ProcText.wholeFile(source, "no counters") }
        return out
    }

    /// `after[key] - before[key]` for counters that only grow; nil when either lacks it.
    public static func delta(_ before: [String: UInt64], _ after: [String: UInt64], _ key: String) -> UInt64? {
        guard let a = after[key], let b = before[key] else { return nil }
        return a >= b ? a - b : 0
    }
}
