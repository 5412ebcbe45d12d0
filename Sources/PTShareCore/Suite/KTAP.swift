/// KTAP version 1 (Documentation/dev-tools/ktap.rst), as kselftest prints it.
public struct KTAPResult: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case pass
        case fail
        case skip(String)
    }

    public var name: String
    public var status: Status
    /// Diagnostic lines printed before the result line, without the leading "# ".
    public var diagnostics: [String]

    public init(name: String, status: Status, diagnostics: [String] = []) {
        self.name = name
        self.status = status
        self.diagnostics = diagnostics
    }
}

public enum KTAP {
    public static func header(count: Int) -> String { "KTAP version 1\n1..\(count)\n" }

    /// The diagnostics and the `ok`/`not ok` line of test number `number` (1-based).
    public static func result(_ r: KTAPResult, number: Int) -> String {
        var out = ""
        for d in r.diagnostics {
            for line in d.split(separator: "\n", omittingEmptySubsequences: false) { out += "# \(line)\n" }
        }
        switch r.status {
        case .pass: out += "ok \(number) \(r.name)\n"
        case .fail: out += "not ok \(number) \(r.name)\n"
        case .skip(let why): out += "ok \(number) \(r.name) # SKIP \(oneLine(why))\n"
        }
        return out
    }

    /// kselftest's closing line.
    public static func totals(_ results: [KTAPResult]) -> String {
        var pass = 0
        var fail = 0
        var skip = 0
        for r in results {
            switch r.status {
            case .pass: pass += 1
            case .fail: fail += 1
            case .skip: skip += 1
            }
        }
        return "# Totals: pass:\(pass) fail:\(fail) xfail:0 xpass:0 skip:\(skip) error:0\n"
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
