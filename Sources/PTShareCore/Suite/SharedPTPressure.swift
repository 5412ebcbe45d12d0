import CPTShare
import Glibc

/// sharedpt.reclaim.*, sharedpt.memcg.*, sharedpt.oom.*, sharedpt.migrate.*: shared tables
/// under memory pressure, inside cgroups, and while the kernel moves their pages. These are the
/// paths that reach a shared table through the reverse map once per sharer (try_to_unmap() for
/// a swap-out, try_to_migrate() for compaction), charge a table to a memcg, and reap an OOM
/// victim. Each test first checks that the event it is about really happened (swap-outs, an OOM
/// kill, pages that moved), so that a quiet machine cannot pass it.
///
/// On a kernel without MAP_SHARED_PT (stock, `--expect-map-shared-pt unsupported`) each runs
/// the same scenario unshared (plain MAP_SHARED) and must pass too: that proves the test, not
/// the series. The checks that only sharing makes true (one table per chunk, one charge for
/// all) are stated per mode.
extension SharedPTSemantics {
    /// Shared with the flag when the kernel takes it. Where it does not: unshared (flag 0) when
    /// `--expect-map-shared-pt unsupported` says this is the stock test kernel (these tests set
    /// sysctls, inject a memory failure and compact memory: only in a test guest), SKIP with the
    /// usual reason under `auto` (any other machine), a failure when support was expected.
    static func runSharedOrPlain(
        _ name: String, _ o: SuiteOptions, size: UInt64, preallocate: Bool = true,
        _ body: (SharedPTFixture, inout Checks, Bool) throws(SharedPTError) -> Void
    ) -> KTAPResult {
        var c = Checks(name)
        let shared: Bool
        switch sharedOrPlain(name, o, &c, unshared: "the scenario runs unshared (plain MAP_SHARED)") {
        case .decided(let s): shared = s
        case .ended(let r): return r
        }
        do {
            let f = try SharedPTFixture(size: size, flag: shared ? o.mapSharedPTValue : 0, preallocate: preallocate)
            try body(f, &c, shared)
        } catch {
            c.stopped(by: error)
        }
        return c.result()
    }

    enum Mode {
        /// Run, shared (the flag) or not.
        case decided(Bool)
        /// Do not run: this is the test's result.
        case ended(KTAPResult)
    }

    /// The gate of `runSharedOrPlain`, for tests that make their own fixture: shared when the
    /// kernel takes the flag; unshared only under `--expect-map-shared-pt unsupported`, with a
    /// note saying `unshared` and why; otherwise the usual SKIP or FAIL.
    static func sharedOrPlain(_ name: String, _ o: SuiteOptions, _ c: inout Checks, unshared: String) -> Mode {
        let probe: KernelFacts.SharedPT
        do { probe = try o.sharedPTProbe(o.mapSharedPTValue) } catch {
            return .ended(
                KTAPResult(name: name, status: .fail, diagnostics: ["\(name): MAP_SHARED_PT probe failed: \(error)"]))
        }
        if probe.supported { return .decided(true) }
        if o.expectSharedPT != .unsupported {
            return .ended(
                Suite.sharedPTGate(
                    name, expectation: o.expectSharedPT, supported: false, release: Suite.release(),
                    errno: probe.errno, detail: probe.detail)!)
        }
        c.note(
            Suite.sharedPTUnsupportedReason(release: Suite.release(), errno: probe.errno ?? "refused")
                + ": \(unshared), which proves the test itself")
        return .decided(false)
    }

    /// The NUMA nodes, or nil with the test marked unproven when there are fewer than two.
    static func twoNodes(_ what: String, _ c: inout Checks) -> [Int]? {
        let nodes = ProcFS.numaNodes()
        guard nodes.count >= 2 else {
            c.unproven("\(nodes.count) NUMA node(s): \(what) needs two (ptshare vm --numa 2)")
            return nil
        }
        return nodes
    }

    /// A test cgroup, or nil with the test marked unproven (no cgroup v2 memory controller).
    static func cgroup(_ name: String, _ c: inout Checks) throws(SharedPTError) -> TestCgroup? {
        if let why = TestCgroup.unavailableReason() {
            c.unproven(why)
            return nil
        }
        do { return try TestCgroup(name) } catch { throw .system(error) }
    }

    static func set(_ g: TestCgroup, _ file: String, _ value: String, _ c: inout Checks) throws(SharedPTError) {
        do { try g.set(file, value) } catch {
            c.expect(false, "\(g.path)/\(file) = \(value): \(error)")
            throw .stepFailed(file)
        }
    }

    static func join(_ g: TestCgroup, _ s: Sharer, _ i: Int, _ c: inout Checks) throws(SharedPTError) {
        do { try g.add(s.pid) } catch {
            c.expect(false, "sharer \(i) (pid \(s.pid)) into \(g.path): \(error)")
            throw .stepFailed("cgroup.procs")
        }
    }

    static func counters(_ what: String, _ read: () throws(RunError) -> [String: UInt64], _ c: inout Checks)
        throws(SharedPTError) -> [String: UInt64]
    {
        do { return try read() } catch {
            c.expect(false, "\(what): \(error)")
            throw .stepFailed(what)
        }
    }

    static func vmstat(_ c: inout Checks) throws(SharedPTError) -> [String: UInt64] {
        _ = ProcFS.refreshVMStats()
        return try counters("/proc/vmstat", { () throws(RunError) in try ProcFS.counters("/proc/vmstat") }, &c)
    }

    /// How much counter `key` grew between two readings; a failure when either lacks it (a
    /// kernel without CONFIG_VM_EVENT_COUNTERS has none of the event counters), never 0.
    static func growth(
        _ before: [String: UInt64], _ after: [String: UInt64], _ key: String, _ source: String, _ c: inout Checks
    ) throws(SharedPTError) -> UInt64 {
        guard let d = Counters.delta(before, after, key) else {
            c.expect(false, "\(source) has no \(key)")
            throw .stepFailed("\(source) \(key)")
        }
        return d
    }

    /// `key` grew by at least `minimum` between two readings.
    static func expectGrowth(
        _ before: [String: UInt64], _ after: [String: UInt64], _ key: String, atLeast minimum: UInt64,
        _ source: String, _ c: inout Checks
    ) {
        guard let d = Counters.delta(before, after, key) else {
            c.expect(false, "\(source) has no \(key)")
            return
        }
        c.expect(
            d >= minimum,
            "\(source) \(key) +\(d)" + (d >= minimum ? " (minimum \(minimum))" : ", expected at least \(minimum)"))
    }

    /// The census of sharing, for the shared mode only: unshared, every sharer has tables of its
    /// own by construction.
    static func censusIfShared(
        _ shared: Bool, _ s: [Sharer], _ idx: [Int], _ a: [UInt64], length: UInt64, _ c: inout Checks, _ o: SuiteOptions
    ) {
        guard shared else { return }
        census(idx.map { view(s[$0], $0, a[$0], length: length) }, &c, o)
    }

    static func expectCleanLog(_ log: KernelLog, _ c: inout Checks) {
        let problems = log.problems()
        c.expect(
            problems.isEmpty,
            "kernel log since the first mmap: " + (problems.isEmpty ? "clean" : problems.joined(separator: " | ")))
    }

    /// Each sharer maps, writes, reads and drops 1 MiB of a plain memfd, so that the harness's
    /// own text (shmem in the guest's initramfs) is faulted in before RssShmem is taken as a
    /// base; returns each sharer's RssShmem then.
    static func warmUp(_ s: [Sharer], plain: Int32, _ c: inout Checks) throws(SharedPTError) -> [UInt64] {
        var base: [UInt64] = []
        for i in s.indices {
            let m = try s[i].call(
                PTSHARE_AGENT_MAP, length: mib, arg: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: plain)
            guard c.succeeds("sharer \(i) maps a plain 1 MiB memfd to warm up", m) else {
                throw .stepFailed("warm-up mapping")
            }
            try fill(s[i], i, m.value, mib, seed: 0x3000, &c)
            try check(s[i], i, m.value, mib, seed: 0x3000, &c)
            _ = try s[i].call(PTSHARE_AGENT_MADVISE, addr: m.value, length: mib, arg: ptshare_MADV_DONTNEED)
            _ = try s[i].call(PTSHARE_AGENT_UNMAP, addr: m.value, length: mib)
            base.append(rssShmem(s[i], i, base: 0, &c) ?? 0)
        }
        return base
    }

    // MARK: - Reclaim

    static let reclaimLimit: UInt64 = 16 << 20

    /// Three sharers in a cgroup with memory.max 16 MiB map a 32 MiB memfd whose pages they
    /// allocate themselves (so the cgroup pays), with swap on zram. Sharer 0 writes it all and
    /// the others read it; then sharer 1 rewrites it and the others read again: 32 MiB through a
    /// 16 MiB limit, so reclaim swaps shmem pages out from under the shared tables
    /// (try_to_unmap() clears the PTE in the table every sharer maps) and every read faults them
    /// back. Every sharer checks every page both rounds. /proc/vmstat must show at least
    /// (size - limit) / 4 KiB swap-outs and swap-ins, so that the test cannot pass without
    /// reclaim. RssShmem of each sharer stays within memory.max (a page reclaim unmapped is
    /// uncounted for every sharer of its table) and, shared, is the same for all of them (they
    /// map through the same tables); one table per chunk at the end; the kernel log clean.
    /// Premise: swap of at least the file's size, and cgroup v2 with memory, else SKIP.
    static func reclaimSwap(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.reclaim.swap", o, size: 32 << 20, preallocate: false) {
            f, c, shared throws(SharedPTError) in
            let swap = (try? ProcFS.meminfo())?.fields["SwapTotal"] ?? 0
            guard swap >= f.size else {
                c.unproven("SwapTotal \(ByteSize(swap)): reclaim of shmem needs swap (the guest's zram)")
                return
            }
            guard let g = try cgroup("ptshare-reclaim", &c) else { return }
            let limit = reclaimLimit
            try set(g, "memory.max", "\(limit)", &c)
            let plain = try f.scratch(size: mib)
            let s = try f.spawn(3)
            let base = try warmUp(s, plain: plain, &c)
            for i in s.indices { try join(g, s[i], i, &c) }
            c.note("\(s.count) sharers in \(g.path), memory.max \(ByteSize(limit)), a \(ByteSize(f.size)) memfd")
            let log = KernelLog.open()
            let before = try vmstat(&c)
            var a: [UInt64] = []
            for i in s.indices { a.append(try map(f, s[i], i, &c)) }
            try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
            for i in [1, 2] { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            try fill(s[1], 1, a[1], f.size, seed: 0x5000, &c)
            for i in [0, 2] { try check(s[i], i, a[i], f.size, seed: 0x5000, &c) }
            let after = try vmstat(&c)
            let minimum = (f.size - limit) / page
            expectGrowth(before, after, "pswpout", atLeast: minimum, "/proc/vmstat", &c)
            expectGrowth(before, after, "pswpin", atLeast: minimum, "/proc/vmstat", &c)
            var rss: [UInt64] = []
            for i in s.indices { if let v = rssShmem(s[i], i, base: base[i], &c) { rss.append(v) } }
            let within = rss.allSatisfy { $0 <= limit }
            let same = !shared || Set(rss).count == 1
            c.expect(
                within && same,
                "RssShmem of the mapping, sharer "
                    + rss.enumerated().map { "\($0): \(ByteSize($1))" }.joined(separator: ", ")
                    + (within ? "" : " (expected at most memory.max)")
                    + (same ? "" : " (expected the same for every sharer of the tables)"))
            censusIfShared(shared, s, [0, 1, 2], a, length: f.size, &c, o)
            for i in s.indices { try check(s[i], i, a[i], f.size, seed: 0x5000, &c) }
            f.killSharers()
            expectCleanLog(log, &c)
            g.remove()
        }
    }

    // MARK: - memcg

    /// Two sharers, each in a cgroup of its own (A, B), of a 16 MiB memfd the driver allocated.
    /// Sharer A maps and writes it (faulting every chunk: its tables), then B maps and reads it.
    /// memory.stat `pagetables` (flushed through cpu.stat): shared, A paid one PTE table per
    /// chunk and B none (it attached to A's: at most the two upper-level tables a new mapping
    /// may need, and slack); unshared, each paid its own. When A exits, the tables B still uses stay
    /// charged to A (exactly one page per chunk is left there); when B exits too, both cgroups
    /// are back to zero. Premise: cgroup v2 with memory, else SKIP.
    static func memcgCharge(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.memcg.charge", o, size: 16 << 20) { f, c, shared throws(SharedPTError) in
            guard let ga = try cgroup("ptshare-charge-a", &c) else { return }
            guard let gb = try cgroup("ptshare-charge-b", &c) else { return }
            let plain = try f.scratch(size: mib)
            let s = try f.spawn(2)
            // Before the move: what a new process faults in on its first commands (its text's
            // PTE tables, not copied at fork) stays charged to the driver's cgroup.
            _ = try warmUp(s, plain: plain, &c)
            try join(ga, s[0], 0, &c)
            try join(gb, s[1], 1, &c)
            let chunks = f.size / chunk
            let tables = chunks * page
            // A PMD table and a PUD table for a new mapping's range, and a PTE table or two for
            // a plain (unaligned) 16 MiB mapping's extra span.
            let upper = 4 * page
            func pagetables(_ g: TestCgroup, _ c: inout Checks) throws(SharedPTError) -> UInt64 {
                let st = try counters(
                    "\(g.path)/memory.stat", { () throws(RunError) in try g.flushedStat() }, &c)
                guard let v = st["pagetables"] else {
                    c.expect(false, "\(g.path)/memory.stat has no pagetables")
                    throw .stepFailed("memory.stat")
                }
                return v
            }
            let a0 = try pagetables(ga, &c)
            let b0 = try pagetables(gb, &c)
            c.note("pagetables before mapping: A \(ByteSize(a0)), B \(ByteSize(b0)); \(chunks) chunks")
            let addrA = try map(f, s[0], 0, &c)
            try fill(s[0], 0, addrA, f.size, seed: 0x1000, &c)
            let addrB = try map(f, s[1], 1, &c)
            try check(s[1], 1, addrB, f.size, seed: 0x1000, &c)
            censusIfShared(shared, s, [0, 1], [addrA, addrB], length: f.size, &c, o)
            let a1 = try pagetables(ga, &c) &- a0
            let b1 = try pagetables(gb, &c) &- b0
            let aOK = a1 >= tables && a1 <= tables + upper
            let bOK = shared ? b1 <= upper : (b1 >= tables && b1 <= tables + upper)
            c.expect(
                aOK && bOK,
                "pagetables charged while both map it: A +\(ByteSize(a1)), B +\(ByteSize(b1)) (expected A "
                    + "\(ByteSize(tables)) to \(ByteSize(tables + upper)), B "
                    + (shared ? "at most \(ByteSize(upper)): it attached to A's tables)" : "as much: its own tables)"))
            try s[0].exit()
            let a2 = try pagetables(ga, &c) &- a0
            let want2 = shared ? tables : 0
            c.expect(
                a2 == want2,
                "A after sharer A's exit: +\(ByteSize(a2))"
                    + (shared
                        ? (a2 == want2
                            ? " (the tables B still uses)" : ", expected \(ByteSize(want2)): the tables B uses")
                        : (a2 == want2 ? "" : ", expected 0")))
            try check(s[1], 1, addrB, f.size, seed: 0x1000, &c)
            try s[1].exit()
            let a3 = try pagetables(ga, &c) &- a0
            let b3 = try pagetables(gb, &c) &- b0
            c.expect(
                a3 == 0 && b3 == 0,
                "after both exits: A +\(ByteSize(a3)), B +\(ByteSize(b3))" + (a3 == 0 && b3 == 0 ? "" : ", expected 0"))
            f.killSharers()
            ga.remove()
            gb.remove()
        }
    }

    // MARK: - OOM

    /// Three sharers of an 8 MiB memfd: sharer 0 maps it read-write and writes it, sharers 1
    /// and 2 map it read-only through a read-only fd and read it (sharing their own tables: a
    /// read-only mapping never shares a read-write one's). Sharer 2 moves into a cgroup with
    /// memory.max 32 MiB and no swap, then writes 64 MiB of private anonymous memory: the OOM
    /// killer must kill it (memory.events oom_kill, SIGKILL) while it is attached. Its mapping
    /// has no VM_SHARED (a read-only fd), so if the OOM reaper gets to its mm before its exit
    /// does (the reaper waits 2 s; usually exit wins), only the series' skip keeps the reaper
    /// from zapping the table sharer 1 still uses. The survivors keep their data, sharer 0's
    /// new word reaches sharer 1, and the kernel log has no BUG or WARNING (the OOM report
    /// itself is expected); the driver's teardown check then finds no table left over.
    /// Premise: cgroup v2 with memory, else SKIP.
    static func oomSharer(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.oom.sharer", o, size: 8 << 20) { f, c, shared throws(SharedPTError) in
            guard let g = try cgroup("ptshare-oom", &c) else { return }
            let limit: UInt64 = 32 << 20
            try set(g, "memory.max", "\(limit)", &c)
            try set(g, "memory.swap.max", "0", &c)
            let log = KernelLog.open()
            let ro = try f.openReadOnly()
            let s = try f.spawn(3)
            var a = [try map(f, s[0], 0, &c)]
            for i in [1, 2] { a.append(try map(f, s[i], i, &c, prot: PROT_READ, fd: ro)) }
            try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
            for i in [1, 2] { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            censusIfShared(shared, s, [1, 2], a, length: f.size, &c, o)
            try join(g, s[2], 2, &c)
            let hog: UInt64 = 2 * limit
            let m = try s[2].call(
                PTSHARE_AGENT_MAP, length: hog, arg: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS)
            guard c.succeeds("sharer 2 maps \(ByteSize(hog)) of private anonymous memory", m) else {
                throw .stepFailed("anonymous mapping")
            }
            do throws(SharedPTError) {
                let r = try s[2].call(PTSHARE_AGENT_FILL, addr: m.value, length: hog, value: 0x7000)
                c.expect(
                    false, "sharer 2 wrote \(ByteSize(hog)) past memory.max \(ByteSize(limit)): \(Checks.describe(r))")
            } catch {
                guard case .sharerDied(_, _, let status) = error else { throw error }
                let killed = status.contains("SIGKILL")
                c.expect(killed, "sharer 2 writing \(ByteSize(hog)) in \(ByteSize(limit)): \(status)")
            }
            let ev = try counters("\(g.path)/memory.events", { () throws(RunError) in try g.events() }, &c)
            let kills = ev["oom_kill"] ?? 0
            c.expect(
                kills >= 1, "\(g.path)/memory.events oom_kill \(kills)" + (kills >= 1 ? "" : ", expected at least 1"))
            for i in [0, 1] { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            try write(s[0], 0, a[0] + 5 * page + 8, 0x00A1, &c)
            try read(s[1], 1, a[1] + 5 * page + 8, 0x00A1, &c)
            f.killSharers()
            expectCleanLog(log, &c)
            g.remove()
        }
    }

    // MARK: - Compaction

    /// Sharer 0 writes an 8 MiB memfd page by page, alternating with the pages of a plain memfd
    /// of the same size, whose pages are then punched out: the file's pages lie scattered with
    /// free pages between them. Two more sharers map the file and read it (attaching). Then
    /// /proc/sys/vm/compact_memory is written five times, from a child process, while the two
    /// read and rewrite the whole file round after round until it returns; compaction migrates
    /// what it finds (try_to_migrate() through the shared tables, then
    /// the migration entries restored). Proof that it happened to this file: pages whose frame
    /// number changed (pagemap, root), and /proc/vmstat pgmigrate_success at least as high.
    /// Every sharer then checks every page; one table per chunk at the end; log clean. None of
    /// the file's pages moved in three attempts (the file punched and rewritten between them):
    /// SKIP (compaction found nothing to do here).
    static func compaction(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.migrate.compaction", o, size: 8 << 20, preallocate: false) {
            f, c, shared throws(SharedPTError) in
            let trigger = "/proc/sys/vm/compact_memory"
            guard ProcFS.exists(trigger) else {
                c.unproven("no \(trigger) (CONFIG_COMPACTION)")
                return
            }
            let holes = try f.scratch()
            let s = try f.spawn(3)
            let log = KernelLog.open()
            let a0 = try map(f, s[0], 0, &c)
            let n = f.size / page
            var a = [a0]
            let before = try vmstat(&c)
            var moved = 0
            var rounds = 0
            // Compaction's migration scanner walks up from a zone's start and stops where it
            // meets the free scanner coming down: a file whose pages all landed high in their
            // zone is never reached, whatever the number of runs. So when an attempt moves none
            // of the file's pages, the file is punched and written again (its pages land
            // elsewhere), at most three times; the premise check at the end stays.
            let attempts = 3
            for attempt in 1...attempts {
                if attempt > 1 {
                    try f.punchHole(offset: 0, length: f.size)
                    c.note("attempt \(attempt - 1) moved none of the file's pages: punched the file, writing it again")
                }
                try interleave(f, s[0], a0, holes, &c)
                if attempt == 1 {
                    for i in [1, 2] {
                        a.append(try map(f, s[i], i, &c))
                        try check(s[i], i, a[i], f.size, seed: 0x1000, &c)
                    }
                }
                let framesBefore = frames(s[0], a0, n, &c)
                rounds += try compact(trigger, s, a, f.size, &c)
                let framesAfter = frames(s[0], a0, n, &c)
                moved = zip(framesBefore, framesAfter).filter { $0 != $1 }.count
                c.note(
                    "attempt \(attempt): 5 compactions moved \(moved) of \(n) of the file's pages (pagemap frame numbers)"
                )
                if moved > 0 { break }
            }
            let after = try vmstat(&c)
            let migrated = try growth(before, after, "pgmigrate_success", "/proc/vmstat", &c)
            let scanned = try growth(before, after, "compact_migrate_scanned", "/proc/vmstat", &c)
            c.note(
                "\(rounds) rounds of reads and rewrites by sharers 1 and 2 during the compactions; /proc/vmstat "
                    + "pgmigrate_success +\(migrated), compact_migrate_scanned +\(scanned)")
            c.expect(UInt64(moved) <= migrated, "pgmigrate_success +\(migrated) covers the \(moved) pages that moved")
            for i in s.indices { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            censusIfShared(shared, s, [0, 1, 2], a, length: f.size, &c, o)
            f.killSharers()
            expectCleanLog(log, &c)
            if moved == 0 {
                c.unproven(
                    "compaction moved none of the file's pages in \(attempts) attempts: nothing was proven about migration"
                )
            }
        }
    }

    /// Sharer 0 writes the file's pages interleaved with those of the plain memfd `holes`, which
    /// are then punched out: the file's pages sit in fragmented pageblocks, where compaction
    /// looks for pages to move.
    static func interleave(
        _ f: SharedPTFixture, _ s0: Sharer, _ a0: UInt64, _ holes: Int32, _ c: inout Checks
    ) throws(SharedPTError) {
        let h = try s0.call(
            PTSHARE_AGENT_MAP, length: f.size, arg: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: holes)
        guard c.succeeds("sharer 0 maps a plain memfd of the same size", h) else { throw .stepFailed("plain map") }
        let n = f.size / page
        for p in 0..<n {
            for (addr, v) in [(a0 + p * page, 0x1000 + p), (h.value + p * page, 0xDEAD)] {
                let r = try s0.call(PTSHARE_AGENT_WRITE, addr: addr, value: v)
                guard r.succeeded else {
                    c.expect(false, "sharer 0 writes the word at \(hex(addr)): \(Checks.describe(r))")
                    throw .stepFailed("interleaved writes")
                }
            }
        }
        c.succeeds("sharer 0 unmaps the plain memfd", try s0.call(PTSHARE_AGENT_UNMAP, addr: h.value, length: f.size))
        do throws(SystemCallError) {
            try Sys.punchHole(holes, offset: 0, length: f.size, path: "memfd:ptshare-sharedpt-plain")
        } catch {
            throw .system(error)
        }
        c.note(
            "sharer 0 wrote the file's \(n) pages interleaved with \(n) pages of a plain memfd, then punched those out")
    }

    /// Five runs of `trigger` (vm.compact_memory), each in a child (the write blocks until
    /// compaction is done) while sharers 1 and 2 read and rewrite the file, round after round,
    /// so that they fault on migration entries in the shared tables. Returns the rounds.
    static func compact(
        _ trigger: String, _ s: [Sharer], _ a: [UInt64], _ size: UInt64, _ c: inout Checks
    ) throws(SharedPTError) -> Int {
        var rounds = 0
        for compaction in 0..<5 {
            let child: pid_t
            do { child = try Sys.writeInChild(trigger, "1") } catch {
                c.expect(false, "compaction \(compaction): \(error)")
                throw .stepFailed("compact_memory")
            }
            var status: Int32?
            repeat {
                try s[1].send(PTSHARE_AGENT_CHECK, addr: a[1], length: size, value: 0x1000)
                try s[2].send(PTSHARE_AGENT_FILL, addr: a[2], length: size, value: 0x1000)
                let r1 = try s[1].receive(PTSHARE_AGENT_CHECK)
                let r2 = try s[2].receive(PTSHARE_AGENT_FILL)
                if !r1.succeeded || !r2.succeeded {
                    c.intact("compaction \(compaction): sharer 1 reads the file", r1, seed: 0x1000)
                    c.succeeds("compaction \(compaction): sharer 2 rewrites it", r2)
                    _ = try? Sys.waitpid(child, noHang: false)
                    throw .stepFailed("reads during compaction")
                }
                rounds += 1
                do throws(SystemCallError) { status = try Sys.waitpid(child, noHang: true)?.status } catch {
                    throw .system(error)
                }
            } while status == nil
            if let st = status, ptshare_wifexited(st) == 0 || ptshare_wexitstatus(st) != 0 {
                c.expect(false, "compaction \(compaction): writing \(trigger) \(WorkerPool.describe(status: st))")
                throw .stepFailed("compact_memory")
            }
        }
        return rounds
    }

    /// The frame number of each of `n` pages from `a` in `s` (nil where not present).
    static func frames(_ s: Sharer, _ a: UInt64, _ n: UInt64, _ c: inout Checks) -> [UInt64?] {
        do { return try ProcFS.pagemap(s.pid, address: a, count: Int(n)).map(\.pfn) } catch {
            c.expect(false, "pagemap of pid \(s.pid): \(error)")
            return []
        }
    }
}
