import CPTShare
import Glibc

/// What the ptshare_probe module says maps one step of a range.
public struct TableSlot: Sendable, Equatable {
    public enum Kind: UInt32, Sendable {
        case none = 0
        case table = 1
        case leaf = 2
        case other = 3
    }

    public var kind: Kind
    public var pfn: UInt64
}

/// The page-table pages that map [start, end) of one process.
public struct TableMap: Sendable, Equatable {
    /// One per 2 MiB step from start rounded down.
    public var pte: [TableSlot]
    /// One per 1 GiB step from start rounded down.
    public var pmd: [TableSlot]
    public var pteTables: UInt64
    public var pmdLeaves: UInt64
    public var pmdTables: UInt64
    public var pudLeaves: UInt64
}

/// The ptshare_probe module's debugfs interface (kmod/ptshare_probe).
public final class TableProbe {
    public static let directory = "/sys/kernel/debug/ptshare_probe"
    public static let queryPath = directory + "/query"
    public static let moduleName = "ptshare_probe"

    /// The loaded module's interface version, or nil when it is not loaded (or debugfs is not
    /// mounted, or not readable).
    public static func loadedVersion() -> Int? {
        guard let t = try? ProcFS.read(directory + "/version") else { return nil }
        return Int(t.trimmingWhitespace())
    }

    public enum State: Equatable, Sendable {
        case notLoaded
        case ready(version: Int)
        /// Loaded, but speaking another interface than this ptshare: every query would be EINVAL.
        case incompatible(version: Int)
    }

    /// The one place that decides whether the module can be used.
    public static func state() -> State {
        guard let v = loadedVersion() else { return .notLoaded }
        return v == Int(PTSHARE_PROBE_VERSION) ? .ready(version: v) : .incompatible(version: v)
    }

    /// Largest range one query may cover (the module's cap), as ptshare splits it: 1 GiB-aligned
    /// pieces, so no PMD window is reported twice.
    public static let queryChunk: UInt64 = 32 << 30

    let fd: Int32

    public init() throws(SystemCallError) {
        fd = try Sys.open(TableProbe.queryPath, O_RDWR | O_CLOEXEC)
    }

    deinit { Sys.close(fd) }

    /// An arbitrary ioctl number and argument on the query file (the ENOTTY and EFAULT checks).
    public func rawIoctl(_ cmd: UInt, argument: UInt = 0) throws(SystemCallError) {
        if ptshare_ioctl_raw(fd, cmd, argument) != 0 {
            throw SystemCallError("ioctl", errno: errno, path: TableProbe.queryPath, value: "cmd=\(hex(UInt64(cmd)))")
        }
    }

    /// Slot counts the module needs for [start, end): its step arithmetic, done the same way.
    public static func slotCounts(start: UInt64, end: UInt64) -> (pte: Int, pmd: Int) {
        func down(_ v: UInt64, _ a: UInt64) -> UInt64 { v / a * a }
        func up(_ v: UInt64, _ a: UInt64) -> UInt64 { (v + a - 1) / a * a }
        let pte = (up(end, Geometry.pmdSize) - down(start, Geometry.pmdSize)) / Geometry.pmdSize
        let pmd = (up(end, Geometry.pudSize) - down(start, Geometry.pudSize)) / Geometry.pudSize
        return (Int(pte), Int(pmd))
    }

    public func query(pid: Int32, start: UInt64, end: UInt64) throws(SystemCallError) -> TableMap {
        let (npte, npmd) = end > start ? TableProbe.slotCounts(start: start, end: end) : (1, 1)
        return try query(pid: pid, start: start, end: end, pteSlots: npte, pmdSlots: npmd)
    }

    /// The raw call, with the slot capacities given (kmod.badinput passes wrong ones on purpose).
    public func query(
        pid: Int32, start: UInt64, end: UInt64, pteSlots: Int, pmdSlots: Int,
        version: UInt32 = UInt32(PTSHARE_PROBE_VERSION), pteBuffer: UInt64? = nil
    ) throws(SystemCallError) -> TableMap {
        var pte = [ptshare_probe_slot](repeating: ptshare_probe_slot(), count: max(1, pteSlots))
        var pmd = [ptshare_probe_slot](repeating: ptshare_probe_slot(), count: max(1, pmdSlots))
        var q = ptshare_probe_query()
        q.version = version
        q.pid = UInt32(bitPattern: pid)
        q.start = start
        q.end = end
        q.n_pte_slots = UInt32(pteSlots)
        q.n_pmd_slots = UInt32(pmdSlots)
        var failure: SystemCallError?
        pte.withUnsafeMutableBufferPointer { pteBuf in
            pmd.withUnsafeMutableBufferPointer { pmdBuf in
                q.pte_slots = pteBuffer ?? UInt64(UInt(bitPattern: pteBuf.baseAddress))
                q.pmd_slots = UInt64(UInt(bitPattern: pmdBuf.baseAddress))
                do throws(SystemCallError) { try Sys.probeQuery(fd, &q, path: TableProbe.queryPath) } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        func slots(_ s: [ptshare_probe_slot], _ n: UInt32) -> [TableSlot] {
            s.prefix(Int(n)).map { TableSlot(kind: TableSlot.Kind(rawValue: $0.kind) ?? .other, pfn: $0.pfn) }
        }
        return TableMap(
            pte: slots(pte, q.n_pte_slots), pmd: slots(pmd, q.n_pmd_slots), pteTables: q.pte_tables,
            pmdLeaves: q.pmd_leaves, pmdTables: q.pmd_tables, pudLeaves: q.pud_leaves)
    }
}
