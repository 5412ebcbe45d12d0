/// Finds the kernel's own reports of trouble in a guest console log.
public enum ConsoleScan {
    /// What fails a VM run wherever it appears in the console.
    public static let patterns = [
        "BUG:", "WARNING:", "Oops", "Kernel panic", "soft lockup", "hung_task", "general protection fault",
        "UBSAN:", "detected stalls", "self-detected stall",
        // lockdep (patched-debug): its reports start with a row of '=' and these titles.
        "possible circular locking", "possible recursive locking", "inconsistent lock state",
        "INFO: possible", "suspicious RCU usage",
    ]

    /// The lines that match `patterns`, with their 1-based line numbers.
    public static func problems(in log: String) -> [(line: Int, text: String)] {
        var found: [(Int, String)] = []
        // isNewline, not "\n": a serial console ends lines with "\r\n", one Character in Swift.
        for (i, line) in log.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
        where patterns.contains(where: { line.contains($0) }) {
            found.append((i + 1, String(line).trimmingWhitespace()))
        }
        return found
    }

    /// The last `count` non-empty lines, for error messages.
    public static func tail(_ log: String, count: Int = 15) -> String {
        log.split(separator: "\n").suffix(count).joined(separator: "\n")
    }
}
