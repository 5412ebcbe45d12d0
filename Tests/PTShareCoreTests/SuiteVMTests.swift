import Testing

@testable import PTShareCore

@Suite struct KTAPTests {
    @Test func documentShape() {
        let results = [
            KTAPResult(name: "probe.map_shared_pt", status: .pass, diagnostics: ["probe says no"]),
            KTAPResult(name: "memfd.baseline.model", status: .fail, diagnostics: ["two\nlines"]),
            KTAPResult(name: "hugetlb.pmd_share.savings", status: .skip("no hugetlbfs\nmounted")),
        ]
        var text = KTAP.header(count: results.count)
        for (i, r) in results.enumerated() { text += KTAP.result(r, number: i + 1) }
        text += KTAP.totals(results)
        #expect(
            text == """
                KTAP version 1
                1..3
                # probe says no
                ok 1 probe.map_shared_pt
                # two
                # lines
                not ok 2 memfd.baseline.model
                ok 3 hugetlb.pmd_share.savings # SKIP no hugetlbfs mounted
                # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0

                """)
    }

    @Test func suiteNamesAreStable() {
        #expect(
            Suite.testNames == [
                "probe.map_shared_pt", "memfd.baseline.model", "hugetlb.pmd_share.savings", "control.overhead",
                "tables.memfd.baseline.distinct", "tables.hugetlb.pmd_shared", "dax.baseline.model", "kmod.badinput",
                "numa.pagetables.per_node",
                "sharedpt.memfd.savings", "sharedpt.memfd.tables", "sharedpt.tmpfs.savings",
                "sharedpt.anon.savings", "sharedpt.anon.tables", "sharedpt.anon.fork_inherit", "sharedpt.anon.teardown",
                "sharedpt.anon.stress",
                "sharedpt.dax.savings", "sharedpt.dax.tables", "sharedpt.dax.coherence", "sharedpt.dax.truncate",
                "sharedpt.dax.map_sync",
                "sharedpt.dax.stress", "sharedpt.dax.teardown",
                "sharedpt.semantics.coherence", "sharedpt.semantics.munmap_isolation",
                "sharedpt.semantics.creator_exit",
                "sharedpt.semantics.fork", "sharedpt.semantics.truncate", "sharedpt.semantics.holepunch",
                "sharedpt.semantics.mremap", "sharedpt.semantics.madvise_dontneed",
                "sharedpt.semantics.madvise_hugepage", "sharedpt.semantics.madvise_pageout",
                "sharedpt.semantics.unaligned_merge", "sharedpt.semantics.partial_munmap",
                "sharedpt.semantics.ro_rw_isolation",
                "sharedpt.semantics.different_addresses", "sharedpt.semantics.offset_mismatch",
                "sharedpt.semantics.madvise_collapse",
                "sharedpt.semantics.madvise_mergeable", "sharedpt.semantics.madvise_remove",
                "sharedpt.semantics.map_fixed", "sharedpt.semantics.stale_tlb",
                "sharedpt.unshare.mprotect", "sharedpt.unshare.mlock", "sharedpt.unshare.mlockall",
                "sharedpt.unshare.userfaultfd", "sharedpt.unshare.split", "sharedpt.unshare.notifier",
                "sharedpt.unshare.soft_dirty",
                "sharedpt.accounting.rss", "sharedpt.accounting.move_all", "sharedpt.thp.mixed",
                "sharedpt.reclaim.swap", "sharedpt.memcg.charge", "sharedpt.oom.sharer", "sharedpt.migrate.compaction",
                "sharedpt.migrate.move_pages",
                "sharedpt.memory_failure.hwpoison", "sharedpt.numa.balancing",
                "sharedpt.kselftest", "sharedpt.hint_rounding",
                "sharedpt.scale.truncate", "sharedpt.saturation", "sharedpt.negative.private",
                "sharedpt.negative.anonymous", "sharedpt.negative.misaligned_address",
                "sharedpt.negative.misaligned_length", "sharedpt.negative.misaligned_offset",
                "sharedpt.negative.non_shmem", "sharedpt.stress", "sharedpt.pressure.stress",
                "sharedpt.teardown.no_leak",
            ])
        #expect(Set(Suite.testNames).count == Suite.testNames.count)
    }
}

@Suite struct ConsoleScanTests {
    @Test func findsEveryPatternWithLineNumbers() {
        let log = """
            [    0.000000] Linux version 6.12.117-ptshare-stock-e3b0c442
            ptshare-init: kernel 6.12.117-ptshare-stock-e3b0c442
            [   12.5] BUG: Bad page state in process ptshare  pfn:1234
            [   13.0] WARNING: CPU: 1 PID: 77 at mm/memory.c:1 zap_pte_range+0x10/0x20
            [   14.0] Oops: general protection fault, probably for non-canonical address
            [   15.0] Kernel panic - not syncing: Fatal exception
            [   16.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!
            [   17.0] INFO: task ptshare:80 blocked for more than 120 seconds. hung_task
            ok 1 memfd.baseline.model
            """
        let p = ConsoleScan.problems(in: log)
        #expect(p.map(\.line) == [3, 4, 5, 6, 7, 8])
        #expect(p[0].text == "[   12.5] BUG: Bad page state in process ptshare  pfn:1234")
    }

    @Test func cleanBootHasNone() {
        #expect(ConsoleScan.problems(in: "ptshare-init: exit status 0\nreboot: Power down\n").isEmpty)
    }

    @Test func tailKeepsTheLastLines() {
        #expect(ConsoleScan.tail("a\nb\n\nc\nd\n", count: 2) == "c\nd")
    }
}

@Suite struct QEMUArgumentTests {
    @Test func tcgRunWithResultsShare() {
        let a = VirtualMachine.qemuArguments(
            kernel: "/k/bzImage", initramfs: "/i.cpio.gz", accel: .tcg, cpus: 2, memoryBytes: 4 << 30,
            commandLine: VirtualMachine.kernelCommandLine(hugepages: 600, pmemBytes: 64 << 20, bootProbe: false),
            console: "/o/console.log",
            share: "/o")
        #expect(
            a == [
                "qemu-system-x86_64", "-machine", "pc", "-nodefaults", "-no-reboot", "-display", "none", "-monitor",
                "none",
                "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "4096M", "-kernel", "/k/bzImage",
                "-initrd", "/i.cpio.gz", "-append", "console=ttyS0 panic=-1 hugepages=600 memmap=64M!1G", "-serial",
                "file:/o/console.log", "-virtfs", "local,path=/o,mount_tag=ptshare,security_model=none,id=ptshare",
            ])
    }

    @Test func kvmProbeBootHasNoShare() {
        let a = VirtualMachine.qemuArguments(
            kernel: "k", initramfs: "i", accel: .kvm, cpus: 1, memoryBytes: 256 << 20,
            commandLine: VirtualMachine.kernelCommandLine(hugepages: 0, pmemBytes: 0, bootProbe: true), console: "c",
            share: nil)
        #expect(a.contains("kvm"))
        #expect(!a.contains("-virtfs"))
        #expect(a.contains("console=ttyS0 panic=-1 hugepages=0 ptshare.mode=bootprobe"))
    }

    @Test func numaNodesGetASocketEach() {
        #expect(VirtualMachine.smp(cpus: 2, numaNodes: 1) == "2")
        #expect(VirtualMachine.smp(cpus: 2, numaNodes: 2) == "2,sockets=2,cores=1,threads=1")
        #expect(VirtualMachine.smp(cpus: 4, numaNodes: 2) == "4,sockets=2,cores=2,threads=1")
        #expect(VirtualMachine.smp(cpus: 2, numaNodes: 3) == "2,sockets=2,cores=1,threads=1")
    }

    @Test func numaNodesSplitMemoryAndCPUs() {
        #expect(VirtualMachine.numaArguments(nodes: 1, cpus: 2, memoryMiB: 4096).isEmpty)
        #expect(
            VirtualMachine.numaArguments(nodes: 2, cpus: 2, memoryMiB: 4097) == [
                "-object", "memory-backend-ram,id=ptshare-mem0,size=2048M", "-numa",
                "node,nodeid=0,cpus=0,memdev=ptshare-mem0",
                "-object", "memory-backend-ram,id=ptshare-mem1,size=2049M", "-numa",
                "node,nodeid=1,cpus=1,memdev=ptshare-mem1",
            ])
        // Fewer CPUs than nodes: the last node has memory only.
        let a = VirtualMachine.numaArguments(nodes: 3, cpus: 2, memoryMiB: 3072)
        #expect(
            a.filter { $0.hasPrefix("node,") } == [
                "node,nodeid=0,memdev=ptshare-mem0", "node,nodeid=1,cpus=0,memdev=ptshare-mem1",
                "node,nodeid=2,cpus=1,memdev=ptshare-mem2",
            ])
        #expect(
            VirtualMachine.numaArguments(nodes: 2, cpus: 4, memoryMiB: 4096).filter { $0.hasPrefix("node,") } == [
                "node,nodeid=0,cpus=0-1,memdev=ptshare-mem0", "node,nodeid=1,cpus=2-3,memdev=ptshare-mem1",
            ])
    }

    @Test func pmemOnTheCommandLine() {
        #expect(
            VirtualMachine.kernelCommandLine(hugepages: 600, pmemBytes: 0, bootProbe: false)
                == "console=ttyS0 panic=-1 hugepages=600")
        #expect(
            VirtualMachine.kernelCommandLine(hugepages: 0, pmemBytes: 768 << 20, bootProbe: false)
                == "console=ttyS0 panic=-1 hugepages=0 memmap=768M!1G")
    }
}

/// checkMemory: huge pages, pmem and 512M must fit, and the pmem range must end 256M below the
/// lower of 2G and the top of low RAM (where QEMU loads the initramfs).
@Suite struct VMMemoryCheckTests {
    func problem(memory: UInt64, hugepages: Int, pmem: UInt64) -> String? {
        let o = VMOptions(
            kernel: .flavour("stock"), memoryBytes: memory, cpus: 2, timeoutSeconds: 1, outDirectory: "/o",
            accel: .tcg, hugepages: hugepages, pmemBytes: pmem, guestArguments: ["probe"], root: "/r")
        do {
            try VirtualMachine.checkMemory(o)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func defaultsFit() {
        #expect(problem(memory: 4 << 30, hugepages: 600, pmem: 64 << 20) == nil)
        #expect(problem(memory: 4 << 30, hugepages: 600, pmem: 0) == nil)
        // The largest range: it ends exactly 256M below 2G.
        #expect(problem(memory: 3 << 30, hugepages: 0, pmem: 768 << 20) == nil)
        #expect(problem(memory: 1344 << 20, hugepages: 0, pmem: 64 << 20) == nil)
    }

    @Test func tooLittleMemoryCountsThePmem() {
        #expect(
            problem(memory: 1 << 30, hugepages: 600, pmem: 0)
                == "--memory 1G: too little for 600 huge pages (1200M) plus 512M for the kernel and the workers; use --memory 1712M or more, or fewer --hugepages"
        )
        #expect(
            problem(memory: 1 << 30, hugepages: 600, pmem: 64 << 20)
                == "--memory 1G: too little for 600 huge pages (1200M), 64M of pmem plus 512M for the kernel and the workers; use --memory 1776M or more, or fewer --hugepages or a smaller --pmem"
        )
        #expect(problem(memory: 1776 << 20, hugepages: 600, pmem: 64 << 20) == nil)
    }

    @Test func rangeMustStayClearOfTheInitramfs() {
        #expect(
            problem(memory: 1 << 30, hugepages: 0, pmem: 64 << 20)
                == "--pmem 64M: the pmem range starts at guest-physical 1G and must end 256M below 1G, under which QEMU loads the initramfs with --memory 1G; use --memory 1344M or more, or --pmem 0 for none"
        )
        #expect(
            problem(memory: 4 << 30, hugepages: 600, pmem: 1 << 30)
                == "--pmem 1G: the pmem range starts at guest-physical 1G and must end 256M below 2G, under which QEMU loads the initramfs with --memory 4G; use --pmem 768M or less, or --pmem 0 for none"
        )
        #expect(
            problem(memory: 1537 << 20, hugepages: 0, pmem: 512 << 20)
                == "--pmem 512M: the pmem range starts at guest-physical 1G and must end 256M below 1537M, under which QEMU loads the initramfs with --memory 1537M; use --pmem 256M or less, or --memory 1792M or more, or --pmem 0 for none"
        )
    }
}

@Suite struct SkewedAddressTests {
    @Test func parsesAndPrints() {
        #expect(AddressMode.parse("same+2M") == .sameSkewed(2 << 20))
        #expect(AddressMode.parse("same+2M")?.description == "same+2M")
        #expect(AddressMode.parse("same+") == nil)
        #expect(AddressMode.parse("same+1") == nil)
    }

    @Test func sharePTNeedsAPMDMultipleSkew() {
        let s = Scenario(backing: .memfd, size: 4 << 20, workers: 2, share: .pt, address: .sameSkewed(4096))
        #expect(
            throws: ValidationMessage(
                "--address same+4K: --share pt (MAP_SHARED_PT) needs a skew that is a multiple of 2M (the PMD size)")
        ) {
            try s.validate()
        }
    }
}

@Suite struct FragmentCheckTests {
    @Test func reportsWhatTheConfigContradicts() throws {
        let fragment = """
            # comment
            CONFIG_ADVISE_SYSCALLS=y
            CONFIG_NR_CPUS=64
            CONFIG_HUGETLBFS=y
            CONFIG_9P_FS=y
            # CONFIG_LOCALVERSION_AUTO is not set
            """
        let config = try KernelConfig.parse(
            """
            # CONFIG_ADVISE_SYSCALLS is not set
            CONFIG_NR_CPUS=2
            CONFIG_HUGETLBFS=y
            CONFIG_LOCALVERSION_AUTO=y
            """)
        #expect(
            FragmentCheck.missing(fragment: fragment, config: config) == [
                "CONFIG_ADVISE_SYSCALLS=y (got: not set)",
                "CONFIG_NR_CPUS=64 (got: 2)",
                "CONFIG_9P_FS=y (got: absent)",
                "# CONFIG_LOCALVERSION_AUTO is not set (got: y)",
            ])
    }
}

@Suite struct TableProbeSlotTests {
    /// The module sizes its answer by the aligned 2 MiB and 1 GiB windows covering [start, end);
    /// ptshare must offer exactly as many slots or the call is EINVAL.
    @Test func slotCountsCoverTheAlignedWindows() {
        let g: UInt64 = 1 << 30
        #expect(TableProbe.slotCounts(start: 0x7f00_0000_0000, end: 0x7f00_0000_0000 + g) == (512, 1))
        // 64 MiB starting 4 KiB into a 2 MiB window: 33 PTE windows, one PMD window.
        #expect(TableProbe.slotCounts(start: 0x7f00_0000_1000, end: 0x7f00_0400_1000) == (33, 1))
        // 1 GiB skewed by 2 MiB: 512 PTE windows, two PMD windows.
        #expect(TableProbe.slotCounts(start: g + (2 << 20), end: 2 * g + (2 << 20)) == (512, 2))
        #expect(TableProbe.slotCounts(start: 4096, end: 8192) == (1, 1))
    }
}
