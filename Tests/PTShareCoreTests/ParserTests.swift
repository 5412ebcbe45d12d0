import Foundation
import Testing

@testable import PTShareCore

/// Fixtures named `*-6.18.txt` were captured verbatim on a Linux 6.18.44 x86_64 VM (one NUMA
/// node, root). The expected numbers below are the ones in those files. Fixtures named
/// `*-constructed.txt`, `*-malformed.txt` and `mounts-dax-escaped.txt` were written by hand.

private let KiB: UInt64 = 1024
private let MiB: UInt64 = 1024 * 1024

// MARK: - /proc/meminfo

@Suite struct MeminfoParserTests {
    @Test func realFile() throws {
        let m = try Meminfo.parse(try fixture("meminfo-6.18"))
        #expect(m.fields.count == 54)
        #expect(m.source == "/proc/meminfo")
        #expect(m.pageTables == 1268 * KiB)
        #expect(m.secPageTables == 0)
        #expect(m.shmem == 8952 * KiB)
        #expect(m.mapped == 10152 * KiB)
        #expect(m.memAvailable == 24_466_276 * KiB)
        #expect(m.memTotal == 24_683_656 * KiB)
        #expect(m.hugePagesTotal == 0)
        #expect(m.hugePagesFree == 0)
        #expect(m.hugePagesRsvd == 0)
        #expect(m.hugePagesSurp == 0)
        #expect(m.hugepagesize == 2 * MiB)
        // Parenthesised keys and an 11-digit kB value (34 TiB) both survive.
        #expect(m.fields["Active(anon)"] == 1512 * KiB)
        #expect(m.fields["VmallocTotal"] == 34_359_738_367 * KiB)
        #expect(try m.require("PageTables") == 1268 * KiB)
    }

    @Test func unitlessLinesAreCounts() throws {
        let m = try Meminfo.parse("HugePages_Total:       8\nHugepagesize:       2048 kB\n")
        #expect(m.hugePagesTotal == 8)
        #expect(m.hugepagesize == 2048 * 1024)
        #expect(m.pageTables == nil)
    }

    @Test func requireNamesKeyAndSource() throws {
        let m = try Meminfo.parse("MemTotal: 1 kB\n", source: "/fake/meminfo")
        let e = try #require(throws: ProcParseError.self) { try m.require("PageTables") }
        #expect(e.source == "/fake/meminfo")
        #expect(e.line == 0)
        #expect(e.reason.contains("PageTables"))
    }

    @Test func malformedLineWithoutColon() throws {
        let e = try #require(throws: ProcParseError.self) {
            try Meminfo.parse(try fixture("meminfo-malformed"), source: "meminfo-malformed")
        }
        #expect(e.line == 3)
        #expect(e.text == "PageTables      1428 kB")
        #expect(e.source == "meminfo-malformed")
    }

    @Test func malformedNonNumericValue() throws {
        // The same fixture with the colon-less line 3 removed: line 4 ("Mapped: lots kB") fails next.
        let text = try fixture("meminfo-malformed").split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated().map { $0.offset == 2 ? "" : String($0.element) }.joined(separator: "\n")
        let e = try #require(throws: ProcParseError.self) { try Meminfo.parse(text) }
        #expect(e.line == 5)
        #expect(e.text == "Mapped:           lots kB")
        #expect(e.reason.contains("non-numeric"))
    }

    @Test func unknownUnit() throws {
        let e = try #require(throws: ProcParseError.self) { try Meminfo.parse("MemTotal: 1 kB\nShmem: 4 MB\n") }
        #expect(e.line == 2)
        #expect(e.reason.contains("unit"))
    }

    @Test func duplicateKey() throws {
        let e = try #require(throws: ProcParseError.self) { try Meminfo.parse("Shmem: 1 kB\nShmem: 2 kB\n") }
        #expect(e.line == 2)
    }

    @Test func emptyInputThrows() {
        #expect(throws: ProcParseError.self) { try Meminfo.parse("") }
        #expect(throws: ProcParseError.self) { try Meminfo.parse("\n \n") }
    }
}

// MARK: - /sys/devices/system/node/nodeN/meminfo

@Suite struct NodeMeminfoParserTests {
    @Test func realNode0() throws {
        let n = try NodeMeminfo.parse(try fixture("node0-meminfo-6.18"))
        #expect(n.node == 0)
        #expect(n.fields.count == 36)
        #expect(n.pageTables == 1368 * KiB)
        #expect(n.memTotal == 4_417_312 * KiB)
        #expect(n.memFree == 4_299_280 * KiB)
        #expect(n.fields["Active(anon)"] == 1512 * KiB)
        // Per-node files have no HugePages_Rsvd and no Hugepagesize line.
        #expect(n.hugePagesTotal == 0)
        #expect(n.fields["HugePages_Rsvd"] == nil)
        #expect(n.fields["Hugepagesize"] == nil)
    }

    /// node1-meminfo-constructed.txt is hand-made (this VM has one node): node0's file with
    /// "Node 1", PageTables 8192 kB and a 512-page hugetlb pool (500 free).
    @Test func constructedNode1() throws {
        let n = try NodeMeminfo.parse(try fixture("node1-meminfo-constructed"))
        #expect(n.node == 1)
        #expect(n.pageTables == 8192 * KiB)
        #expect(n.hugePagesTotal == 512)
        #expect(n.hugePagesFree == 500)
        #expect(try n.require("MemTotal") == 4_417_312 * KiB)
    }

    @Test func mixedNodesThrow() throws {
        let e = try #require(throws: ProcParseError.self) {
            try NodeMeminfo.parse("Node 0 MemTotal: 4 kB\nNode 1 PageTables: 8 kB\n")
        }
        #expect(e.line == 2)
    }

    @Test func missingPrefixThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try NodeMeminfo.parse("Node 0 MemTotal: 4 kB\nPageTables: 8 kB\n")
        }
        #expect(e.line == 2)
        #expect(e.text == "PageTables: 8 kB")
    }

    @Test func emptyInputThrows() {
        #expect(throws: ProcParseError.self) { try NodeMeminfo.parse("") }
    }
}

// MARK: - /proc/PID/status

@Suite struct ProcStatusParserTests {
    @Test func realFile() throws {
        let s = try ProcStatus.parse(try fixture("status-6.18"))
        #expect(s.name == "cat")
        #expect(s.pid == 2877)
        #expect(s.ppid == 2871)
        #expect(s.state == "R (running)")
        #expect(s.stateCode == "R")
        #expect(s.vmPTE == 44 * KiB)
        #expect(s.vmRSS == 1700 * KiB)
        #expect(s.rssShmem == 0)
        #expect(s.hugetlbPages == 0)
        #expect(s.sizes["VmPeak"] == 3060 * KiB)
        #expect(s.sizes.count == 16)  // VmPeak ... HugetlbPages: every line with a kB unit
        #expect(s.sizes["Threads"] == nil)
        #expect(s.fields["Threads"] == "1")
        #expect(s.fields["Groups"] == "")
        #expect(s.fields["Cpus_allowed_list"] == "0-1")
    }

    @Test func nameKeepsInnerSpaces() throws {
        let s = try ProcStatus.parse("Name:\tmy worker\nState:\tS (sleeping)\nPid:\t7\nPPid:\t1\n")
        #expect(s.name == "my worker")
        #expect(s.vmPTE == nil)
    }

    @Test func missingPidThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try ProcStatus.parse("Name:\tx\nState:\tR (running)\nPPid:\t1\n")
        }
        #expect(e.reason.contains("Pid"))
    }

    @Test func missingNameThrows() {
        #expect(throws: ProcParseError.self) { try ProcStatus.parse("Pid:\t7\nPPid:\t1\nState:\tR (running)\n") }
    }

    @Test func badKBValueThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try ProcStatus.parse("Name:\tx\nPid:\t7\nVmPTE:\t  x4 kB\n")
        }
        #expect(e.line == 3)
    }

    @Test func emptyInputThrows() {
        #expect(throws: ProcParseError.self) { try ProcStatus.parse("") }
    }
}

// MARK: - /proc/PID/smaps, smaps_rollup

@Suite struct SmapsParserTests {
    /// Captured from a C program that memfd_create()d 64 MiB, mapped it MAP_SHARED at
    /// 0x7f66e4273000 and MADV_POPULATE_READ it, and mapped 4 MiB of a hugetlbfs file
    /// MAP_SHARED at 0x7f66e3e00000 and wrote to it.
    static let memfdAddress: UInt64 = 0x7f66_e427_3000
    static let hugetlbAddress: UInt64 = 0x7f66_e3e0_0000

    @Test func realFileShape() throws {
        let entries = try Smaps.parse(try fixture("smaps-memfd-hugetlb-6.18"))
        #expect(entries.count == 26)
        for e in entries {
            #expect(e.fields.count == 24)
            #expect(e.fields["THPeligible"] == 0)
            #expect(e.fields["ProtectionKey"] == 0)
            #expect(!e.vmFlags.isEmpty)
        }
        let first = try #require(entries.first)
        #expect(first.start == 0x55b4_3ed2_7000)
        #expect(first.end == 0x55b4_3ed2_8000)
        #expect(first.perms == "r--p")
        #expect(first.device == "fe:00")
        #expect(first.inode == 16_220_380)
        #expect(first.path == "/tmp/ptcap/cap")
        #expect(first.vmFlags == ["rd", "mr", "mw", "me"])
        let last = try #require(entries.last)
        #expect(last.path == "[vsyscall]")
        #expect(last.start == 0xffff_ffff_ff60_0000)
        #expect(last.perms == "--xp")
        #expect(last.vmFlags == ["ex"])
        // Anonymous mappings have nothing after the inode column.
        let anon = try #require(Smaps.entry(containing: 0x7f66_e827_3000, in: entries))
        #expect(anon.path == "")
        #expect(anon.inode == 0)
    }

    @Test func memfdEntry() throws {
        let entries = try Smaps.parse(try fixture("smaps-memfd-hugetlb-6.18"))
        let e = try #require(Smaps.entry(containing: Self.memfdAddress + 12345, in: entries))
        #expect(e.start == Self.memfdAddress)
        #expect(e.end == 0x7f66_e827_3000)
        #expect(e.size == 64 * MiB)
        #expect(e.path == "/memfd:ptshare (deleted)")
        #expect(e.perms == "rw-s")
        #expect(e.device == "00:01")
        #expect(e.inode == 1025)
        #expect(e.kernelPageSize == 4096)
        #expect(e.mmuPageSize == 4096)
        #expect(e.rss == 64 * MiB)
        #expect(e.pss == 64 * MiB)
        // A single mapper: the kernel reports the shared memfd pages as Private_Clean.
        #expect(e.fields["Private_Clean"] == 64 * MiB)
        #expect(e.fields["Shared_Clean"] == 0)
        #expect(e.vmFlags == ["rd", "wr", "sh", "mr", "mw", "me", "ms"])
    }

    @Test func hugetlbEntry() throws {
        let entries = try Smaps.parse(try fixture("smaps-memfd-hugetlb-6.18"))
        let e = try #require(Smaps.entry(containing: Self.hugetlbAddress, in: entries))
        #expect(e.path == "/tmp/hugemnt/ptshare-huge")
        #expect(e.size == 4 * MiB)
        #expect(e.kernelPageSize == 2 * MiB)
        #expect(e.mmuPageSize == 2 * MiB)
        // hugetlb pages are not in Rss; they show up in *_Hugetlb.
        #expect(e.rss == 0)
        #expect(e.fields["Private_Hugetlb"] == 4 * MiB)
        #expect(e.fields["Shared_Hugetlb"] == 0)
        #expect(e.vmFlags.contains("ht"))
        #expect(e.vmFlags.contains("sh"))
    }

    @Test func entryContainingGapAndBounds() throws {
        let entries = try Smaps.parse(try fixture("smaps-memfd-hugetlb-6.18"))
        #expect(Smaps.entry(containing: 0x1000, in: entries) == nil)
        // The hugetlb mapping ends at 0x7f66e4200000 and the memfd one starts at 0x7f66e4273000.
        #expect(Smaps.entry(containing: 0x7f66_e420_0000, in: entries) == nil)
        #expect(Smaps.entry(containing: 0x7f66_e41f_ffff, in: entries)?.path == "/tmp/hugemnt/ptshare-huge")
    }

    @Test func rollup() throws {
        let r = try Smaps.parseRollup(try fixture("smaps_rollup-6.18"))
        #expect(r.path == "[rollup]")
        #expect(r.start == 0x55b4_3ed2_7000)
        #expect(r.end == 0x7ffd_9a10_f000)
        #expect(r.perms == "---p")
        #expect(r.fields.count == 22)
        #expect(r.rss == 66940 * KiB)
        #expect(r.pss == 66022 * KiB)
        #expect(r.fields["Pss_Shmem"] == 64 * MiB)
        #expect(r.fields["Private_Hugetlb"] == 4 * MiB)
        #expect(r.vmFlags.isEmpty)
    }

    @Test func rollupRejectsSeveralHeaders() throws {
        let text = try fixture("smaps-memfd-hugetlb-6.18")
        #expect(throws: ProcParseError.self) { try Smaps.parseRollup(text) }
        #expect(throws: ProcParseError.self) { try Smaps.parseRollup("") }
    }

    @Test func fieldBeforeHeaderThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try Smaps.parse(try fixture("smaps-malformed"))
        }
        #expect(e.line == 1)
        #expect(e.text == "Rss:                   4 kB")
    }

    @Test func badHeaderThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try Smaps.parse("7f00-7000 rw-p 00000000 00:00 0\nRss: 4 kB\nzz-7f00 rw-p 0 00:00 0\n")
        }
        #expect(e.line == 1)  // end before start
        let e2 = try #require(throws: ProcParseError.self) {
            try Smaps.parse("7000-8000 rw-p 00000000 00:00 0\nRss: 4 kB\nzz-7f00 rw-p 0 00:00 0\n")
        }
        #expect(e2.line == 3)
    }

    @Test func pathWithSpacesKept() throws {
        let entries = try Smaps.parse("1000-2000 rw-s 00000000 00:01 7   /dev/shm/a b  c (deleted)\nRss: 4 kB\n")
        #expect(entries.first?.path == "/dev/shm/a b  c (deleted)")
        #expect(entries.first?.rss == 4096)
    }

    @Test func emptyInputIsNoMappings() throws {
        // Kernel threads and zombies have an empty smaps.
        #expect(try Smaps.parse("") == [])
    }
}

// MARK: - /proc/PID/maps

@Suite struct MapsParserTests {
    @Test func realFile() throws {
        let entries = try Maps.parse(try fixture("maps-6.18"))
        #expect(entries.count == 26)
        let memfd = try #require(Maps.entry(containing: 0x7f66_e427_3000, in: entries))
        #expect(memfd.path == "/memfd:ptshare (deleted)")
        #expect(memfd.end == 0x7f66_e827_3000)
        #expect(memfd.perms == "rw-s")
        #expect(memfd.offset == 0)
        let libcText = try #require(entries.first { $0.perms == "r-xp" && $0.path.hasSuffix("libc.so.6") })
        #expect(libcText.offset == 0x26000)
        #expect(libcText.inode == 333_151)
        #expect(entries.filter { $0.path.isEmpty }.count == 3)
        #expect(entries.last?.path == "[vsyscall]")
    }

    @Test func smapsAndMapsAgree() throws {
        let maps = try Maps.parse(try fixture("maps-6.18"))
        let smaps = try Smaps.parse(try fixture("smaps-memfd-hugetlb-6.18"))
        #expect(maps.map(\.start) == smaps.map(\.start))
        #expect(maps.map(\.end) == smaps.map(\.end))
        #expect(maps.map(\.path) == smaps.map(\.path))
    }

    @Test func malformedLineThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try Maps.parse("1000-2000 rw-p 00000000 00:00 0\nRss: 4 kB\n")
        }
        #expect(e.line == 2)
    }
}

// MARK: - /proc/mounts

@Suite struct MountsParserTests {
    @Test func realFile() throws {
        let mounts = try Mounts.parse(try fixture("mounts-6.18"))
        #expect(mounts.count == 19)
        let root = try #require(mounts.first { $0.mountPoint == "/" })
        #expect(root.source == "/dev/vda")
        #expect(root.fsType == "ext4")
        #expect(root.option("resuid") == "65534")
        #expect(root.option("discard") == "")
        #expect(root.option("dax") == nil)
        let shm = try #require(Mounts.mountPoint(containing: "/dev/shm/ptshare", in: mounts))
        #expect(shm.fsType == "tmpfs")
        #expect(shm.option("size") == "24683656k")
        #expect(Mounts.mountPoint(containing: "/tmp/x", in: mounts)?.mountPoint == "/")
        #expect(Mounts.mountPoint(containing: "/dev/null", in: mounts)?.fsType == "devtmpfs")
        #expect(Mounts.mountPoint(containing: "/dev/shmem", in: mounts)?.fsType == "devtmpfs")
        #expect(Mounts.mountPoint(containing: "/dev/shm", in: mounts)?.fsType == "tmpfs")
        #expect(Mounts.mountPoint(containing: "/sys/fs/cgroup/memory/a", in: mounts)?.option("memory") == "")
        #expect(Mounts.mountPoint(containing: "relative", in: mounts) == nil)
    }

    /// mounts-dax-escaped.txt is constructed by hand: no DAX device or escaped mount point
    /// exists on the capture machine. The kernel writes space as \040, tab \011, backslash \134.
    @Test func constructedDaxAndEscapes() throws {
        let mounts = try Mounts.parse(try fixture("mounts-dax-escaped"))
        #expect(mounts.count == 5)
        let pmem = mounts[1]
        #expect(pmem.mountPoint == "/mnt/pmem fs")
        #expect(pmem.option("dax") == "")
        #expect(pmem.options == ["rw", "relatime", "dax"])
        let huge = mounts[2]
        #expect(huge.mountPoint == "/mnt/huge 2M")
        #expect(huge.fsType == "hugetlbfs")
        #expect(huge.option("pagesize") == "2M")
        #expect(mounts[3].mountPoint == "/mnt/tab\tand\\slash")
        #expect(mounts[3].option("huge") == "within_size")
        #expect(mounts[4].option("dax") == "always")
        // Longest whole-component prefix wins.
        #expect(Mounts.mountPoint(containing: "/mnt/pmem fs/inner/f", in: mounts)?.fsType == "xfs")
        #expect(Mounts.mountPoint(containing: "/mnt/pmem fs/f", in: mounts)?.fsType == "ext4")
        #expect(Mounts.mountPoint(containing: "/mnt/pmem fs/f", in: mounts)?.source == "/dev/pmem0")
        #expect(Mounts.mountPoint(containing: "/mnt/huge 2M/file", in: mounts)?.option("pagesize") == "2M")
    }

    @Test func malformedThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try Mounts.parse("/dev/vda / ext4 rw 0 0\nnone /mnt tmpfs rw 0\n")
        }
        #expect(e.line == 2)
        let e2 = try #require(throws: ProcParseError.self) { try Mounts.parse("none /mnt\\04 tmpfs rw 0 0\n") }
        #expect(e2.line == 1)
        #expect(throws: ProcParseError.self) { try Mounts.parse("") }
    }
}

// MARK: - kernel .config

@Suite struct KernelConfigParserTests {
    @Test func realExcerpt() throws {
        let c = try KernelConfig.parse(try fixture("config-excerpt-6.18"))
        #expect(c.value("CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING") == "y")
        #expect(c.isEnabled("CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING"))
        #expect(c.value("CONFIG_PGTABLE_LEVELS") == "5")
        #expect(c.value("PGTABLE_LEVELS") == "5")
        #expect(c.value("CONFIG_NR_CPUS") == "256")
        #expect(c.value("CONFIG_CC_VERSION_TEXT") == "\"gcc (GCC) 15.3.0\"")
        #expect(c.value("CONFIG_LOCALVERSION") == "\"-fc-v782\"")
        #expect(c.value("CONFIG_PHYSICAL_START") == "0x1000000")
        #expect(c.isEnabled("CONFIG_TRANSPARENT_HUGEPAGE"))
        #expect(c.isEnabled("CONFIG_TRANSPARENT_HUGEPAGE_MADVISE"))
        #expect(c.value("CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS") == "n")
        #expect(!c.isEnabled("CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS"))
        #expect(c.value("CONFIG_DEV_DAX") == "n")
        #expect(c.isEnabled("CONFIG_FS_DAX"))
        #expect(c.isEnabled("CONFIG_MEMFD_CREATE"))
        #expect(c.isEnabled("CONFIG_HUGETLBFS"))
        #expect(c.isEnabled("CONFIG_SPLIT_PMD_PTLOCKS"))
        #expect(c.value("CONFIG_DEBUG_VM") == "n")
        #expect(c.value("CONFIG_NOT_IN_FILE") == nil)
        #expect(!c.isEnabled("CONFIG_NOT_IN_FILE"))
        #expect(c.options.count == 53)
    }

    @Test func moduleCountsAsEnabled() throws {
        // This kernel is built without modules; "m" is checked on a constructed line.
        let c = try KernelConfig.parse("CONFIG_DEV_DAX=m\n")
        #expect(c.isEnabled("DEV_DAX"))
    }

    @Test func garbageLineThrows() throws {
        let e = try #require(throws: ProcParseError.self) {
            try KernelConfig.parse("# comment\nCONFIG_A=y\nHUGETLB=y\n")
        }
        #expect(e.line == 3)
        let e2 = try #require(throws: ProcParseError.self) { try KernelConfig.parse("CONFIG_A=y\nCONFIG_B=\n") }
        #expect(e2.line == 2)
        #expect(throws: ProcParseError.self) { try KernelConfig.parse("") }
    }
}

// MARK: - transparent_hugepage policies

@Suite struct ThpSettingParserTests {
    @Test func realShmemEnabled() throws {
        let t = try ThpSetting.parse(try fixture("thp-shmem_enabled-6.18"))
        #expect(t.selected == "never")
        #expect(t.choices == ["always", "within_size", "advise", "never", "deny", "force"])
    }

    @Test func realEnabled() throws {
        let t = try ThpSetting.parse(
            try fixture("thp-enabled-6.18"), source: "/sys/kernel/mm/transparent_hugepage/enabled")
        #expect(t.selected == "madvise")
        #expect(t.choices == ["always", "madvise", "never"])
    }

    @Test func bracketCountMustBeOne() throws {
        let none = try #require(throws: ProcParseError.self) { try ThpSetting.parse("always madvise never\n") }
        #expect(none.line == 1)
        #expect(throws: ProcParseError.self) { try ThpSetting.parse("[always] [madvise] never\n") }
        #expect(throws: ProcParseError.self) { try ThpSetting.parse("always [madvise never\n") }
        #expect(throws: ProcParseError.self) { try ThpSetting.parse("") }
    }
}

// MARK: - /proc/interrupts

@Suite struct InterruptsParserTests {
    @Test func callAndTLBRowsSummedOverCPUs() throws {
        // interrupts-6.18.txt (2 CPUs): "CAL:    1325233    1232735   Function call interrupts",
        // "TLB:      99167      82383   TLB shootdowns".
        #expect(
            IPICounts.parse(try fixture("interrupts-6.18"))
                == IPICounts(call: 1_325_233 + 1_232_735, tlb: 99167 + 82383))
    }

    @Test func rowsMissing() {
        #expect(IPICounts.parse("           CPU0\n  0:         25   IO-APIC   2-edge      timer\n") == nil)
        #expect(IPICounts.parse("TLB:  5  6   TLB shootdowns\n") == nil)
        #expect(IPICounts.row("TLB:  5  6   TLB shootdowns\n", "TLB:") == 11)
        #expect(IPICounts.parse("") == nil)
    }
}

@Suite struct PagemapParserTests {
    /// pagemap-6.18.txt: the bytes as hex after its comment lines.
    private func bytes() throws -> [UInt8] {
        let hexText = try fixture("pagemap-6.18").split(separator: "\n").filter { !$0.hasPrefix("#") }.joined()
        var out: [UInt8] = []
        var i = hexText.startIndex
        while i < hexText.endIndex {
            let j = hexText.index(i, offsetBy: 2)
            out.append(try #require(UInt8(hexText[i..<j], radix: 16)))
            i = j
        }
        return out
    }

    @Test func memfdAndAnonymousPages() throws {
        let e = try Pagemap.parse(try bytes(), source: "pagemap-6.18.txt")
        #expect(e.count == 5)
        for i in 0..<2 {
            #expect(e[i].present && e[i].fileOrSharedAnon && e[i].exclusive && !e[i].swapped)
            #expect((e[i].pfn ?? 0) > 0)
        }
        #expect(e[0].pfn == 0x28_343e)
        for i in 2..<4 { #expect(e[i] == PagemapEntry(raw: 0) && e[i].pfn == nil && !e[i].exclusive) }
        #expect(e[4].present && !e[4].fileOrSharedAnon && e[4].exclusive)
    }

    @Test func partialEntryRefused() {
        #expect(throws: ProcParseError.self) { try Pagemap.parse([1, 2, 3], source: "x") }
        #expect(Pagemap.offset(of: 0x7f00_0000_3000) == 0x7f00_0000_3000 / 4096 * 8)
    }
}

@Suite struct KselftestTotalsTests {
    @Test func capturedRunWhereEveryTestSkipped() throws {
        // kselftest-ptshare-skips.txt: the series' selftest run on Linux 6.18 (no MAP_SHARED_PT).
        #expect(
            KselftestTotals.parse(try fixture("kselftest-ptshare-skips"))
                == KselftestTotals(pass: 0, fail: 0, xfail: 0, xpass: 0, skip: 6, error: 0))
    }

    @Test func missingOrMalformedTotals() {
        #expect(KselftestTotals.parse("ok 1 a\n") == nil)
        #expect(KselftestTotals.parse("# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0\n") == nil)
        #expect(KselftestTotals.parse("# Totals: pass:x fail:0 xfail:0 xpass:0 skip:0 error:0\n") == nil)
        #expect(
            KselftestTotals.parse("# Totals: pass:5 fail:1 xfail:0 xpass:0 skip:0 error:0\n")
                == KselftestTotals(pass: 5, fail: 1, xfail: 0, xpass: 0, skip: 0, error: 0))
    }
}

// MARK: - name value counters (/proc/vmstat, memory.stat, memory.events)

@Suite struct CountersParserTests {
    @Test func realVmstat() throws {
        let v = try Counters.parse(try fixture("vmstat-6.18"), source: "/proc/vmstat")
        #expect(v.count == 192)
        #expect(v["nr_free_pages"] == 1_814_836)
        #expect(v["pswpout"] == 0)
        #expect(v["pgmigrate_success"] == 0)
    }

    @Test func malformedLinesAreErrorsWithTheirNumber() {
        for (text, reason) in [
            ("a 1\nb\n", "expected \"name value\", found 1 fields"),
            ("a 1\nb 2 kB\n", "expected \"name value\", found 3 fields"),
            ("a 1\nb -2\n", "non-numeric value \"-2\""),
            ("a 1\na 2\n", "\"a\" appears twice"),
        ] {
            #expect(
                throws: ProcParseError(
                    source: "memory.stat", line: 2, text: String(text.split(separator: "\n")[1]), reason: reason)
            ) {
                try Counters.parse(text, source: "memory.stat")
            }
        }
        #expect(throws: ProcParseError(source: "memory.events", line: 0, text: "", reason: "no counters")) {
            try Counters.parse("\n", source: "memory.events")
        }
    }

    @Test func deltaOfGrowingCounters() {
        #expect(Counters.delta(["x": 5], ["x": 9], "x") == 4)
        #expect(Counters.delta(["x": 5], ["x": 3], "x") == 0)
        #expect(Counters.delta([:], ["x": 3], "x") == nil)
    }
}

// MARK: - /proc/PID/numa_maps

@Suite struct NumaMapsParserTests {
    /// numa_maps-membind-6.18.txt: `numactl --membind=0 --cpunodebind=0` of a small C program
    /// that maps one 8 MiB memfd three times (populated, 2 MiB touched, never touched), plus
    /// 1 MiB of private anonymous memory and a heap, then copies /proc/self/numa_maps to stdout.
    @Test func realMembind() throws {
        let e = try NumaMaps.parse(try fixture("numa_maps-membind-6.18"))
        #expect(e.count == 27)
        #expect(e.allSatisfy { $0.policy == "bind:0" })
        let populated = try #require(NumaMaps.entry(at: 0x7ff0_efc0_7000, in: e))
        #expect(populated.file == "/memfd:ptshare (deleted)")
        #expect(populated.pagesPerNode == [0: 2048])
        #expect(populated.pages == 2048)
        #expect(populated.dirty == 2048)
        #expect(populated.counters["mapmax"] == 2)
        #expect(populated.active == 0)
        // mapped= is printed only when it differs from anon and dirty.
        #expect(populated.mapped == nil)
        #expect(populated.kernelPageSize == 4 * KiB)
        #expect(!populated.heap && !populated.stack && !populated.huge)
        // The 2 MiB touched one by one; fault-around mapped the neighbours as well.
        #expect(NumaMaps.entry(at: 0x7ff0_ef40_7000, in: e)?.pagesPerNode == [0: 521])
        // Mapped, never touched: nothing after the file, no page size.
        let untouched = try #require(NumaMaps.entry(at: 0x7ff0_eec0_7000, in: e))
        #expect(untouched.file == "/memfd:ptshare (deleted)")
        #expect(untouched.pages == 0 && untouched.pagesPerNode.isEmpty && untouched.kernelPageSize == nil)
        let anon = try #require(NumaMaps.entry(at: 0x7ff0_eeb0_7000, in: e))
        #expect(anon.file == nil && anon.anon == 256 && anon.pagesPerNode == [0: 256])
        #expect(e.first { $0.heap }?.pagesPerNode == [0: 25])
        #expect(e.last?.stack == true && e.last?.active == 1)
        let libc = try #require(NumaMaps.entry(at: 0x7ff0_f043_0000, in: e))
        #expect(libc.file == "/usr/lib/x86_64-linux-gnu/libc.so.6" && libc.mapped == 160)
        // A worker's mapping is found by its start only.
        #expect(NumaMaps.entry(at: 0x7ff0_efc0_8000, in: e) == nil)
    }

    /// numa_maps-2node-constructed.txt is hand-made (this machine has one node) from the format
    /// of show_numa_map (fs/proc/task_mmu.c) and mpol_to_str (mm/mempolicy.c) in Linux 6.12:
    /// two nodes, every policy spelling with a node list, hugetlb, escapes, rarer counters.
    @Test func constructedTwoNodes() throws {
        let e = try NumaMaps.parse(try fixture("numa_maps-2node-constructed"))
        #expect(
            e.map(\.policy) == [
                "bind:1", "interleave:0-1", "weighted interleave:0-1", "prefer (many):0-1", "bind=static:1", "local",
            ])
        #expect(e[0].pagesPerNode == [1: 16384] && e[0].counters["mapmax"] == 200)
        #expect(e[1].pagesPerNode == [0: 1024, 1: 1024] && e[1].pages == 2048)
        #expect(e[2].file == nil && e[2].anon == 6 && e[2].pagesPerNode == [0: 4, 1: 2])
        #expect(e[3].huge && e[3].kernelPageSize == 2 * MiB && e[3].pages == 512)
        #expect(e[3].file == "/dev/hugepages/ptshare.77.data (deleted)")
        #expect(e[4].file == "/dev/shm/a=b")
        #expect(e[4].counters == ["mapped": 10, "swapcache": 2, "writeback": 1])
        #expect(e[5] == NumaMapsEntry(address: 0x7f01_4000_0000, policy: "local"))
    }

    @Test func emptyIsNoMappings() throws {
        #expect(try NumaMaps.parse("").isEmpty)
    }

    @Test func malformedLinesThrow() throws {
        let cases: [(String, String)] = [
            ("zz default N0=1\n", "bad address \"zz\""),
            ("7f00\n", "no policy after the address"),
            ("7f00 N0=1 kernelpagesize_kB=4\n", "no policy after the address"),
            ("7f00 default N0=x\n", "expected key=number after the policy, found \"N0=x\""),
            ("7f00 default anon=1 oops\n", "expected key=number after the policy, found \"oops\""),
            ("7f00 default N0=1 N0=2\n", "N0= twice"),
            ("7f00 default dirty=1 dirty=1\n", "dirty= twice"),
            ("7f00 default heap heap\n", "\"heap\" twice"),
            ("7f00 default file=/a file=/b\n", "file= twice"),
            ("7f00 default kernelpagesize_kB=4 kernelpagesize_kB=4\n", "kernelpagesize_kB twice"),
        ]
        for (text, reason) in cases {
            let e = try #require(throws: ProcParseError.self, "\(text)") {
                try NumaMaps.parse("7eff default\n" + text, source: "/proc/7/numa_maps")
            }
            #expect(e.reason == reason, "\(text)")
            #expect(e.line == 2 && e.source == "/proc/7/numa_maps", "\(text)")
        }
    }

    @Test func unknownCountersAreKept() throws {
        // A key=number a newer kernel adds is kept, not refused.
        let e = try NumaMaps.parse("7f00 default file=/x dirty=1 newcount=7 N0=1 kernelpagesize_kB=4\n")
        #expect(e[0].counters == ["dirty": 1, "newcount": 7])
    }
}
