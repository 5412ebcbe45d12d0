/// One line of `/proc/mounts` (or `/proc/self/mounts`), escapes decoded.
///
/// ptshare needs to know what filesystem backs a shared file: hugetlbfs and its
/// `pagesize=`, tmpfs and its `huge=`, or a DAX mount, since each shares page tables differently.
public struct MountEntry: Sendable, Equatable {
    /// The device or name column (`/dev/vda`, `none`, `tmpfs`).
    public var source: String
    /// Where it is mounted, with `\040`-style escapes decoded.
    public var mountPoint: String
    /// Filesystem type (`hugetlbfs`, `tmpfs`, `ext4`, ...).
    public var fsType: String
    /// Comma-separated options in order, each decoded (`rw`, `pagesize=2M`, `dax`).
    public var options: [String]

    public init(source: String, mountPoint: String, fsType: String, options: [String]) {
        self.source = source
        self.mountPoint = mountPoint
        self.fsType = fsType
        self.options = options
    }

    /// The value of option `name`: `"2M"` for `pagesize=2M`, `""` for a bare `dax`, nil if absent.
    public func option(_ name: String) -> String? {
        for opt in options {
            if let eq = opt.firstIndex(of: "=") {
                if opt[..<eq] == name { return String(opt[opt.index(after: eq)...]) }
            } else if opt == name {
                return ""
            }
        }
        return nil
    }
}

/// Parser and lookup for `/proc/mounts`.
public enum Mounts {
    /// Parses `/proc/mounts`: six space-separated columns per line
    /// (`source mountpoint fstype options dump pass`).
    ///
    /// The kernel escapes space, tab, newline and backslash as `\ooo` octal; those are decoded.
    /// A line with another column count, a stray backslash, or an empty file is an error
    /// (every mount namespace has at least its root).
    public static func parse(_ text: String, source: String = "/proc/mounts") throws(ProcParseError)
        -> [MountEntry]
    {
        let lines = ProcText.lines(text)
        guard !lines.isEmpty else { throw ProcText.wholeFile(source, "empty file") }
        var entries: [MountEntry] = []
        for line in lines {
            let cols = line.text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard cols.count == 6 else {
                throw ProcText.failure(source, line, "expected 6 columns, found \(cols.count)")
            }
            guard ProcText.decimal(cols[4]) != nil, ProcText.decimal(cols[5]) != nil else {
                throw ProcText.failure(source, line, "dump and pass columns must be numbers")
            }
            var options: [String] = []
            for opt in cols[3].split(separator: ",") {
                options.append(try unescape(opt, line: line, source: source))
            }
            entries.append(
                MountEntry(
                    source: try unescape(cols[0], line: line, source: source),
                    mountPoint: try unescape(cols[1], line: line, source: source),
                    fsType: try unescape(cols[2], line: line, source: source),
                    options: options))
        }
        return entries
    }

    /// The mount that holds absolute `path`: the longest mount point that is `path` itself or
    /// a whole-component prefix of it (`/dev/shm` holds `/dev/shm/x`, not `/dev/shmem`).
    ///
    /// When a mount point appears twice the later line wins, as it is the one mounted on top.
    /// The path is compared as given: no `..` or symlink resolution. Relative paths give nil.
    public static func mountPoint(containing path: String, in entries: [MountEntry]) -> MountEntry? {
        guard path.hasPrefix("/") else { return nil }
        var best: MountEntry?
        var bestLength = -1
        for e in entries {
            var mp = e.mountPoint
            while mp.count > 1, mp.hasSuffix("/") { mp.removeLast() }
            let holds = mp == "/" || path == mp || path.hasPrefix(mp + "/")
            guard holds else { continue }
            let length = mp.utf8.count
            if length >= bestLength {
                best = e
                bestLength = length
            }
        }
        return best
    }

    /// Decodes the kernel's `\ooo` octal escapes; any other backslash is malformed.
    static func unescape(_ s: Substring, line: ProcText.Line, source: String) throws(ProcParseError) -> String {
        guard s.utf8.contains(UInt8(ascii: "\\")) else { return String(s) }
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            guard b == UInt8(ascii: "\\") else {
                out.append(b)
                i += 1
                continue
            }
            guard i + 3 < bytes.count else {
                throw ProcText.failure(source, line, "truncated escape in \"\(s)\"")
            }
            var value: UInt32 = 0
            for j in 1...3 {
                let d = bytes[i + j]
                guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "7") else {
                    throw ProcText.failure(source, line, "bad escape in \"\(s)\"")
                }
                value = value * 8 + UInt32(d - UInt8(ascii: "0"))
            }
            guard value <= 0xFF else {
                throw ProcText.failure(source, line, "escape out of range in \"\(s)\"")
            }
            out.append(UInt8(value))
            i += 4
        }
        return String(decoding: out, as: UTF8.self)
    }
}
