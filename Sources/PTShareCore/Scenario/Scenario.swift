/// What backs the shared mapping.
public enum Backing: String, Sendable, CaseIterable, Codable {
    /// memfd_create(2): shmem without a mount.
    case memfd
    /// A file on a tmpfs mount (default /dev/shm).
    case tmpfs
    /// A file on a hugetlbfs mount: huge-page leaves, mainline PMD sharing applies.
    case hugetlbfs
    /// mmap(MAP_SHARED | MAP_ANONYMOUS) in the driver, inherited by the workers over fork.
    case anonShared = "anon-shared"
    /// A file on a file system mounted -o dax=always (fs-dax on pmem): the workers map the
    /// device's pages directly, with 4 KiB PTE leaves or, where file extent and address allow,
    /// 2 MiB PMD leaves (no PTE table), which only the probe module's census can tell apart.
    case dax

    public var isFile: Bool { self == .tmpfs || self == .hugetlbfs || self == .dax }
}

/// Whether workers ask the kernel to share page tables.
public enum ShareMode: String, Sendable, CaseIterable, Codable {
    /// Plain MAP_SHARED.
    case none
    /// MAP_SHARED_VALIDATE | MAP_SHARED_PT (plain MAP_SHARED ignores the bit), after a probe
    /// proved the kernel honours the flag.
    case pt
}

/// How each worker faults the mapping in.
public enum TouchMode: String, Sendable, CaseIterable, Codable {
    case none
    /// One load per page.
    case read
    /// One store per page.
    case write
    /// madvise(MADV_POPULATE_READ).
    case populate
    /// madvise(MADV_POPULATE_WRITE).
    case populateWrite = "populate-write"

    public var faultsIn: Bool { self != .none }
}

/// Where each worker's mapping goes.
public enum AddressMode: Sendable, Equatable, CustomStringConvertible {
    /// mmap(NULL): the kernel chooses (workers are forks, so they usually get the same address).
    case auto
    /// One address for every worker, picked by the driver in a free area and aligned to the
    /// PUD size (1 GiB) for mappings of 1 GiB or more, else the PMD size (2 MiB);
    /// mapped with MAP_FIXED_NOREPLACE.
    case same
    /// Like `same`, then moved up by a skew: `same+2M` puts a 1 GiB hugetlb mapping across two
    /// PUD spans, neither whole, so that mainline PMD sharing cannot apply (a baseline).
    case sameSkewed(UInt64)
    /// A user-given address, mapped with MAP_FIXED_NOREPLACE by every worker.
    case fixed(UInt64)
    /// Like `same`, at the start of a free 1 GiB-aligned span of its own (`same-1G`): no other
    /// mapping shares its PMD table, so the tables it needs are the same in every run, whatever
    /// ASLR did. `bench` maps so, for page-table bytes that compare between runs.
    case sameOwnSpan

    public static func parse(_ s: String) -> AddressMode? {
        switch s {
        case "auto": return .auto
        case "same": return .same
        case "same-1G": return .sameOwnSpan
        case _ where s.hasPrefix("same+"):
            guard let skew = try? ByteSize.parse(String(s.dropFirst(5))).bytes, skew > 0,
                skew % Geometry.page == 0
            else { return nil }
            return .sameSkewed(skew)
        default:
            let digits = s.dropFirst(2)
            guard s.hasPrefix("0x"), !digits.isEmpty, digits.allSatisfy(\.isHexDigit),
                let v = UInt64(digits, radix: 16), v != 0
            else { return nil }
            return .fixed(v)
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .same: return "same"
        case .sameOwnSpan: return "same-1G"
        case .sameSkewed(let skew): return "same+\(ByteSize(skew))"
        case .fixed(let a): return hex(a)
        }
    }
}

/// x86-64 page-table geometry: what one table page at each level maps.
public enum Geometry {
    public static let page: UInt64 = 4096
    /// One PTE table maps 2 MiB; also the alignment MAP_SHARED_PT requires.
    public static let pmdSize: UInt64 = 2 << 20
    /// One PMD table maps 1 GiB; the span hugetlb PMD sharing needs aligned and whole.
    public static let pudSize: UInt64 = 1 << 30
    /// One PUD table maps 512 GiB.
    public static let p4dSize: UInt64 = 512 << 30
}

/// The experimental MAP_SHARED_PT value: the RFC v2 value unless overridden.
public enum MapSharedPT {
    public static let defaultValue: UInt32 = 0x200000
    public static let environmentVariable = "PTSHARE_MAP_SHARED_PT"

    /// x86-64 mmap flag bits the kernel already defines; a MAP_SHARED_PT value must avoid them.
    static let definedBits: [(UInt32, String)] = [
        (0x0f, "the MAP_TYPE field (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_DROPPABLE)"),
        (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x80, "MAP_ABOVE4G"),
        (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"),
        (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"),
        (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"),
        (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"),
        (0x4000000, "MAP_UNINITIALIZED"), (0xFC00_0000, "MAP_HUGE_* size bits"),
    ]

    /// Parses `0x200000`; returns the error message for a bad or colliding value.
    public static func parse(_ text: String) -> Result<UInt32, ValidationMessage> {
        let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? String(text.dropFirst(2)) : ""
        guard !digits.isEmpty, digits.allSatisfy(\.isHexDigit), let v = UInt32(digits, radix: 16), v != 0 else {
            return .failure(.init("MAP_SHARED_PT value '\(text)' is not a hexadecimal flag like 0x200000"))
        }
        guard v.nonzeroBitCount == 1 else {
            return .failure(.init("MAP_SHARED_PT value \(text) must be a single bit, like 0x200000"))
        }
        if let (_, name) = definedBits.first(where: { $0.0 & v != 0 }) {
            return .failure(
                .init(
                    "MAP_SHARED_PT value \(text) collides with \(name); pick a bit the kernel does not define, like 0x200000"
                ))
        }
        return .success(v)
    }
}

/// A message for the user; its text is tested exactly.
public struct ValidationMessage: Error, Equatable, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One run's parameters, validated.
public struct Scenario: Sendable, Equatable {
    public var backing: Backing
    /// Directory for file backings; nil picks the default (/dev/shm, the first hugetlbfs mount).
    public var path: String?
    public var size: UInt64
    public var workers: Int
    public var share: ShareMode
    public var touch: TouchMode
    public var address: AddressMode
    public var mapSharedPTValue: UInt32
    /// Relative tolerance of the verdict, 0.10 = 10 %.
    public var tolerance: Double
    /// NUMA nodes for the workers' CPUs and the mapping's pages.
    public var placement: NumaPlacement
    /// prctl(PR_SET_THP_DISABLE) for the workers (inherited over fork): no PMD leaf, THP's or
    /// DAX's, so every chunk is PTE-mapped, as when no huge page or no 2 MiB-aligned extent can
    /// be had.
    public var thpDisabled: Bool

    public init(
        backing: Backing, path: String? = nil, size: UInt64, workers: Int, share: ShareMode = .none,
        touch: TouchMode = .populate, address: AddressMode = .auto,
        mapSharedPTValue: UInt32 = MapSharedPT.defaultValue, tolerance: Double = 0.10,
        placement: NumaPlacement = .none, thpDisabled: Bool = false
    ) {
        self.thpDisabled = thpDisabled
        self.backing = backing
        self.path = path
        self.size = size
        self.workers = workers
        self.share = share
        self.touch = touch
        self.address = address
        self.mapSharedPTValue = mapSharedPTValue
        self.tolerance = tolerance
        self.placement = placement
    }

    public static let maxWorkers = 100_000

    /// Checks that need no kernel: ranges and alignment. Messages name the flag and the rule.
    public func validate() throws(ValidationMessage) {
        guard workers >= 1 && workers <= Scenario.maxWorkers else {
            throw ValidationMessage("--workers \(workers): must be between 1 and \(Scenario.maxWorkers)")
        }
        guard size > 0 else { throw ValidationMessage("--size 0: the mapping needs at least one page") }
        guard size % Geometry.page == 0 else {
            throw ValidationMessage("--size \(ByteSize(size)): must be a multiple of the 4 KiB page size")
        }
        guard tolerance > 0 && tolerance < 1 else {
            throw ValidationMessage("--tolerance \(tolerance): must be between 0 and 1 (0.10 = 10 %)")
        }
        if path != nil && !backing.isFile {
            throw ValidationMessage(
                "--path is for file backings (tmpfs, hugetlbfs, dax), not --backing \(backing.rawValue)")
        }
        if share == .pt {
            guard size % Geometry.pmdSize == 0 else {
                throw ValidationMessage(
                    "--size \(ByteSize(size)): --share pt (MAP_SHARED_PT) needs a multiple of 2M (the PMD size)")
            }
            if case .fixed(let a) = address, a % Geometry.pmdSize != 0 {
                throw ValidationMessage(
                    "--address \(hex(a)): --share pt (MAP_SHARED_PT) needs a multiple of 0x200000 (the PMD size)")
            }
            if case .sameSkewed(let skew) = address, skew % Geometry.pmdSize != 0 {
                throw ValidationMessage(
                    "--address \(address): --share pt (MAP_SHARED_PT) needs a skew that is a multiple of 2M (the PMD size)"
                )
            }
        }
        if case .fixed(let a) = address, a % Geometry.page != 0 {
            throw ValidationMessage("--address \(hex(a)): must be a multiple of the 4 KiB page size")
        }
        try placement.validate()
    }
}
