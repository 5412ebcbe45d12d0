import CPTShare
import Glibc

/// numa.*: where page tables and file pages land on a NUMA machine (ptshare vm --numa 2).
extension Suite {
    /// Part 1, every kernel: a `run` of 8 unshared workers × 64 MiB memfd with `--cpunodebind N
    /// --membind N` (N the second node): the mapping's page tables (per-node meminfo PageTables,
    /// mapped against control) are on node N, at least one PTE table per 2 MiB per worker, and
    /// the other node got at most a tenth of that; numa_maps puts every page of the file on N.
    /// Part 2, with the flag (unshared where the kernel lacks it): a sharer bound to the first
    /// node faults every chunk of a 16 MiB memfd, then two sharers bound to N map and read it.
    /// The first node's PageTables grows by the chunks' tables; shared, N's by at most the two
    /// upper-level tables each newcomer may need: a shared table sits on the node of the
    /// process that first faulted its chunk. Unshared, N pays a table per chunk per newcomer.
    /// One node: SKIP.
    static func numaPageTablesPerNode(_ o: SuiteOptions) -> KTAPResult {
        let name = "numa.pagetables.per_node"
        let nodes = ProcFS.numaNodes()
        guard nodes.count >= 2 else {
            return KTAPResult(
                name: name, status: .skip("\(nodes.count) NUMA node(s): placement needs two (ptshare vm --numa 2)"))
        }
        let near = nodes[0]
        let far = nodes[1]
        let part1 = numaBoundRun(name, o, node: far)
        let part2 = SharedPTSemantics.runSharedOrPlain(name, o, size: 16 << 20) { f, c, shared throws(SharedPTError) in
            try SharedPTSemantics.firstFaulterNode(f, &c, shared: shared, first: near, others: far, o)
        }
        var diagnostics = part1.diagnostics
        diagnostics += part2.diagnostics
        let status: KTAPResult.Status
        switch (part1.status, part2.status) {
        case (.fail, _), (_, .fail): status = .fail
        case (.skip(let why), _), (_, .skip(let why)): status = .skip(why)
        default: status = .pass
        }
        return KTAPResult(name: name, status: status, diagnostics: diagnostics)
    }

    static func numaBoundRun(_ name: String, _ o: SuiteOptions, node: Int) -> KTAPResult {
        var c = Checks(name)
        let size: UInt64 = 64 << 20
        let workers = 8
        let placement = NumaPlacement(cpuNodes: [node], memory: .bind([node]))
        let s = Scenario(
            backing: .memfd, size: size, workers: workers, share: .none, touch: .populate, placement: placement)
        let r: RunReport
        do { r = try Runner.run(RunOptions(scenario: s, tables: .off)) } catch {
            c.expect(false, "run with \(placement): \(error)")
            return c.result()
        }
        if let why = save(r, o, "\(name).json") { c.expect(false, why) }
        let pte = UInt64(workers) * (size / Geometry.pmdSize) * Geometry.page
        c.note(
            "run: \(workers) workers × \(ByteSize(size)) memfd, \(placement); \(ByteSize(pte)) of PTE tables expected")
        for u in r.nodeUsage() {
            switch u.pageTableBytes {
            case .failure(let m): c.expect(false, "node \(u.node) page tables: \(m)")
            case .success(let b):
                let ok = u.node == node ? b >= Int64(pte) : b <= Int64(pte / 10)
                c.expect(
                    ok,
                    "node \(u.node): page tables of the mapping \(ByteSize(UInt64(max(b, 0))))"
                        + (ok ? "" : u.node == node ? ", expected at least \(ByteSize(pte))" : ", expected about none"))
            }
            switch u.filePages {
            case .failure(let m): c.expect(false, "node \(u.node) file pages: \(m)")
            case .success(let p):
                let want = u.node == node ? size / Geometry.page : 0
                c.expect(
                    p == want,
                    "node \(u.node): \(p) of the file's pages (numa_maps)" + (p == want ? "" : ", expected \(want)"))
            }
        }
        return c.result()
    }
}

extension SharedPTSemantics {
    /// A sharer spawned with this placement in force in the driver (inherited at fork), which
    /// is then undone.
    static func spawnPlaced(_ f: SharedPTFixture, node: Int, _ c: inout Checks) throws(SharedPTError) -> Sharer {
        let binding = NumaBinding(NumaPlacement(cpuNodes: [node], memory: .bind([node])))
        do { try binding.apply() } catch {
            c.expect(false, "binding the driver to node \(node) to fork a sharer: \(error)")
            throw .stepFailed("numa binding")
        }
        let s: Sharer
        do { s = try f.spawn(1)[0] } catch {
            try? binding.restore()
            throw error
        }
        do { try binding.restore() } catch {
            c.expect(false, "undoing the driver's binding: \(error)")
            throw .stepFailed("numa binding")
        }
        return s
    }

    /// Per-node PageTables of `nodes`, per-CPU deltas folded first.
    static func nodePageTables(_ nodes: [Int], _ c: inout Checks) throws(SharedPTError) -> [UInt64] {
        _ = ProcFS.refreshVMStats()
        var out: [UInt64] = []
        for n in nodes {
            let m: NodeMeminfo
            do { m = try ProcFS.nodeMeminfo(n) } catch {
                c.expect(false, "node \(n) meminfo: \(error)")
                throw .stepFailed("node meminfo")
            }
            guard let v = m.pageTables else {
                c.expect(false, "node \(n) meminfo has no PageTables")
                throw .stepFailed("node meminfo")
            }
            out.append(v)
        }
        return out
    }

    /// Sharer `i` reads `f` at `a`: zeroes, as the driver fallocated it.
    static func readZeroes(_ f: SharedPTFixture, _ s: Sharer, _ i: Int, _ a: UInt64, _ c: inout Checks)
        throws(SharedPTError)
    {
        c.zeroes(
            "sharer \(i) reads \(ByteSize(f.size)) of zeroes",
            try s.call(PTSHARE_AGENT_CHECK_ZERO, addr: a, length: f.size))
    }

    static func firstFaulterNode(
        _ f: SharedPTFixture, _ c: inout Checks, shared: Bool, first: Int, others: Int, _ o: SuiteOptions
    ) throws(SharedPTError) {
        let s = [
            try spawnPlaced(f, node: first, &c), try spawnPlaced(f, node: others, &c),
            try spawnPlaced(f, node: others, &c),
        ]
        let chunks = f.size / chunk
        let tables = chunks * page
        let upper = 2 * page
        let base = try nodePageTables([first, others], &c)
        let a0 = try map(f, s[0], 0, &c)
        try readZeroes(f, s[0], 0, a0, &c)
        let mid = try nodePageTables([first, others], &c)
        var a = [a0]
        for i in [1, 2] {
            a.append(try map(f, s[i], i, &c))
            try readZeroes(f, s[i], i, a[i], &c)
        }
        let end = try nodePageTables([first, others], &c)
        censusIfShared(shared, s, [0, 1, 2], a, length: f.size, &c, o)
        let d0 = mid[0] &- base[0]
        let d1 = end[1] &- mid[1]
        let firstOK = d0 >= tables && d0 <= tables + upper
        let othersOK = shared ? d1 <= 2 * upper : d1 >= 2 * tables
        c.expect(
            firstOK,
            "sharer 0 (node \(first)) faults \(chunks) chunks: node \(first) PageTables +\(ByteSize(d0))"
                + (firstOK ? "" : ", expected \(ByteSize(tables)) to \(ByteSize(tables + upper))"))
        c.expect(
            othersOK,
            "sharers 1 and 2 (node \(others)) map and read it: node \(others) PageTables +\(ByteSize(d1))"
                + (shared
                    ? (othersOK
                        ? ": the shared tables stay on node \(first), where the first fault put them"
                        : ", expected at most \(ByteSize(2 * upper)): they should attach to node \(first)'s tables")
                    : (othersOK ? ": each its own tables" : ", expected at least \(ByteSize(2 * tables))")))
        f.killSharers()
    }
}
