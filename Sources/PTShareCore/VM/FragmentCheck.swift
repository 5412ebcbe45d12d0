/// Which options of a config fragment a kernel's .config lacks: what scripts/kernel-build.sh
/// checks after olddefconfig, done again for a kernel given by path.
public enum FragmentCheck {
    /// Lines of `fragment` (`CONFIG_X=v` or `# CONFIG_X is not set`) that `config` contradicts,
    /// each with what the config says instead.
    public static func missing(fragment: String, config: KernelConfig) -> [String] {
        var out: [String] = []
        for raw in fragment.split(separator: "\n") {
            let line = String(raw).trimmingWhitespace()
            if line.hasPrefix("CONFIG_"), let eq = line.firstIndex(of: "=") {
                let name = String(line[..<eq])
                let want = String(line[line.index(after: eq)...])
                let got = config.value(name) ?? "absent"
                if got != want { out.append("\(line) (got: \(got == "n" ? "not set" : got))") }
            } else if line.hasPrefix("# CONFIG_"), line.hasSuffix(" is not set") {
                let name = String(line.dropFirst(2).prefix { $0 != " " })
                if let got = config.value(name), got != "n" { out.append("\(line) (got: \(got))") }
            }
        }
        return out
    }
}
