/// How a bench point shares, or does not share, its page tables: the flag, its competitors,
/// and the unshared baseline every other mode is measured against.
public enum BenchShare: String, Sendable, CaseIterable, Codable {
    /// MAP_SHARED with shmem THP left as the system has it (`never` on Debian): the baseline.
    case none
    /// MAP_SHARED_VALIDATE | MAP_SHARED_PT.
    case pt
    /// MAP_SHARED with shmem THP `always` for the point (set as root, restored after): every
    /// chunk that gets a PMD-sized folio is mapped by a PMD leaf and needs no PTE table.
    case thp
    /// MAP_SHARED_PT with shmem THP `always`: the flag must keep every PMD leaf THP gets (no
    /// table) and share the tables of the chunks THP could not get a huge folio for, so it
    /// never loses to `thp` and wins where THP falls back (`--fragment`).
    case ptThp = "pt+thp"
    /// hugetlbfs at one 1 GiB-aligned address: mainline's PMD sharing where it applies.
    case hugetlbAligned = "hugetlb-aligned"
    /// hugetlbfs moved by 2 MiB: no whole 1 GiB span, so no PMD sharing.
    case hugetlbSkewed = "hugetlb-skewed"

    /// Whether the workers map with MAP_SHARED_PT.
    public var usesFlag: Bool { self == .pt || self == .ptThp }

    /// Whether the point runs with shmem_enabled `always` (else `never`).
    public var usesTHP: Bool { self == .thp || self == .ptThp }

    /// Why this mode cannot run on `backing`, or nil when it can.
    public func unsupported(on backing: Backing) -> String? {
        switch self {
        case .none, .pt: return nil
        case .thp, .ptThp:
            return backing == .memfd || backing == .anonShared
                ? nil
                : "share \(rawValue) needs shmem's internal mount (memfd, anon-shared): shmem_enabled does not reach "
                    + "\(backing.rawValue)"
        case .hugetlbAligned, .hugetlbSkewed:
            return backing == .hugetlbfs ? nil : "share \(rawValue) needs --backing hugetlbfs"
        }
    }
}

/// A sweep: every combination of the lists, each run `repeats` times.
public struct BenchSpec: Sendable, Equatable {
    public var workers: [Int]
    public var sizes: [UInt64]
    public var shares: [BenchShare]
    public var backings: [Backing]
    public var repeats: Int
    /// Fragment free memory before the sweep and hold it so until the end.
    public var fragment: Bool
    public var touch: TouchMode = .populate
    public var mapSharedPTValue: UInt32 = MapSharedPT.defaultValue
    public var tolerance: Double = 0.10
    public var tables: TablesMode = .auto
    public var phaseTimeoutSeconds: Int = 900
    public var mapConcurrency: Int = RunOptions.defaultMapConcurrency
    /// Directory for file backings (tmpfs, hugetlbfs); nil: the backing's default.
    public var path: String?

    public init(
        workers: [Int], sizes: [UInt64], shares: [BenchShare], backings: [Backing], repeats: Int = 1,
        fragment: Bool = false
    ) {
        self.workers = workers
        self.sizes = sizes
        self.shares = shares
        self.backings = backings
        self.repeats = repeats
        self.fragment = fragment
    }

    /// One combination of the sweep.
    public struct Point: Sendable, Equatable, Hashable, Codable {
        public var backing: Backing
        public var sizeBytes: UInt64
        public var workers: Int
        public var share: BenchShare

        public init(backing: Backing, sizeBytes: UInt64, workers: Int, share: BenchShare) {
            self.backing = backing
            self.sizeBytes = sizeBytes
            self.workers = workers
            self.share = share
        }

        /// "memfd 64M × 1000, share pt": how reports and `compare` name the point.
        public var label: String { "\(backing.rawValue) \(ByteSize(sizeBytes)) × \(workers), share \(share.rawValue)" }
    }

    /// The combinations in run order (backing, size, workers ascending, then the share modes
    /// in the order given), and those that cannot run, each with the reason.
    public func expand() -> (points: [Point], notApplicable: [(Point, String)]) {
        var points: [Point] = []
        var skipped: [(Point, String)] = []
        for b in backings {
            for size in sizes {
                for w in workers.sorted() {
                    for share in shares {
                        let p = Point(backing: b, sizeBytes: size, workers: w, share: share)
                        if let why = share.unsupported(on: b) { skipped.append((p, why)) } else { points.append(p) }
                    }
                }
            }
        }
        return (points, skipped)
    }

    /// The scenario one point runs.
    public func scenario(_ p: Point) -> Scenario {
        // A 1 GiB span of its own: the same tables every run (comparable bytes); hugetlb-skewed
        // is moved by 2 MiB so that no whole span is mapped.
        let address: AddressMode = p.share == .hugetlbSkewed ? .sameSkewed(Geometry.pmdSize) : .sameOwnSpan
        return Scenario(
            backing: p.backing, path: path, size: p.sizeBytes, workers: p.workers,
            share: p.share.usesFlag ? .pt : .none, touch: touch, address: address, mapSharedPTValue: mapSharedPTValue,
            tolerance: tolerance)
    }

    public func validate() throws(ValidationMessage) {
        guard !workers.isEmpty, workers.allSatisfy({ $0 >= 1 }) else {
            throw ValidationMessage(
                "--workers \(workers.map(String.init).joined(separator: ",")): each must be at least 1")
        }
        guard !sizes.isEmpty else { throw ValidationMessage("--size: at least one size") }
        guard !shares.isEmpty else { throw ValidationMessage("--share: at least one mode") }
        guard !backings.isEmpty else { throw ValidationMessage("--backing: at least one backing") }
        guard repeats >= 1 && repeats <= 100 else {
            throw ValidationMessage("--repeat \(repeats): must be between 1 and 100")
        }
        let (points, notApplicable) = expand()
        for p in points { try scenario(p).validate() }
        if points.isEmpty {
            throw ValidationMessage(
                "no combination of --backing and --share can run: "
                    + notApplicable.map { "\($0.0.label): \($0.1)" }.joined(separator: "; "))
        }
    }

    /// Parses a comma-separated list with `item` for each element: "10,100,1000".
    public static func list<T>(_ text: String, option: String, _ item: (String) -> T?) throws(ValidationMessage)
        -> [T]
    {
        var out: [T] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let t = String(part).trimmingWhitespace()
            guard !t.isEmpty, let v = item(t) else {
                throw ValidationMessage("\(option) \(text): \"\(t)\" is not a valid element of the list")
            }
            out.append(v)
        }
        return out
    }
}

/// A spec file: one `key = value` per line (`workers`, `sizes`, `shares`, `backings`,
/// `repeat`, `fragment`), lists comma-separated, `#` starts a comment. What it names is added
/// to what the command line names, so a file can hold a standard sweep and flags extend it.
public struct BenchSpecFile: Sendable, Equatable {
    public var workers: [Int] = []
    public var sizes: [UInt64] = []
    public var shares: [BenchShare] = []
    public var backings: [Backing] = []
    public var repeats: Int?
    public var fragment: Bool?

    public init() {}

    public static func parse(_ text: String, source: String) throws(ValidationMessage) -> BenchSpecFile {
        var f = BenchSpecFile()
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line =
                raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingWhitespace() ?? ""
            if line.isEmpty { continue }
            let kv = line.split(separator: "=", maxSplits: 1).map { String($0).trimmingWhitespace() }
            let at = "\(source):\(lineNumber)"
            guard kv.count == 2, !kv[1].isEmpty else {
                throw ValidationMessage("\(at): \"\(line)\": expected key = value")
            }
            let (key, value) = (kv[0], kv[1])
            switch key {
            case "workers": f.workers += try BenchSpec.list(value, option: "\(at): workers") { Int($0) }
            case "sizes", "size":
                f.sizes += try BenchSpec.list(value, option: "\(at): sizes") { try? ByteSize.parse($0).bytes }
            case "shares", "share":
                f.shares += try BenchSpec.list(value, option: "\(at): shares") { BenchShare(rawValue: $0) }
            case "backings", "backing":
                f.backings += try BenchSpec.list(value, option: "\(at): backings") { Backing(rawValue: $0) }
            case "repeat":
                guard let r = Int(value) else { throw ValidationMessage("\(at): repeat \(value): not a number") }
                f.repeats = r
            case "fragment":
                guard let b = Bool(value) else { throw ValidationMessage("\(at): fragment \(value): true or false") }
                f.fragment = b
            default:
                throw ValidationMessage(
                    "\(at): unknown key \"\(key)\" (workers, sizes, shares, backings, repeat, fragment)")
            }
        }
        return f
    }
}
