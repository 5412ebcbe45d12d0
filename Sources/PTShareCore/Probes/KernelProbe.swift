import CPTShare
import Glibc

/// What the running kernel offers, each fact with the basis it was decided on.
public struct KernelFacts: Sendable, Codable {
    public struct SharedPT: Sendable, Codable {
        public var value: String
        public var supported: Bool
        /// The errno name when refused, nil when accepted.
        public var errno: String?
        public var detail: String
    }
    public struct PMDSharing: Sendable, Codable {
        /// nil when it cannot be told (no readable kernel config).
        public var enabled: Bool?
        public var basis: String
    }
    public struct Hugetlb: Sendable, Codable {
        public var hugepagesizeBytes: UInt64?
        public var total: UInt64?
        public var free: UInt64?
        public var reserved: UInt64?
        public var pmdSharing: PMDSharing
        public var mounts: [String]
    }
    public var release: String
    public var machine: String
    public var mapSharedPt: SharedPT
    public var hugetlb: Hugetlb
    public var shmemThp: String?
    public var numaNodes: [Int]
    public var daxMounts: [String]
    /// Each /dev/pmemN with its size and where it is mounted.
    public var pmemDevices: [String]
    public var probeModule: String
}

public enum KernelProbe {
    /// Decides MAP_SHARED_PT support by asking the kernel: a 2 MiB memfd mapped with
    /// MAP_SHARED_VALIDATE | value, a PMD-aligned free address as the hint. EOPNOTSUPP or
    /// EINVAL: refused. No MAP_FIXED_NOREPLACE here: it is not in the kernel's LEGACY_MAP_MASK,
    /// so MAP_SHARED_VALIDATE refuses it with EOPNOTSUPP on every kernel, flag or not.
    public static func mapSharedPT(value: UInt32) throws(RunError) -> KernelFacts.SharedPT {
        let v = hex(UInt64(value))
        do {
            let fd = try Sys.memfdCreate("ptshare-probe", flags: UInt32(ptshare_MFD_CLOEXEC))
            defer { Sys.close(fd) }
            try Sys.ftruncate(fd, Geometry.pmdSize, path: "memfd:ptshare-probe")
            let addr = try AddressPlanner.freeRange(size: Geometry.pmdSize, alignment: Geometry.pmdSize)
            let flags = ptshare_MAP_SHARED_VALIDATE | Int32(bitPattern: value)
            do {
                let got = try Sys.mmap(
                    addr, Geometry.pmdSize, prot: PROT_READ | PROT_WRITE, flags: flags, fd: fd, offset: 0)
                try Sys.munmap(got, Geometry.pmdSize)
                return .init(
                    value: v, supported: true, errno: nil,
                    detail: "mmap(MAP_SHARED_VALIDATE | \(v)) of a 2 MiB memfd at \(hex(addr)) succeeded")
            } catch let e where e.errno == EOPNOTSUPP || e.errno == EINVAL {
                return .init(
                    value: v, supported: false, errno: e.errnoName,
                    detail:
                        "mmap(MAP_SHARED_VALIDATE | \(v)) of a 2 MiB memfd at \(hex(addr)) failed with \(e.errnoName)")
            }
        } catch { throw .system(error) }
    }

    public static func pmdSharing(machine: String) -> KernelFacts.PMDSharing {
        switch KernelConfigSource.load() {
        case .success(let (config, source)):
            if config.value("CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING") == nil {
                // The option arrived in 6.11; before it, the arch selecting
                // ARCH_WANT_HUGE_PMD_SHARE decided alone.
                guard let arch = config.value("CONFIG_ARCH_WANT_HUGE_PMD_SHARE") else {
                    return .init(
                        enabled: nil,
                        basis:
                            "\(source) has neither CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING nor CONFIG_ARCH_WANT_HUGE_PMD_SHARE"
                    )
                }
                return .init(
                    enabled: arch == "y",
                    basis:
                        "CONFIG_ARCH_WANT_HUGE_PMD_SHARE=\(arch) in \(source) (kernel before CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING)"
                )
            }
            let on = config.isEnabled("CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING")
            return .init(
                enabled: on,
                basis: "CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING \(on ? "=y" : "is not set") in \(source)")
        case .failure(let why):
            return .init(enabled: nil, basis: "kernel config not readable (\(why)); arch \(machine)")
        }
    }

    /// The shmem THP policy; nil on a kernel without /sys/kernel/mm/transparent_hugepage.
    public static func shmemTHP() throws(RunError) -> String? {
        let path = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
        guard let t = try? ProcFS.read(path) else { return nil }
        do { return try ThpSetting.parse(t, source: path).selected } catch { throw .parse(error) }
    }

    public static func facts(mapSharedPTValue: UInt32) throws(RunError) -> KernelFacts {
        let (release, machine): (String, String)
        do { (release, machine) = try Sys.uname() } catch { throw .system(error) }
        let meminfo = try ProcFS.meminfo()
        let mounts = try ProcFS.mounts()
        let thp = try shmemTHP()
        return KernelFacts(
            release: release, machine: machine,
            mapSharedPt: try mapSharedPT(value: mapSharedPTValue),
            hugetlb: .init(
                hugepagesizeBytes: meminfo.hugepagesize, total: meminfo.hugePagesTotal, free: meminfo.hugePagesFree,
                reserved: meminfo.hugePagesRsvd, pmdSharing: pmdSharing(machine: machine),
                mounts: mounts.filter { $0.fsType == "hugetlbfs" }.map {
                    $0.mountPoint + ($0.option("pagesize").map { " (pagesize=\($0))" } ?? "")
                }),
            shmemThp: thp,
            numaNodes: ProcFS.numaNodes(),
            daxMounts: mounts.filter { $0.option("dax") != nil }.map(\.mountPoint),
            pmemDevices: pmemDevices(mounts),
            probeModule: probeModuleState())
    }

    /// The pmem block devices in /sys/block (ptshare vm --pmem makes one), each with its size
    /// and mounts.
    static func pmemDevices(_ mounts: [MountEntry]) -> [String] {
        ProcFS.listDirectory("/sys/block").filter { $0.hasPrefix("pmem") }.sorted().map { name in
            let dev = "/dev/" + name
            // The size file counts 512-byte sectors whatever the device's block size.
            let size =
                (try? ProcFS.integer("/sys/block/\(name)/size")).map { ByteSize.human(Int64($0 * 512)) }
                ?? "size unknown"
            let on = mounts.filter { $0.source == dev }.map { "\($0.mountPoint) (\($0.fsType))" }
            return "\(dev) \(size), " + (on.isEmpty ? "not mounted" : "mounted at " + on.joined(separator: ", "))
        }
    }

    /// Whether kmod/ptshare_probe is loaded and which interface it speaks.
    static func probeModuleState() -> String {
        switch TableProbe.state() {
        case .ready(let v): return "loaded, interface version \(v)"
        case .incompatible(let v):
            return
                "loaded, interface version \(v), but this ptshare speaks \(PTSHARE_PROBE_VERSION): rebuild one of them"
        case .notLoaded: break
        }
        guard let modules = try? ProcFS.read("/proc/modules") else {
            return "not loaded (no \(TableProbe.directory); /proc/modules not readable: a kernel without modules)"
        }
        if modules.split(separator: "\n").contains(where: { $0.hasPrefix("\(TableProbe.moduleName) ") }) {
            return
                "loaded, but \(TableProbe.directory) is missing: mount debugfs (mount -t debugfs none /sys/kernel/debug)"
        }
        return "not loaded"
    }
}

/// The running kernel's configuration: /proc/config.gz (CONFIG_IKCONFIG_PROC) or /boot/config-$(uname -r).
public enum KernelConfigSource {
    public static func load() -> Result<(KernelConfig, String), ValidationMessage> {
        let release = (try? Sys.uname().release) ?? ""
        let boot = "/boot/config-\(release)"
        if let text = try? ProcFS.read(boot) {
            return parse(text, boot)
        }
        if ProcFS.exists("/proc/config.gz") {
            guard let text = gunzip("/proc/config.gz") else {
                return .failure(.init("gzip -dc /proc/config.gz failed"))
            }
            return parse(text, "/proc/config.gz")
        }
        return .failure(.init("neither \(boot) nor /proc/config.gz exists"))
    }

    static func parse(_ text: String, _ source: String) -> Result<(KernelConfig, String), ValidationMessage> {
        do { return .success((try KernelConfig.parse(text, source: source), source)) } catch {
            return .failure(.init(error.description))
        }
    }

    /// Runs before any worker exists, so spawning gzip here cannot disturb a measurement.
    static func gunzip(_ path: String) -> String? {
        guard let f = popen("gzip -dc \(path) 2>/dev/null", "r") else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return pclose(f) == 0 ? String(decoding: bytes, as: UTF8.self) : nil
    }
}

/// Finds free, aligned virtual ranges in the driver; its forks inherit the same layout.
public enum AddressPlanner {
    /// Reserves size+alignment, keeps the aligned start, and gives the range back.
    public static func freeRange(size: UInt64, alignment: UInt64) throws(SystemCallError) -> UInt64 {
        let span = size + alignment
        let base = try Sys.mmap(
            0, span, prot: PROT_NONE, flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, fd: -1, offset: 0)
        try Sys.munmap(base, span)
        return (base + alignment - 1) / alignment * alignment
    }
}
