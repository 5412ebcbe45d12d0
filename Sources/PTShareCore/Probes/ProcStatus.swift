/// A process's identity and sizes from `/proc/PID/status`.
///
/// `VmPTE` is the kernel's per-mm page-table charge: the number ptshare attributes to each
/// worker, and the one that must stay flat when page tables are really shared.
public struct ProcStatus: Sendable, Equatable {
    /// `Name`: the command name as the kernel prints it (escapes left as they are).
    public var name: String
    /// `Pid`: the thread-group id in the reader's PID namespace.
    public var pid: Int32
    /// `PPid`: the parent's pid, 0 for init and kthreadd.
    public var ppid: Int32
    /// `State`: the whole value, e.g. `R (running)`; `stateCode` gives the letter.
    public var state: String
    /// Every `kB` line in bytes (`VmRSS`, `VmPTE`, `RssShmem`, `HugetlbPages`, ...).
    public var sizes: [String: UInt64]
    /// Every line's value as text, surrounding padding removed, for the fields not modelled here.
    public var fields: [String: String]

    public init(
        name: String, pid: Int32, ppid: Int32, state: String,
        sizes: [String: UInt64], fields: [String: String] = [:]
    ) {
        self.name = name
        self.pid = pid
        self.ppid = ppid
        self.state = state
        self.sizes = sizes
        self.fields = fields
    }

    /// Parses the text of `/proc/PID/status`.
    ///
    /// Lines are `Key:<TAB>value`. Values ending in ` kB` go to `sizes` in bytes and must be
    /// numeric; `Name`, `Pid`, `PPid` and `State` must be present, as every kernel prints them.
    public static func parse(_ text: String, source: String = "/proc/self/status") throws(ProcParseError)
        -> ProcStatus
    {
        let lines = ProcText.lines(text)
        guard !lines.isEmpty else { throw ProcText.wholeFile(source, "empty file") }
        var name: String?
        var pid: Int32?
        var ppid: Int32?
        var state: String?
        var sizes: [String: UInt64] = [:]
        var fields: [String: String] = [:]
        for line in lines {
            let (key, value) = try ProcText.keyValue(line, source: source)
            let trimmed = ProcText.trimmed(value)
            guard fields.updateValue(String(trimmed), forKey: key) == nil else {
                throw ProcText.failure(source, line, "duplicate key \"\(key)\"")
            }
            let parts = ProcText.tokens(trimmed)
            if parts.count == 2, parts[1] == "kB" {
                sizes[key] = try ProcText.sizeOrCount(trimmed, line: line, source: source)
            }
            switch key {
            case "Name":
                // The kernel writes "Name:\t%s"; only that one tab is padding, a name may start with a space.
                var v = value
                if v.first == "\t" { v = v.dropFirst() }
                if v.last == "\r" { v = v.dropLast() }
                name = String(v)
            case "Pid", "PPid":
                guard let n = ProcText.decimal(trimmed), let id = Int32(exactly: n) else {
                    throw ProcText.failure(source, line, "\(key) is not a pid")
                }
                if key == "Pid" { pid = id } else { ppid = id }
            case "State":
                state = String(trimmed)
            default:
                break
            }
        }
        guard let name else { throw ProcText.wholeFile(source, "missing field \"Name\"") }
        guard let pid else { throw ProcText.wholeFile(source, "missing field \"Pid\"") }
        guard let ppid else { throw ProcText.wholeFile(source, "missing field \"PPid\"") }
        guard let state else { throw ProcText.wholeFile(source, "missing field \"State\"") }
        return ProcStatus(name: name, pid: pid, ppid: ppid, state: state, sizes: sizes, fields: fields)
    }

    /// The one-letter state (`R`, `S`, `Z`, ...), the part worth comparing.
    public var stateCode: String {
        String(state.prefix(while: { $0 != " " }))
    }

    /// Bytes of page tables charged to this mm (`VmPTE`).
    public var vmPTE: UInt64? { sizes["VmPTE"] }
    /// Bytes resident (`VmRSS` = `RssAnon` + `RssFile` + `RssShmem`; hugetlb is not in it).
    public var vmRSS: UInt64? { sizes["VmRSS"] }
    /// Bytes of resident shmem/memfd pages (`RssShmem`).
    public var rssShmem: UInt64? { sizes["RssShmem"] }
    /// Bytes of hugetlb pages mapped (`HugetlbPages`), which `VmRSS` leaves out.
    public var hugetlbPages: UInt64? { sizes["HugetlbPages"] }
}
