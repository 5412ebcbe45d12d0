import CPTShare
import Glibc

/// sharedpt.accounting.*: the counters users read about a process stay true when its pages are
/// mapped through a table it shares (kmod/patches/README.md, "Accounting"):
/// - VmRSS/RssShmem (status) count every page present in the tables a process maps, as if the
///   tables were its own, whoever faulted or dropped the page: each sharer's counters move
///   together on a fault, a hole punch, MADV_DONTNEED; a process that leaves takes its count
///   with it, and no counter is left over at exit (`BUG: Bad rss-counter state`).
/// - smaps: a page behind a shared table counts as mapped once per sharer: `Shared_*`, not
///   `Private_*`, and `Pss` is the size divided among them.
/// - pagemap: `PM_MMAP_EXCLUSIVE` (bit 56) only for a page no other process maps, through the
///   table or otherwise.
extension SharedPTSemantics {
    /// RssShmem of `s` above `base`, the value before it mapped anything.
    static func rssShmem(_ s: Sharer, _ i: Int, base: UInt64, _ c: inout Checks) -> UInt64? {
        do {
            guard let v = try ProcFS.status(s.pid).rssShmem else {
                c.expect(false, "sharer \(i): no RssShmem in /proc/\(s.pid)/status")
                return nil
            }
            return v &- base
        } catch {
            c.expect(false, "status of sharer \(i) (pid \(s.pid)): \(error)")
            return nil
        }
    }

    /// Each sharer's RssShmem, above its base, is `want` after `step`.
    static func expectRss(
        _ s: [Sharer], _ idx: [Int], base: [UInt64], _ want: [UInt64], after step: String, _ c: inout Checks
    ) {
        var got: [String] = []
        var ok = true
        for (k, i) in idx.enumerated() {
            guard let v = rssShmem(s[k], i, base: base[k], &c) else { return }
            ok = ok && v == want[k]
            got.append("\(i): \(ByteSize(v))" + (v == want[k] ? "" : " (expected \(ByteSize(want[k])))"))
        }
        c.expect(ok, "RssShmem after \(step), sharer " + got.joined(separator: ", "))
    }

    /// smaps of the mapping at `a` in `s`: `Pss` within a page of `size / sharers` (the kernel
    /// rounds down per page), everything `Shared_*` when `sharers` > 1, `Private_*` when alone.
    static func expectSmaps(_ s: Sharer, _ i: Int, _ a: UInt64, size: UInt64, sharers: UInt64, _ c: inout Checks) {
        guard let e = smapsEntry(s, i, a, &c) else { return }
        let f = { (k: String) in e.fields[k] ?? 0 }
        let shared = f("Shared_Clean") + f("Shared_Dirty")
        let priv = f("Private_Clean") + f("Private_Dirty")
        let pss = f("Pss")
        let want = size / sharers
        let pssOK = pss <= want + page && pss + page >= want
        let splitOK = sharers > 1 ? (shared == size && priv == 0) : (priv == size && shared == 0)
        c.expect(
            pssOK && splitOK && f("Rss") == size,
            "sharer \(i)'s smaps with \(sharers) sharer(s): Rss \(ByteSize(f("Rss"))), Pss \(ByteSize(pss))"
                + (pssOK ? "" : " (expected \(ByteSize(want)))") + ", Shared \(ByteSize(shared)), Private "
                + "\(ByteSize(priv))"
                + (splitOK ? "" : sharers > 1 ? " (expected all Shared)" : " (expected all Private)"))
    }

    /// Every page of `s`'s mapping at `a` is present in pagemap, exclusive only when `exclusive`.
    static func expectPagemap(_ s: Sharer, _ i: Int, _ a: UInt64, size: UInt64, exclusive: Bool, _ c: inout Checks) {
        let n = Int(size / page)
        let e: [PagemapEntry]
        do { e = try ProcFS.pagemap(s.pid, address: a, count: n) } catch {
            c.expect(false, "pagemap of sharer \(i) (pid \(s.pid)): \(error)")
            return
        }
        let absent = e.filter { !$0.present }.count
        let wrong = e.filter { $0.present && $0.exclusive != exclusive }.count
        c.expect(
            absent == 0 && wrong == 0,
            "sharer \(i)'s pagemap: \(n - absent) of \(n) pages present, \(e.filter(\.exclusive).count) "
                + "PM_MMAP_EXCLUSIVE" + (wrong == 0 ? "" : exclusive ? " (expected all)" : " (expected none)"))
    }

    /// Three sharers of 8 MiB, filled by sharer 0 and read by the others (who join its tables).
    /// Each RssShmem is the whole 8 MiB, then follows every change made through any of them: a
    /// hole punch (truncate's zap), refilling it by writes (the fault path), MADV_DONTNEED in
    /// sharer 0 (the zap of one sharer's range, which every sharer sees), reading it back
    /// (fault-around). Pss is divided among the sharers present, pagemap exclusive only for the
    /// last one; a sharer that unmaps or exits leaves the others' counts alone, and the kernel
    /// log stays free of `Bad rss-counter state`.
    static func accountingRSS(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.accounting.rss", o, size: 8 << 20) { f, c throws(SharedPTError) in
            let log = KernelLog.open()
            let plain = try f.scratch(size: mib)  // before the fork: the sharers inherit it
            let s = try f.spawn(3)
            // The guest runs the harness from its initramfs, a tmpfs: the sharer's own text is
            // shmem and counts in RssShmem as it faults in. Each sharer first drives every call
            // the test makes on a plain memfd, so that the base it is measured against holds.
            let base = try warmUp(s, plain: plain, &c)
            c.note(
                "RssShmem before mapping, sharer "
                    + base.enumerated().map { "\($0): \(ByteSize($1))" }.joined(separator: ", "))
            var a: [UInt64] = []
            for i in s.indices { a.append(try map(f, s[i], i, &c)) }
            try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
            for i in 1..<3 { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            census(s, a, length: f.size, &c, o)
            let all = [0, 1, 2]
            let size = f.size
            expectRss(s, all, base: base, [size, size, size], after: "sharer 0 filled, 1 and 2 read", &c)
            for i in s.indices { expectSmaps(s[i], i, a[i], size: size, sharers: 3, &c) }
            expectPagemap(s[1], 1, a[1], size: size, exclusive: false, &c)

            let hole: UInt64 = mib
            try f.punchHole(offset: mib, length: hole)
            let less = size - hole
            expectRss(s, all, base: base, [less, less, less], after: "a 1 MiB hole punch", &c)
            try fill(s[2], 2, a[2] + mib, hole, seed: 0x2000, &c)
            expectRss(s, all, base: base, [size, size, size], after: "sharer 2 refills the hole by writes", &c)
            c.succeeds(
                "sharer 0 madvise(MADV_DONTNEED) on 1 MiB at 4M",
                try s[0].call(PTSHARE_AGENT_MADVISE, addr: a[0] + 4 * mib, length: mib, arg: ptshare_MADV_DONTNEED))
            expectRss(s, all, base: base, [less, less, less], after: "sharer 0's MADV_DONTNEED", &c)
            try check(s[1], 1, a[1] + 4 * mib, mib, seed: 0x1000 + 4 * mib / page, &c)
            expectRss(s, all, base: base, [size, size, size], after: "sharer 1 reads it back", &c)

            c.succeeds("sharer 0 munmap", try s[0].call(PTSHARE_AGENT_UNMAP, addr: a[0], length: size))
            expectRss(s, all, base: base, [0, size, size], after: "sharer 0's munmap", &c)
            for i in 1..<3 { expectSmaps(s[i], i, a[i], size: size, sharers: 2, &c) }
            try s[1].exit()
            expectRss([s[2]], [2], base: [base[2]], [size], after: "sharer 1's exit", &c)
            expectSmaps(s[2], 2, a[2], size: size, sharers: 1, &c)
            expectPagemap(s[2], 2, a[2], size: size, exclusive: true, &c)
            try check(s[2], 2, a[2] + mib, hole, seed: 0x2000, &c)
            try s[2].exit()
            try s[0].exit()
            let problems = log.problems()
            c.expect(
                problems.isEmpty,
                "kernel log since the first mmap: " + (problems.isEmpty ? "clean" : problems.joined(separator: " | ")))
        }
    }

    /// move_pages(2) from sharer 1 of all its pages to node `to` with `flags`: the pages that
    /// end on `to` and those refused with EACCES.
    static func movePages(
        _ s: Sharer, _ i: Int, _ a: UInt64, _ len: UInt64, to node: Int, flags: Int32, _ what: String,
        _ c: inout Checks
    ) throws(SharedPTError) -> (moved: UInt64, refused: UInt64)? {
        let r = try s.call(
            PTSHARE_AGENT_MOVE_PAGES, addr: a, length: len, value: UInt64(node), arg: Int32(node), flags: flags)
        guard c.succeeds("sharer \(i) move_pages \(what) to node \(node)", r) else { return nil }
        return (r.value, r.found)
    }

    /// Moving a page other processes map through a shared table needs MPOL_MF_MOVE_ALL, as for
    /// a page mapped more than once: sharer 1's move_pages(MPOL_MF_MOVE) of the shared 4 MiB to
    /// the other node gets EACCES for every page and moves none (without the check, the page's
    /// mapcount of one let any sharer move everyone's pages); MPOL_MF_MOVE_ALL (root here) moves
    /// them all through the shared tables (try_to_migrate, then the migration entries restored)
    /// and every sharer reads its data; once the others have unmapped, MPOL_MF_MOVE moves them
    /// back. Premise: two NUMA nodes (ptshare vm --numa 2), else SKIP.
    static func accountingMoveAll(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.accounting.move_all", o) { f, c throws(SharedPTError) in
            guard let nodes = twoNodes("a move", &c) else { return }
            let (s, a) = try sharersWithData(f, 3, &c, o)
            let n = f.size / page
            let q = try s[1].call(
                PTSHARE_AGENT_MOVE_PAGES, addr: a[1], length: f.size, value: UInt64(nodes[0]), arg: -1)
            guard c.succeeds("sharer 1 move_pages query", q) else { return }
            let home = q.value == n ? nodes[0] : nodes[1]
            let away = home == nodes[0] ? nodes[1] : nodes[0]
            c.note(
                "the file's pages are on node \(home)"
                    + (q.value == n || q.value == 0 ? "" : " (\(q.value) on \(nodes[0]))"))
            if let m = try movePages(s[1], 1, a[1], f.size, to: away, flags: ptshare_MPOL_MF_MOVE, "MPOL_MF_MOVE", &c) {
                c.expect(
                    m.refused == n && m.moved == 0,
                    "while shared, MPOL_MF_MOVE: \(m.refused) of \(n) pages EACCES, \(m.moved) moved"
                        + (m.refused == n && m.moved == 0 ? "" : " (expected all EACCES, none moved)"))
            }
            if let m = try movePages(
                s[1], 1, a[1], f.size, to: away, flags: ptshare_MPOL_MF_MOVE_ALL, "MPOL_MF_MOVE_ALL", &c)
            {
                c.expect(
                    m.moved == n && m.refused == 0,
                    "while shared, MPOL_MF_MOVE_ALL: \(m.moved) of \(n) pages on node \(away)"
                        + (m.moved == n ? "" : " (expected all)"))
            }
            for i in s.indices { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            census(s, a, length: f.size, &c, o)
            for i in [0, 2] {
                c.succeeds("sharer \(i) munmap", try s[i].call(PTSHARE_AGENT_UNMAP, addr: a[i], length: f.size))
            }
            if let m = try movePages(s[1], 1, a[1], f.size, to: home, flags: ptshare_MPOL_MF_MOVE, "MPOL_MF_MOVE", &c) {
                c.expect(
                    m.moved == n && m.refused == 0,
                    "alone, MPOL_MF_MOVE: \(m.moved) of \(n) pages back on node \(home)"
                        + (m.moved == n ? "" : ", \(m.refused) EACCES (expected all moved)"))
            }
            try check(s[1], 1, a[1], f.size, seed: 0x1000, &c)
        }
    }
}
