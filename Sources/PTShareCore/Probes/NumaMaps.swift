/// One mapping from `/proc/PID/numa_maps` (fs/proc/task_mmu.c, show_numa_map): its memory policy
/// and, per NUMA node, how many of its pages this process maps.
public struct NumaMapsEntry: Sendable, Equatable {
    /// First address of the mapping (vm_start).
    public var address: UInt64
    /// The policy as mpol_to_str prints it: `default`, `local`, `bind:0-1`, `interleave:0`,
    /// `prefer:1`, `weighted interleave:0-1`, `prefer (many):0`, flags after `=` (`bind=static:1`).
    /// The VMA's policy, else the task's: a worker shows the policy it inherited.
    public var policy: String
    /// `file=`, with the octal escapes seq_path writes for space, tab, newline and `=` decoded
    /// (`/memfd:ptshare (deleted)`); nil for anonymous memory.
    public var file: String?
    public var heap: Bool
    public var stack: Bool
    /// hugetlb (`huge`): page counts are in huge pages.
    public var huge: Bool
    /// `N<node>=<pages>`: pages mapped here per node, in units of `kernelPageSize`. The kernel
    /// prints only nodes that hold some, so a node absent here holds none of them.
    public var pagesPerNode: [Int: UInt64]
    /// `anon=`, `dirty=`, `mapped=`, `mapmax=`, `swapcache=`, `active=`, `writeback=`, and any
    /// other `key=N` a newer kernel adds. Each is printed only when it says something: `mapped=`
    /// only when it differs from both anon and dirty (use `pages` for the total).
    public var counters: [String: UInt64]
    /// `kernelpagesize_kB=` in bytes; the kernel prints it only when the mapping has pages.
    public var kernelPageSize: UInt64?

    public init(
        address: UInt64, policy: String, file: String? = nil, heap: Bool = false, stack: Bool = false,
        huge: Bool = false, pagesPerNode: [Int: UInt64] = [:], counters: [String: UInt64] = [:],
        kernelPageSize: UInt64? = nil
    ) {
        self.address = address
        self.policy = policy
        self.file = file
        self.heap = heap
        self.stack = stack
        self.huge = huge
        self.pagesPerNode = pagesPerNode
        self.counters = counters
        self.kernelPageSize = kernelPageSize
    }

    /// Every page this process maps in the mapping: the sum over nodes.
    public var pages: UInt64 { pagesPerNode.values.reduce(0, +) }
    public var mapped: UInt64? { counters["mapped"] }
    public var active: UInt64? { counters["active"] }
    public var dirty: UInt64? { counters["dirty"] }
    public var anon: UInt64? { counters["anon"] }
}

/// The parser for `/proc/PID/numa_maps`.
public enum NumaMaps {
    /// Parses `/proc/PID/numa_maps`: per line `address policy [file=PATH|heap|stack] [huge]
    /// [key=N ...] [N<node>=pages ...] [kernelpagesize_kB=N]`.
    ///
    /// The policy is one word, or two for `weighted interleave` and `prefer (many)`. A bad
    /// address, a line without a policy, a word after the policy that is no detail, a
    /// non-numeric count or a repeated key is an error. Empty text gives `[]`.
    public static func parse(_ text: String, source: String = "/proc/self/numa_maps") throws(ProcParseError)
        -> [NumaMapsEntry]
    {
        var entries: [NumaMapsEntry] = []
        for line in ProcText.lines(text) {
            let tokens = ProcText.tokens(line.text)
            guard let address = ProcText.hex(tokens[0]) else {
                throw ProcText.failure(source, line, "bad address \"\(tokens[0])\"")
            }
            guard tokens.count > 1, !isDetail(tokens[1]) else {
                throw ProcText.failure(source, line, "no policy after the address")
            }
            // Two modes have a space in their name; every other policy is one word.
            var i = 2
            if tokens.count > 2,
                (tokens[1] == "weighted" && tokens[2].hasPrefix("interleave"))
                    || (tokens[1] == "prefer" && tokens[2].hasPrefix("(many)"))
            {
                i = 3
            }
            var e = NumaMapsEntry(address: address, policy: tokens[1..<i].joined(separator: " "))
            for token in tokens[i...] {
                try apply(token, to: &e, line: line, source: source)
            }
            entries.append(e)
        }
        return entries
    }

    /// The entry of the mapping that starts at `address` (each worker maps once, so its VMA
    /// starts where its mapping does).
    public static func entry(at address: UInt64, in entries: [NumaMapsEntry]) -> NumaMapsEntry? {
        entries.first { $0.address == address }
    }

    static let words: Set<Substring> = ["heap", "stack", "huge"]

    /// `heap`, `stack`, `huge`, `file=…` or `key=digits`; policies never look like that
    /// (`bind=static:0` has a colon after the `=`).
    static func isDetail(_ t: Substring) -> Bool {
        if words.contains(t) || t.hasPrefix("file=") { return true }
        guard let eq = t.firstIndex(of: "=") else { return false }
        let key = t[..<eq]
        return !key.isEmpty && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
            && ProcText.decimal(t[t.index(after: eq)...]) != nil
    }

    static func apply(_ t: Substring, to e: inout NumaMapsEntry, line: ProcText.Line, source: String)
        throws(ProcParseError)
    {
        if words.contains(t) {
            let flag: WritableKeyPath<NumaMapsEntry, Bool> = t == "heap" ? \.heap : t == "stack" ? \.stack : \.huge
            if e[keyPath: flag] { throw ProcText.failure(source, line, "\"\(t)\" twice") }
            e[keyPath: flag] = true
            return
        }
        if t.hasPrefix("file=") {
            guard e.file == nil else { throw ProcText.failure(source, line, "file= twice") }
            e.file = unescape(t.dropFirst(5))
            return
        }
        guard isDetail(t), let eq = t.firstIndex(of: "="), let n = ProcText.decimal(t[t.index(after: eq)...]) else {
            throw ProcText.failure(source, line, "expected key=number after the policy, found \"\(t)\"")
        }
        let key = t[..<eq]
        if key == "kernelpagesize_kB" {
            guard e.kernelPageSize == nil else { throw ProcText.failure(source, line, "kernelpagesize_kB twice") }
            let (bytes, overflow) = n.multipliedReportingOverflow(by: 1024)
            if overflow { throw ProcText.failure(source, line, "kernelpagesize_kB overflows 64 bits in bytes") }
            e.kernelPageSize = bytes
        } else if key.first == "N", let node = ProcText.decimal(key.dropFirst()), let id = Int(exactly: node) {
            guard e.pagesPerNode.updateValue(n, forKey: id) == nil else {
                throw ProcText.failure(source, line, "N\(id)= twice")
            }
        } else {
            guard e.counters.updateValue(n, forKey: String(key)) == nil else {
                throw ProcText.failure(source, line, "\(key)= twice")
            }
        }
    }

    /// Decodes the `\ooo` escapes seq_path writes (`\040` for a space).
    static func unescape(_ s: Substring) -> String {
        let b = Array(s.utf8)
        let isOctal = { (c: UInt8) in c >= UInt8(ascii: "0") && c <= UInt8(ascii: "7") }
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count, b[(i + 1)...(i + 3)].allSatisfy(isOctal) {
                let v = b[(i + 1)...(i + 3)].reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                if v <= 0xff {
                    out.append(UInt8(v))
                    i += 4
                    continue
                }
            }
            out.append(b[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
