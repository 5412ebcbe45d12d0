/// Whether the suite's SKIPs are acceptable. On a kernel that should run everything (the
/// patched flavours), a SKIP is a test that did not run: green only when it is on the
/// allow-list, each entry printed with the test's own reason. On the stock path (a kernel
/// without the flag) the tests that need the flag SKIP by design, and every other SKIP is a
/// test that should have run unshared: `allowUnsupported` lets the former through only.
public struct SkipPolicy: Sendable, Equatable {
    /// SKIP fails the suite unless the test is in `allowed`.
    public var failOnSkip: Bool
    public var allowed: [String]
    /// With `failOnSkip`: a SKIP whose reason is the kernel's lack of MAP_SHARED_PT is allowed.
    public var allowUnsupported: Bool

    public init(failOnSkip: Bool = false, allowed: [String] = [], allowUnsupported: Bool = false) {
        self.failOnSkip = failOnSkip
        self.allowed = allowed
        self.allowUnsupported = allowUnsupported
    }

    /// The verdict on `results`: the lines to print (KTAP diagnostics, without "# ") and
    /// whether the skips fail the suite. Pure.
    public func judge(_ results: [KTAPResult]) -> (lines: [String], fails: Bool) {
        var lines: [String] = []
        var refused = 0
        var unsupported = 0
        for r in results {
            guard case .skip(let why) = r.status else { continue }
            if allowUnsupported && why.hasPrefix(Suite.sharedPTUnsupportedPrefix) {
                unsupported += 1
            } else if allowed.contains(r.name) {
                lines.append("skip policy: \(r.name) skipped (allowed by --allow-skip): \(why)")
            } else if failOnSkip {
                lines.append("skip policy: \(r.name) skipped and not on the allow-list -- FAILED: \(why)")
                refused += 1
            }
        }
        for a in allowed where !results.contains(where: { $0.name == a }) {
            lines.append("skip policy: --allow-skip \(a): the test did not run in this suite")
        }
        if failOnSkip && allowUnsupported {
            lines.append(
                "skip policy: \(unsupported) skip(s) for want of MAP_SHARED_PT (allowed by --allow-unsupported-skips)")
        }
        if failOnSkip {
            lines.append(
                "skip policy: \(refused) skip(s) not allowed"
                    + (allowed.isEmpty ? " (no --allow-skip given)" : " (allowed: \(allowed.joined(separator: ", ")))"))
        }
        return (lines, refused > 0)
    }
}
