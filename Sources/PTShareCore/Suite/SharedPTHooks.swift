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
                c.unproven("/proc/meminfo has no HardwareCorrupted: no memory failure handling (CONFIG_MEMORY_FAILURE)")
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

    /// NUMA balancing on (kernel.numa_balancing 1, restored after) while three sharers read an
    /// 8 MiB memfd they share and a plain 4 MiB memfd of their own, in alternating 2 s windows:
    /// one window only the shared mapping, the next only the plain one. A scan marks PTEs
    /// (task_numa_work()), the next access to a marked page takes a hinting fault
    /// (/proc/vmstat numa_hint_faults), so the faults of a window count the scanned pages of
    /// the mapping read in it. The series makes task_numa_work() skip VM_SHARED_PT vmas (a
    /// hinting fault through a shared table would be every sharer's), so, shared, the shared
    /// windows take at most an eighth of the plain windows' faults (what remains is the
    /// sharers' stacks); unshared, the same mapping is a plain one and takes at least half as
    /// many. Premise: the plain windows took at least one fault per plain page (the scan
    /// reached the sharers), within 60 s, else SKIP. The driver sets itself MPOL_LOCAL (no
    /// MPOL_F_MOF: balancing skips its vmas, so its own faults stay out of the counter) after
    /// forking the sharers and goes back to the default policy at the end. Data intact, one
    /// table per chunk, log clean. One NUMA node, or no sysctl (CONFIG_NUMA_BALANCING): SKIP.
    static func numaBalancing(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.numa.balancing", o, size: 8 << 20) { f, c, shared throws(SharedPTError) in
            guard twoNodes("balancing", &c) != nil else { return }
            let path = numaBalancingPath
            guard let old = try? ProcFS.integer(path) else {
                c.unproven("no \(path) (CONFIG_NUMA_BALANCING)")
                return
            }
            let plainSize = 4 * mib
            let plain = try f.scratch(size: plainSize)
            let log = KernelLog.open()
            let (s, a) = try sharersWithData(f, 3, &c, o, census: shared)
            var p: [UInt64] = []
            for i in s.indices {
                let m = try s[i].call(
                    PTSHARE_AGENT_MAP, length: plainSize, arg: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: plain)
                guard c.succeeds("sharer \(i) maps a plain 4 MiB memfd", m) else { throw .stepFailed("plain map") }
                p.append(m.value)
            }
            try fill(s[0], 0, p[0], plainSize, seed: 0x9000, &c)
            do {
                try Numa.setLocalAlloc()
                try Sys.writeFile(path, "1")
            } catch {
                c.expect(false, "NUMA balancing on, the driver's policy MPOL_LOCAL: \(error)")
                throw .stepFailed("numa_balancing")
            }
            defer {
                try? Sys.writeFile(path, "\(old)")
                try? Numa.setDefaultPolicy()
            }
            let plainPages = UInt64(s.count) * plainSize / page
            var faults: (shared: UInt64, plain: UInt64) = (0, 0)
            var windows = 0
            let start = Sys.monotonicNanoseconds()
            while Sys.monotonicNanoseconds() - start < 60_000_000_000 && faults.plain < 2 * plainPages {
                let onShared = windows % 2 == 0
                let (addr, len, seed) = onShared ? (a, f.size, UInt64(0x1000)) : (p, plainSize, UInt64(0x9000))
                let before = try vmstat(&c)
                let until = Sys.monotonicNanoseconds() + 2_000_000_000
                repeat {
                    for i in s.indices { try s[i].send(PTSHARE_AGENT_CHECK, addr: addr[i], length: len, value: seed) }
                    for i in s.indices {
                        let r = try s[i].receive(PTSHARE_AGENT_CHECK)
                        if !r.succeeded {
                            c.intact("sharer \(i) reads \(ByteSize(len)) at \(hex(addr[i]))", r, seed: seed)
                            throw .stepFailed("reads under balancing")
                        }
                    }
                } while Sys.monotonicNanoseconds() < until
                let d = try growth(before, try vmstat(&c), "numa_hint_faults", "/proc/vmstat", &c)
                if onShared { faults.shared += d } else { faults.plain += d }
                windows += 1
            }
            c.note(
                "\(windows) windows of 2 s: numa_hint_faults +\(faults.shared) while reading the "
                    + (shared ? "shared" : "(unshared) flagless")
                    + " mapping, +\(faults.plain) while reading the plain ones")
            guard faults.plain >= plainPages else {
                c.unproven(
                    "the plain mappings took \(faults.plain) hinting faults in 60 s, fewer than their \(plainPages) pages: "
                        + "balancing did not scan the sharers, nothing was shown")
                return
            }
            if shared {
                c.expect(
                    faults.shared * 8 <= faults.plain,
                    "the shared mapping's windows took \(faults.shared) hinting faults, at most an eighth of the plain "
                        + "windows' \(faults.plain) (task_numa_work() skips VM_SHARED_PT vmas)")
            } else {
                c.expect(
                    faults.shared * 2 >= faults.plain,
                    "the flagless mapping's windows took \(faults.shared) hinting faults, at least half the plain windows' "
                        + "\(faults.plain): the test tells a scanned mapping from a skipped one")
            }
            for i in s.indices { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            censusIfShared(shared, s, [0, 1, 2], a, length: f.size, &c, o)
            f.killSharers()
            expectCleanLog(log, &c)
        }
    }
}
