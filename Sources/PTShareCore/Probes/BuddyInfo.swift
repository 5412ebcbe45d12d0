/// `/proc/buddyinfo`: free blocks per order, per zone. `bench --fragment` reads how many free
/// blocks of 2 MiB (order 9) or more are left: none means a huge folio needs compaction.
public struct BuddyZone: Sendable, Equatable {
    public var node: Int
    public var zone: String
    /// Free blocks of order 0, 1, 2, … (a block of order k is 2^k pages).
    public var freeBlocks: [UInt64]

    /// Free blocks of `order` or more, counted in blocks of that order.
    public func freeBlocks(ofAtLeastOrder order: Int) -> UInt64 {
        guard order < freeBlocks.count else { return 0 }
        return freeBlocks[order...].enumerated().reduce(0) { $0 + $1.element << UInt64($1.offset) }
    }
}

public enum BuddyInfo {
    /// Parses lines like `Node 0, zone   Normal   2722   1621 …`; anything else is malformed.
    public static func parse(_ text: String, source: String = "/proc/buddyinfo") throws(ProcParseError)
        -> [BuddyZone]
    {
        var zones: [BuddyZone] = []
        for line in ProcText.lines(text) {
            let t = ProcText.tokens(line.text)
            guard t.count >= 5, t[0] == "Node", t[1].hasSuffix(","), t[2] == "zone",
                let node = ProcText.decimal(t[1].dropLast())
            else { throw ProcText.failure(source, line, "expected \"Node N, zone NAME counts…\"") }
            var counts: [UInt64] = []
            for c in t[4...] {
                guard let v = ProcText.decimal(c) else {
                    throw ProcText.failure(source, line, "non-numeric free count \"\(c)\"")
                }
                counts.append(v)
            }
            zones.append(BuddyZone(node: Int(node), zone: String(t[3]), freeBlocks: counts))
        }
        if zones.isEmpty { throw ProcText.wholeFile(source, "no zones") }
        return zones
    }
}
