import CPTShare
import Glibc

/// Tests that make a hook of the series run which no other test reaches: memory_failure()'s
/// unmap through the reverse map, and NUMA balancing's scan (task_numa_work(), which skips
/// VM_SHARED_PT vmas). Like the pressure tests they run unshared on a kernel without the flag.
extension SharedPTSemantics {
    /// Four sharers of a 4 MiB memfd with data. Sharer 3 injects a memory failure into one page
    /// of its mapping (madvise(MADV_HWPOISON), root): memory_failure() unmaps the page from every
    /// mapping through the reverse map (try_to_unmap(), which, shared, leaves a hwpoison entry in
    /// the table all sharers use) and, the page being dirty, kills the injecting process with
    /// SIGBUS. Premise: meminfo HardwareCorrupted grew by the page. Then each of the others gets
    /// SIGBUS reading that page and reads every other page intact, shared still one table per
    /// chunk; the kernel log has no BUG or WARNING (memory_failure's own report is expected).
    /// The poisoned page stays out of use until the guest powers off. Not root: SKIP.
    static func hwpoison(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.memory_failure.hwpoison", o, size: 4 << 20) { f, c, shared throws(SharedPTError) in
            guard geteuid() == 0 else {
                c.unproven("MADV_HWPOISON needs CAP_SYS_ADMIN; running as uid \(geteuid())")
                return
            }
            let log = KernelLog.open()
            let s = try f.spawn(4)
            var a: [UInt64] = []
            for i in s.indices { a.append(try map(f, s[i], i, &c)) }
            try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
            for i in 1..<s.count { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            censusIfShared(shared, s, Array(s.indices), a, length: f.size, &c, o)
            let bad: UInt64 = mib + 3 * page
            let corrupted = { () -> UInt64? in (try? ProcFS.meminfo())?.fields["HardwareCorrupted"] }
            guard let before = corrupted() else {
                c.expect(false, "/proc/meminfo has no HardwareCorrupted (CONFIG_MEMORY_FAILURE)")
                return
            }
            do throws(SharedPTError) {
                let r = try s[3].call(PTSHARE_AGENT_MADVISE, addr: a[3] + bad, length: page, arg: ptshare_MADV_HWPOISON)
                // Returned instead of dying: the injection failed, or the kernel did not kill.
                c.expect(false, "sharer 3 madvise(MADV_HWPOISON) at offset \(hex(bad)) returned: \(Checks.describe(r))")
                throw .stepFailed("MADV_HWPOISON")
            } catch {
                guard case .sharerDied(_, _, let status) = error else { throw error }
                c.expect(status.contains("SIGBUS"), "sharer 3 madvise(MADV_HWPOISON) at offset \(hex(bad)): \(status)")
            }
            let after = corrupted() ?? 0
            c.expect(
                after >= before + page,
                "meminfo HardwareCorrupted \(ByteSize(before)) -> \(ByteSize(after))"
                    + (after >= before + page ? "" : ", expected one page more"))
            for i in 0..<3 {
                c.sigbus(
                    "sharer \(i) reads the poisoned page", try s[i].call(PTSHARE_AGENT_READ, addr: a[i] + bad))
                try check(s[i], i, a[i], bad, seed: 0x1000, &c)
                try check(s[i], i, a[i] + bad + page, f.size - bad - page, seed: 0x1000 + bad / page + 1, &c)
            }
            censusIfShared(shared, s, [0, 1, 2], a, length: f.size, &c, o)
            f.killSharers()
            expectCleanLog(log, &c)
        }
    }

    static let numaBalancingPath = "/proc/sys/kernel/numa_balancing"

    /// NUMA balancing on (kernel.numa_balancing 1, restored after) while three sharers of an
    /// 8 MiB memfd each read it and a plain 4 MiB memfd of their own, over and over, for 8 s of
    /// CPU each: enough for task_numa_work() to scan their address spaces (it starts after 1 s
    /// of a task's runtime and skips a vma it met less than 1 s ago). It must skip the shared
    /// mappings (a hinting fault through a shared table would be every sharer's) and go on with
    /// the rest. Premise: /proc/vmstat numa_pte_updates grew (the scan ran in these processes;
    /// the plain mappings are there for it to find). The data stays intact for every sharer,
    /// shared still one table per chunk, the log clean. One NUMA node: SKIP (balancing never
    /// starts); no numa_balancing sysctl: SKIP (CONFIG_NUMA_BALANCING).
    static func numaBalancing(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.numa.balancing", o, size: 8 << 20) { f, c, shared throws(SharedPTError) in
            let nodes = ProcFS.numaNodes()
            guard nodes.count >= 2 else {
                c.unproven("\(nodes.count) NUMA node(s): balancing needs two (ptshare vm --numa 2)")
                return
            }
            let path = numaBalancingPath
            guard let old = try? ProcFS.integer(path) else {
                c.unproven("no \(path) (CONFIG_NUMA_BALANCING)")
                return
            }
            let plain = try f.scratch(size: 4 * mib)
            let log = KernelLog.open()
            let (s, a) = try sharersWithData(f, 3, &c, o, census: shared)
            var p: [UInt64] = []
            for i in s.indices {
                let m = try s[i].call(
                    PTSHARE_AGENT_MAP, length: 4 * mib, arg: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: plain)
                guard c.succeeds("sharer \(i) maps a plain 4 MiB memfd", m) else { throw .stepFailed("plain map") }
                p.append(m.value)
            }
            try fill(s[0], 0, p[0], 4 * mib, seed: 0x9000, &c)
            do { try Sys.writeFile(path, "1") } catch {
                c.expect(false, "\(path) = 1: \(error)")
                throw .stepFailed("numa_balancing")
            }
            defer { try? Sys.writeFile(path, "\(old)") }
            let before = try vmstat(&c)
            let start = Sys.monotonicNanoseconds()
            var rounds = 0
            var bad = 0
            while Sys.monotonicNanoseconds() - start < 8_000_000_000 && bad == 0 {
                for (addr, len, seed) in [(a, f.size, UInt64(0x1000)), (p, 4 * mib, UInt64(0x9000))] {
                    for i in s.indices { try s[i].send(PTSHARE_AGENT_CHECK, addr: addr[i], length: len, value: seed) }
                    for i in s.indices {
                        let r = try s[i].receive(PTSHARE_AGENT_CHECK)
                        if !r.succeeded {
                            bad += 1
                            c.intact("sharer \(i) reads \(ByteSize(len)) at \(hex(addr[i]))", r, seed: seed)
                        }
                    }
                }
                rounds += 1
            }
            let after = try vmstat(&c)
            c.expect(
                bad == 0, "\(rounds) rounds of every sharer reading both mappings with balancing on: \(bad) bad reads")
            expectGrowth(before, after, "numa_pte_updates", atLeast: 1, "/proc/vmstat", &c)
            c.note(
                "/proc/vmstat numa_hint_faults +\(Counters.delta(before, after, "numa_hint_faults") ?? 0), "
                    + "numa_pages_migrated +\(Counters.delta(before, after, "numa_pages_migrated") ?? 0)")
            for i in s.indices { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            censusIfShared(shared, s, [0, 1, 2], a, length: f.size, &c, o)
            f.killSharers()
            expectCleanLog(log, &c)
        }
    }
}
