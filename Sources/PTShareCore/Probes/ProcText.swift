/// Line and token helpers shared by the /proc and /sys parsers.
///
/// Kept internal and free of Foundation so every parser stays a pure
/// `String -> Value` function whose errors carry the 1-based line number.
enum ProcText {
    /// One non-blank input line and its 1-based position in the file.
    struct Line {
        var number: Int
        var text: Substring
    }

    /// Non-blank lines with their 1-based numbers.
    ///
    /// Splits on the `\n` byte rather than on `Character("\n")`, because Swift treats
    /// `"\r\n"` as a single Character and would otherwise glue such lines together.
    static func lines(_ text: String) -> [Line] {
        var out: [Line] = []
        var number = 0
        for raw in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let line = Substring(raw)
            if line.allSatisfy(isSpace) { continue }
            out.append(Line(number: number, text: line))
        }
        return out
    }

    /// Space, tab and carriage return: the separators procfs uses for padding.
    static func isSpace(_ c: Character) -> Bool {
        c == " " || c == "\t" || c == "\r"
    }

    /// Whitespace-separated tokens.
    static func tokens(_ s: Substring) -> [Substring] {
        s.split(whereSeparator: isSpace)
    }

    /// `s` without leading and trailing whitespace.
    static func trimmed(_ s: Substring) -> Substring {
        var r = s.drop(while: isSpace)
        while let last = r.last, isSpace(last) { r = r.dropLast() }
        return r
    }

    /// Decimal digits only: `UInt64("+5")` would accept a sign, the kernel never prints one.
    static func decimal(_ s: Substring) -> UInt64? {
        guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return UInt64(s)
    }

    /// Hexadecimal digits only, without a `0x` prefix (the format of maps addresses).
    static func hex(_ s: Substring) -> UInt64? {
        guard !s.isEmpty, s.allSatisfy({ $0.isHexDigit }) else { return nil }
        return UInt64(s, radix: 16)
    }

    static func failure(_ source: String, _ line: Line, _ reason: String) -> ProcParseError {
        ProcParseError(source: source, line: line.number, text: String(line.text), reason: reason)
    }

    static func wholeFile(_ source: String, _ reason: String) -> ProcParseError {
        ProcParseError(source: source, line: 0, text: "", reason: reason)
    }

    /// Splits `Key: value` at the first colon; the key must be one non-empty word.
    static func keyValue(_ line: Line, source: String) throws(ProcParseError) -> (key: String, value: Substring) {
        try keyValue(line.text, line: line, source: source)
    }

    /// Same as `keyValue(_:source:)` for a part of `line` (after a `Node N` prefix, say).
    static func keyValue(_ text: Substring, line: Line, source: String) throws(ProcParseError) -> (
        key: String, value: Substring
    ) {
        guard let colon = text.firstIndex(of: ":") else {
            throw failure(source, line, "expected \"Key: value\", found no colon")
        }
        let key = trimmed(text[..<colon])
        guard !key.isEmpty, !key.contains(where: isSpace) else {
            throw failure(source, line, "expected one word before the colon")
        }
        return (String(key), text[text.index(after: colon)...])
    }

    /// A size or count as procfs prints it: `1234 kB` becomes bytes, a bare `1234` stays a count.
    static func sizeOrCount(_ value: Substring, line: Line, source: String) throws(ProcParseError) -> UInt64 {
        let parts = tokens(value)
        guard let first = parts.first else {
            throw failure(source, line, "missing value")
        }
        guard let n = decimal(first) else {
            throw failure(source, line, "non-numeric value \"\(first)\"")
        }
        switch parts.count {
        case 1:
            return n
        case 2 where parts[1] == "kB":
            let (bytes, overflow) = n.multipliedReportingOverflow(by: 1024)
            if overflow { throw failure(source, line, "value overflows 64 bits in bytes") }
            return bytes
        case 2:
            throw failure(source, line, "unknown unit \"\(parts[1])\"")
        default:
            throw failure(source, line, "expected a number and an optional \"kB\"")
        }
    }

    /// A mapping's header as /proc/PID/maps and smaps print it.
    struct MappingHeader {
        var start: UInt64
        var end: UInt64
        var perms: String
        var offset: UInt64
        var device: String
        var inode: UInt64
        var path: String
    }

    /// Parses `start-end perms offset dev inode   path`.
    ///
    /// The path is everything after the inode column with the padding removed, so names with
    /// spaces and the `(deleted)` suffix survive; anonymous mappings give `""`.
    static func mappingHeader(_ line: Line, source: String) throws(ProcParseError) -> MappingHeader {
        var rest = line.text[...]
        var cols: [Substring] = []
        for _ in 0..<5 {
            rest = rest.drop(while: isSpace)
            let tok = rest.prefix(while: { !isSpace($0) })
            if tok.isEmpty {
                throw failure(source, line, "mapping header needs range, perms, offset, device and inode")
            }
            cols.append(tok)
            rest = rest[tok.endIndex...]
        }
        var path = rest.drop(while: isSpace)
        if path.last == "\r" { path = path.dropLast() }

        let range = cols[0].split(separator: "-", omittingEmptySubsequences: false)
        guard range.count == 2, let start = hex(range[0]), let end = hex(range[1]) else {
            throw failure(source, line, "bad address range \"\(cols[0])\"")
        }
        guard start <= end else {
            throw failure(source, line, "address range ends before it starts")
        }
        guard cols[1].count == 4 else {
            throw failure(source, line, "bad permissions \"\(cols[1])\"")
        }
        guard let offset = hex(cols[2]) else {
            throw failure(source, line, "bad offset \"\(cols[2])\"")
        }
        let dev = cols[3].split(separator: ":", omittingEmptySubsequences: false)
        guard dev.count == 2, hex(dev[0]) != nil, hex(dev[1]) != nil else {
            throw failure(source, line, "bad device \"\(cols[3])\"")
        }
        guard let inode = decimal(cols[4]) else {
            throw failure(source, line, "bad inode \"\(cols[4])\"")
        }
        return MappingHeader(
            start: start, end: end, perms: String(cols[1]), offset: offset,
            device: String(cols[3]), inode: inode, path: String(path))
    }
}
