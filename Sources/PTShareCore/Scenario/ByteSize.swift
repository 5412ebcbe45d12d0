/// A byte count written as `4096`, `64K`, `64M`, `1G`, `2T` (binary units; `KiB`/`MiB`/… and
/// a trailing `B` are accepted too).
public struct ByteSize: Sendable, Equatable, Hashable, Comparable, CustomStringConvertible {
    public var bytes: UInt64

    public init(_ bytes: UInt64) { self.bytes = bytes }

    public static func < (a: ByteSize, b: ByteSize) -> Bool { a.bytes < b.bytes }

    public static let kib: UInt64 = 1 << 10
    public static let mib: UInt64 = 1 << 20
    public static let gib: UInt64 = 1 << 30

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case invalid(String)
        case overflow(String)

        public var description: String {
            switch self {
            case .invalid(let s):
                return
                    "invalid size '\(s)': expected a number of bytes with an optional K, M, G or T suffix (binary units), e.g. 64M or 1G"
            case .overflow(let s):
                return "invalid size '\(s)': larger than 2^64 bytes"
            }
        }
    }

    public static func parse(_ text: String) throws(ParseError) -> ByteSize {
        var s = Substring(text.trimmingWhitespace())
        let original = text
        if s.uppercased().hasSuffix("IB") {
            s = s.dropLast(2)
        } else if s.uppercased().hasSuffix("B") {
            s = s.dropLast(1)
        }
        var shift: UInt64 = 0
        if let last = s.last, last.isLetter {
            switch last {
            case "k", "K": shift = 10
            case "m", "M": shift = 20
            case "g", "G": shift = 30
            case "t", "T": shift = 40
            default: throw .invalid(original)
            }
            s = s.dropLast()
        }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw .invalid(original) }
        guard let n = UInt64(s) else { throw .overflow(original) }
        let (v, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
        if overflow { throw .overflow(original) }
        return ByteSize(v)
    }

    /// The shortest exact spelling in binary units: 64M, 1G, 4097.
    public var description: String {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] as [(String, UInt64)] {
            if bytes >= (1 << shift) && bytes % (1 << shift) == 0 { return "\(bytes >> shift)\(unit)" }
        }
        return "\(bytes)"
    }

    /// Human-readable with one decimal in binary units, for reports: "25.0 MiB".
    public static func human(_ bytes: Int64) -> String {
        let sign = bytes < 0 ? "-" : ""
        let m = Double(bytes.magnitude)
        for (unit, scale) in [("GiB", Double(gib)), ("MiB", Double(mib)), ("KiB", Double(kib))] where m >= scale {
            return sign + formatFixed(m / scale, decimals: 1) + " " + unit
        }
        return "\(bytes) B"
    }
}

/// printf-free fixed-point formatting (Foundation's String(format:) is not used in the core).
public func formatFixed(_ v: Double, decimals: Int) -> String {
    guard v.isFinite else { return "\(v)" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let r = (v * scale).rounded()
    let neg = r < 0
    let ip = Int64(r.magnitude) / Int64(scale)
    let fp = Int64(r.magnitude) % Int64(scale)
    var s = "\(ip)"
    if decimals > 0 {
        let f = String(fp)
        s += "." + String(repeating: "0", count: decimals - f.count) + f
    }
    return (neg && r != 0 ? "-" : "") + s
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
