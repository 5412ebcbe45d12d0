import CPTShare
import Glibc

/// The object every worker maps: an fd (already sized and filled) or an inherited anonymous
/// shared mapping. Files on tmpfs/hugetlbfs are unlinked at once so nothing is left behind.
public struct BackingFile {
    public var fd: Int32
    /// What to call it in messages and reports: "memfd:ptshare", a path, "anonymous".
    public var name: String
    /// The leaf page size the mapping will use.
    public var leafSize: UInt64
    /// sysfs directory of the huge page pool backing it (hugetlbfs only).
    public var hugepagePool: String?

    /// Picks the directory for a file backing and checks its file system.
    public static func directory(for backing: Backing, path: String?, mounts: [MountEntry]) throws(RunError) -> (
        String, MountEntry
    ) {
        switch backing {
        case .tmpfs:
            let dir = path ?? "/dev/shm"
            guard let m = Mounts.mountPoint(containing: dir, in: mounts), m.fsType == "tmpfs" else {
                throw .preflight("--path \(dir): not on a tmpfs mount (--backing tmpfs needs one, e.g. /dev/shm)")
            }
            return (dir, m)
        case .hugetlbfs:
            if let dir = path {
                guard let m = Mounts.mountPoint(containing: dir, in: mounts), m.fsType == "hugetlbfs" else {
                    throw .preflight(
                        "--path \(dir): not on a hugetlbfs mount (mount one with: mount -t hugetlbfs none \(dir))")
                }
                return (dir, m)
            }
            guard let m = mounts.first(where: { $0.fsType == "hugetlbfs" }) else {
                throw .preflight(
                    "--backing hugetlbfs: no hugetlbfs is mounted; mount one (mount -t hugetlbfs none /dev/hugepages) or pass --path"
                )
            }
            return (m.mountPoint, m)
        case .dax:
            // dax=always (or the old bare `dax`): every regular file is DAX (create() checks the
            // file itself with statx). dax=inode, where a per-file flag decides, is not taken.
            let isDAX = { (m: MountEntry) in m.option("dax").map { $0 == "" || $0 == "always" } ?? false }
            if let dir = path {
                guard let m = Mounts.mountPoint(containing: dir, in: mounts), isDAX(m) else {
                    throw .preflight(
                        "--path \(dir): not on a file system mounted -o dax=always (e.g. mount -t ext4 -o dax=always /dev/pmem0 \(dir))"
                    )
                }
                return (dir, m)
            }
            guard let m = mounts.first(where: isDAX) else {
                throw .preflight(
                    "--backing dax: no file system is mounted -o dax=always; mount one on a pmem device "
                        + "(mkfs.ext4 /dev/pmem0 && mount -o dax=always /dev/pmem0 /mnt/pmem; ptshare vm --pmem does) or pass --path"
                )
            }
            return (m.mountPoint, m)
        default:
            throw .preflight("--backing \(backing.rawValue) has no directory")
        }
    }

    /// Huge page size of a hugetlbfs mount, from the statfs block size the kernel reports.
    public static func hugePageSize(of dir: String) throws(RunError) -> UInt64 {
        let s: (type: Int, blockSize: UInt64)
        do { s = try Sys.statfs(dir) } catch { throw .system(error) }
        guard s.type == ptshare_HUGETLBFS_MAGIC else {
            throw .preflight("--path \(dir): statfs f_type is \(hex(UInt64(UInt(bitPattern: s.type)))), not hugetlbfs")
        }
        return s.blockSize
    }

    /// Everything about the backing that can be checked without allocating it.
    public struct Plan: Sendable {
        public var directory: String?
        public var leafSize: UInt64
        /// sysfs directory of the huge page pool (hugetlbfs only).
        public var hugepagePool: String?
    }

    /// Checks the file system, the page size and the huge page pool; allocates nothing.
    public static func plan(_ s: Scenario, mounts: [MountEntry]) throws(RunError) -> Plan {
        switch s.backing {
        case .memfd, .anonShared:
            return Plan(directory: nil, leafSize: Geometry.page, hugepagePool: nil)
        case .tmpfs:
            return Plan(
                directory: try directory(for: .tmpfs, path: s.path, mounts: mounts).0, leafSize: Geometry.page,
                hugepagePool: nil)
        case .hugetlbfs:
            let (dir, _) = try directory(for: .hugetlbfs, path: s.path, mounts: mounts)
            let leaf = try hugePageSize(of: dir)
            let pool = "/sys/kernel/mm/hugepages/hugepages-\(leaf / 1024)kB"
            guard s.size % leaf == 0 else {
                throw .preflight(
                    "--size \(ByteSize(s.size)): hugetlbfs at \(dir) uses \(ByteSize(leaf)) pages; the size must be a multiple of \(ByteSize(leaf))"
                )
            }
            try checkHugePages(pool: pool, pageSize: leaf, size: s.size)
            return Plan(directory: dir, leafSize: leaf, hugepagePool: pool)
        case .dax:
            return Plan(
                directory: try directory(for: .dax, path: s.path, mounts: mounts).0, leafSize: Geometry.page,
                hugepagePool: nil)
        }
    }

    /// Creates, sizes and fills the backing file before any worker exists, so that the
    /// workers' faults only install page-table entries (no allocation to measure around).
    public static func create(_ s: Scenario, plan: Plan) throws(RunError) -> BackingFile {
        do throws(SystemCallError) {
            switch s.backing {
            case .memfd:
                let fd = try Sys.memfdCreate("ptshare", flags: UInt32(ptshare_MFD_CLOEXEC))
                let f = BackingFile(fd: fd, name: "memfd:ptshare", leafSize: plan.leafSize, hugepagePool: nil)
                do throws(SystemCallError) { try f.fill(s.size) } catch {
                    f.close()
                    throw error
                }
                return f
            case .tmpfs, .hugetlbfs, .dax:
                let path = (plan.directory ?? "") + "/ptshare.\(getpid()).data"
                let fd = try Sys.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC)
                let f = BackingFile(fd: fd, name: path, leafSize: plan.leafSize, hugepagePool: plan.hugepagePool)
                do throws(SystemCallError) {
                    try Sys.unlink(path)
                    if s.backing == .dax { try f.fillDAX(s.size) } else { try f.fill(s.size) }
                } catch {
                    f.close()
                    throw error
                }
                return f
            case .anonShared:
                return BackingFile(fd: -1, name: "anonymous", leafSize: plan.leafSize, hugepagePool: nil)
            }
        } catch { throw .system(error) }
    }

    func fill(_ size: UInt64) throws(SystemCallError) {
        try Sys.ftruncate(fd, size, path: name)
        try Sys.fallocate(fd, offset: 0, length: size, path: name)
    }

    /// A DAX file (statx says so, else EOPNOTSUPP), allocated on a settled file system and
    /// written with zeroes.
    func fillDAX(_ size: UInt64) throws(SystemCallError) {
        guard try Sys.isDAX(fd, path: name) else {
            throw SystemCallError("statx", errno: EOPNOTSUPP, path: name, value: "STATX_ATTR_DAX clear: not a DAX file")
        }
        BackingFile.settleFreedBlocks()
        try fill(size)
        try writeZeroes(size)
    }

    /// sync(2) before a DAX file is allocated: ext4 keeps the blocks of a file just deleted
    /// (the previous run's) from the allocator until its journal commits, so without it a run
    /// right after another gets leftover, less aligned space, and fewer 2 MiB PMD leaves than
    /// the same run on a settled file system.
    static func settleFreedBlocks() { Glibc.sync() }

    /// Writes zeroes over a fallocated DAX file: fallocate leaves unwritten extents, which the
    /// first fault of each block would zero and convert (a journal transaction per fault).
    /// Written, the faults only install entries, as for the other backings.
    func writeZeroes(_ size: UInt64) throws(SystemCallError) {
        let block = [UInt8](repeating: 0, count: 1 << 20)
        var done: UInt64 = 0
        while done < size {
            let n = Int(min(UInt64(block.count), size - done))
            try Sys.write(fd, n == block.count ? block : Array(block.prefix(n)), path: name)
            done += UInt64(n)
        }
    }

    static func checkHugePages(pool: String, pageSize: UInt64, size: UInt64) throws(RunError) {
        let need = size / pageSize
        let free = try ProcFS.integer(pool + "/free_hugepages")
        let resv = try ProcFS.integer(pool + "/resv_hugepages")
        let total = try ProcFS.integer(pool + "/nr_hugepages")
        let available = free >= resv ? free - resv : 0
        if available < need {
            throw .preflight(
                "--backing hugetlbfs needs \(need) free \(pageSize / 1024) kB huge pages for --size \(ByteSize(size)), "
                    + "but \(pool) has \(available) (free \(free), reserved \(resv)); reserve them as root with: "
                    + "echo \(total + need - available) > \(pool)/nr_hugepages")
        }
    }

    public func close() {
        if fd >= 0 { Sys.close(fd) }
    }
}

/// Refuses runs that would not fit before forking a single worker.
public enum Preflight {
    /// Per-worker cost besides the mapping's tables: its own tables (measured ~48–68 KiB),
    /// kernel stack (16 KiB), task/mm/VMA slabs and copy-on-write pages it dirties.
    public static let perWorkerOverheadBytes: UInt64 = 192 * 1024

    /// Worst case for the mapping's tables: every worker unshared, nothing already present.
    public static func worstCaseTableBytes(size: UInt64, leafSize: UInt64) -> UInt64 {
        var pages: UInt64 = 0
        for (_, span) in PageTableModel.levelSpans(leafSize: leafSize) { pages += (size + span - 1) / span + 1 }
        return pages * Geometry.page
    }

    public static func check(_ s: Scenario, leafSize: UInt64, meminfo: Meminfo) throws(RunError) {
        let tables = worstCaseTableBytes(size: s.size, leafSize: leafSize) * UInt64(s.workers)
        let overhead = perWorkerOverheadBytes * UInt64(s.workers)
        let data = s.backing == .hugetlbfs ? 0 : s.size
        let need = tables + overhead + data
        let available: UInt64
        do { available = try meminfo.require("MemAvailable") } catch { throw .parse(error) }
        if need > available {
            throw .preflight(
                "run needs an estimated \(ByteSize.human(Int64(need))) (page tables \(ByteSize.human(Int64(tables))) "
                    + "for \(s.workers) unshared workers, \(ByteSize.human(Int64(overhead))) of per-worker overhead, "
                    + "\(ByteSize.human(Int64(data))) of file data) but MemAvailable is \(ByteSize.human(Int64(available))); "
                    + "use fewer --workers or a smaller --size")
        }
        let pidMax = try ProcFS.integer("/proc/sys/kernel/pid_max")
        if UInt64(s.workers) + 1000 > pidMax {
            throw .preflight(
                "--workers \(s.workers): /proc/sys/kernel/pid_max is \(pidMax); raise it (sysctl kernel.pid_max) or use fewer workers"
            )
        }
        // Root is not held to RLIMIT_NPROC.
        if geteuid() != 0 {
            let limit: UInt64
            do { limit = try Sys.nprocLimit() } catch { throw .system(error) }
            if UInt64(s.workers) >= limit {
                throw .preflight(
                    "--workers \(s.workers): RLIMIT_NPROC (ulimit -u) is \(limit); raise it or use fewer workers")
            }
        }
    }
}
