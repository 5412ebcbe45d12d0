/// A kernel build configuration: a `.config` file or `/proc/config.gz` decompressed.
///
/// Whether page-table sharing can happen at all is decided at build time
/// (`CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING`, `CONFIG_PGTABLE_LEVELS`, ...), so a verdict
/// must be able to say "this kernel cannot do it" rather than "it did not happen".
public struct KernelConfig: Sendable, Equatable {
    /// `CONFIG_X` → the text after `=` as written (`y`, `m`, `64`, `0x1000000`, `"quoted"`);
    /// `# CONFIG_X is not set` → `n`.
    public var options: [String: String]

    public init(options: [String: String]) {
        self.options = options
    }

    /// Parses `.config` text.
    ///
    /// Accepts `CONFIG_X=value`, `# CONFIG_X is not set`, other `#` comments and blank lines;
    /// any other line, or an empty value, is an error. An option assigned twice keeps the
    /// later value, as Kconfig does. Text with no options at all is an error.
    public static func parse(_ text: String, source: String = "/proc/config.gz") throws(ProcParseError)
        -> KernelConfig
    {
        var options: [String: String] = [:]
        for line in ProcText.lines(text) {
            let t = ProcText.trimmed(line.text)
            if t.first == "#" {
                let words = ProcText.tokens(t.dropFirst())
                if words.count == 4, words[0].hasPrefix("CONFIG_"), words[1] == "is", words[2] == "not",
                    words[3] == "set"
                {
                    guard isOptionName(words[0]) else {
                        throw ProcText.failure(source, line, "bad option name \"\(words[0])\"")
                    }
                    options[String(words[0])] = "n"
                }
                continue
            }
            guard let eq = t.firstIndex(of: "=") else {
                throw ProcText.failure(source, line, "expected CONFIG_X=value or a # comment")
            }
            let name = t[..<eq]
            let value = t[t.index(after: eq)...]
            guard isOptionName(name) else {
                throw ProcText.failure(source, line, "bad option name \"\(name)\"")
            }
            guard !value.isEmpty else {
                throw ProcText.failure(source, line, "empty value for \(name)")
            }
            options[String(name)] = String(value)
        }
        guard !options.isEmpty else { throw ProcText.wholeFile(source, "no CONFIG_ options") }
        return KernelConfig(options: options)
    }

    /// The raw value of an option; `name` may be given with or without the `CONFIG_` prefix.
    /// Nil means the option is absent from the file (not offered on this architecture/version).
    public func value(_ name: String) -> String? {
        options[name.hasPrefix("CONFIG_") ? name : "CONFIG_" + name]
    }

    /// Whether the option is built in (`y`) or a module (`m`).
    public func isEnabled(_ name: String) -> Bool {
        let v = value(name)
        return v == "y" || v == "m"
    }

    /// `CONFIG_` followed by at least one of `A-Z a-z 0-9 _`.
    static func isOptionName(_ s: Substring) -> Bool {
        guard s.hasPrefix("CONFIG_"), s.count > 7 else { return false }
        return s.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")
        }
    }
}
