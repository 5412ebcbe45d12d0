import CPTShare
import Glibc

/// sharedpt.migrate.move_pages: the file's pages moved to another NUMA node by libnuma's
/// numa_migrate_pages, i.e. migrate_pages(2), from under the shared tables.
extension SharedPTSemantics {
    /// Three sharers of an 8 MiB memfd with data (sharer 0 wrote it, 1 and 2 read it). First
    /// sharer 1 binds its mapping to the other node with mbind(MPOL_MF_MOVE): no page moves,
    /// since the others map them (through the shared table, the series' check in mempolicy;
    /// unshared, the mapcount). Then the driver, as root, calls numa_migrate_pages for sharer 1
    /// from the node that holds the file's pages to the other one: with CAP_SYS_NICE that is
    /// MPOL_MF_MOVE_ALL, so mempolicy queues the folios behind the shared tables too, and
    /// migration replaces each PTE in the one table every sharer uses. Then numa_maps of every
    /// sharer shows all of the mapping's pages on the new node, /proc/vmstat pgmigrate_success
    /// grew by at least that many, every sharer reads the old data, sharers 0 and 1 read a fresh
    /// pattern sharer 2 writes, and the census still finds one table per chunk; the kernel log
    /// stays clean. The call also moves what sharer 1 maps with the driver (the binary's text):
    /// later tests find it on the other node. Unshared on stock: the same (MOVE_ALL moves a page
    /// several processes map). Premise: two NUMA nodes and root, else SKIP.
    static func migrateMovePages(_ o: SuiteOptions) -> KTAPResult {
        runSharedOrPlain("sharedpt.migrate.move_pages", o, size: 8 << 20) { f, c, shared throws(SharedPTError) in
            guard let nodes = twoNodes("a move", &c) else { return }
            guard geteuid() == 0 else {
                c.unproven("not root: moving pages other processes map needs CAP_SYS_NICE (MPOL_MF_MOVE_ALL)")
                return
            }
            let log = KernelLog.open()
            // Shared: the census proves the file PTE-mapped through one table per chunk before
            // anything moves (a PMD-mapped chunk would be mapped once per process and stay put
            // without the series' check).
            let (s, a) = try sharersWithData(f, 3, &c, o, census: shared)
            let n = f.size / page
            let before = try placement(s, a, &c)
            // From node 0 to node 1, unless the pages are all on node 1 already (where the
            // driver's policy put them): then from node 1 to node 0.
            let away = before[1][nodes[1]] == n ? nodes[0] : nodes[1]
            let from = nodes.filter { $0 != away }
            c.note("before: " + describe(before, n))
            // Without MPOL_MF_MOVE_ALL a process moves only what it alone maps: sharer 1 binds its
            // mapping to the other node with MPOL_MF_MOVE, and every page stays (others map it,
            // through the shared table or, unshared, through their own).
            let bind = try s[1].call(
                PTSHARE_AGENT_MBIND, addr: a[1], length: f.size, arg: Int32(away), flags: ptshare_MPOL_MF_MOVE)
            if c.succeeds("sharer 1 mbind(MPOL_BIND \(away), MPOL_MF_MOVE) of its mapping", bind) {
                let bound = try placement(s, a, &c)
                c.expect(
                    bound == before,
                    "numa_maps after sharer 1's mbind: " + describe(bound, n)
                        + (bound == before ? " (unchanged)" : " (expected unchanged: the others map these pages)"))
            }
            c.succeeds(
                "sharer 1 mbind(MPOL_DEFAULT)", try s[1].call(PTSHARE_AGENT_MBIND, addr: a[1], length: f.size, arg: -1))
            let vm0 = try vmstat(&c)
            let left: Int
            do { left = try Numa.migratePages(s[1].pid, from: from, to: [away]) } catch {
                c.expect(false, "numa_migrate_pages of sharer 1: \(error)")
                throw .stepFailed("numa_migrate_pages")
            }
            let vm1 = try vmstat(&c)
            // The count covers all of sharer 1's pages on `from` (its stack, the binary's text it
            // maps with every process), any of which may be busy: numa_maps judges the file's.
            c.note(
                "numa_migrate_pages(sharer 1, \(NodeList.format(from)) -> \(away)): \(left) of sharer 1's pages not moved"
            )
            let after = try placement(s, a, &c)
            let all = after.allSatisfy { $0[away] == n && $0.count == 1 }
            c.expect(
                all,
                "numa_maps after the move: " + describe(after, n)
                    + (all ? "" : " (expected all \(n) pages on node \(away) for every sharer)"))
            let moved = n - (before[1][away] ?? 0)
            expectGrowth(vm0, vm1, "pgmigrate_success", atLeast: moved, "/proc/vmstat", &c)
            for i in s.indices { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            try fill(s[2], 2, a[2], f.size, seed: 0x6000, &c)
            for i in [0, 1] { try check(s[i], i, a[i], f.size, seed: 0x6000, &c) }
            censusIfShared(shared, s, [0, 1, 2], a, length: f.size, &c, o)
            f.killSharers()
            expectCleanLog(log, &c)
        }
    }

    /// Per sharer, the mapping's pages per node from /proc/PID/numa_maps.
    static func placement(_ s: [Sharer], _ a: [UInt64], _ c: inout Checks) throws(SharedPTError) -> [[Int: UInt64]] {
        var out: [[Int: UInt64]] = []
        for i in s.indices {
            let entries: [NumaMapsEntry]
            do { entries = try ProcFS.numaMaps(s[i].pid) } catch {
                c.expect(false, "sharer \(i): \(error)")
                throw .stepFailed("numa_maps")
            }
            guard let e = NumaMaps.entry(at: a[i], in: entries) else {
                c.expect(false, "/proc/\(s[i].pid)/numa_maps of sharer \(i) has no mapping at \(hex(a[i]))")
                throw .stepFailed("numa_maps")
            }
            out.append(e.pagesPerNode)
        }
        return out
    }

    static func describe(_ p: [[Int: UInt64]], _ n: UInt64) -> String {
        p.enumerated().map { i, nodes in
            "sharer \(i) "
                + (nodes.isEmpty
                    ? "no pages"
                    : nodes.sorted { $0.key < $1.key }.map { "N\($0.key)=\($0.value)" }.joined(separator: " "))
        }.joined(separator: ", ") + " (of \(n))"
    }
}
