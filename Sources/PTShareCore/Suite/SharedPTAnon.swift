import CPTShare
import Glibc

/// sharedpt.anon.*: anonymous shared memory (`MAP_SHARED | MAP_ANONYMOUS`, shmem underneath),
/// what a database's postmaster or SGA owner maps once before forking its backends.
/// `MAP_SHARED_VALIDATE | MAP_SHARED_PT | MAP_ANONYMOUS` lets the processes that inherit the
/// mapping share its PTE tables (series patch 9).
extension Suite {
    static func sharedPTAnonSavings(_ o: SuiteOptions) -> KTAPResult {
        sharedPTSavings("sharedpt.anon.savings", o, sharedPTScenario(.anonShared, o))
    }

    static func sharedPTAnonTables(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.anon.tables"
        if let r = needsSharedPT(name, o) { return r }
        if let r = needsProbeModule(name, o) { return r }
        return verdictTest(name, o, sharedPTScenario(.anonShared, o), tables: .on) { r in
            sharedPTTablesLine(name, o, r)
        }
    }
}

extension SharedPTSemantics {
    /// `parent` (sharer 0) maps `f.size` of anonymous shared memory with the fixture's flag
    /// (the fixture's file is not used) and writes it (seed 0x1000); returns the address.
    static func mapAnonymous(_ f: SharedPTFixture, _ parent: Sharer, _ c: inout Checks) throws(SharedPTError)
        -> UInt64
    {
        let how = f.flag == 0 ? "MAP_SHARED | MAP_ANONYMOUS" : "MAP_SHARED_VALIDATE | MAP_SHARED_PT | MAP_ANONYMOUS"
        let what = "sharer 0 (pid \(parent.pid)) maps \(ByteSize(f.size)) \(how)"
        let r = try parent.call(
            PTSHARE_AGENT_MAP, length: f.size, arg: PROT_READ | PROT_WRITE, flags: f.flags(0) | MAP_ANONYMOUS, fd: -1)
        guard c.succeeds(what, r) else { throw .stepFailed(what) }
        let a = r.value
        // Flag 0 is the harness's self-test on plain mappings, which the kernel need not align.
        let aligned = a % chunk == 0 || f.flag == 0
        c.expect(aligned, "the mapping is at \(hex(a))" + (aligned ? "" : ": not 2 MiB-aligned"))
        try fill(parent, 0, a, f.size, seed: 0x1000, &c)
        return a
    }

    /// Sharer 0 maps and writes anonymous shared memory and forks `children` sharers, each of
    /// which reads the data through the tables it attaches on its first touch; with the census.
    /// The family at one address, sharer 0 first.
    static func anonFamily(_ f: SharedPTFixture, children: Int, _ c: inout Checks, _ o: SuiteOptions)
        throws(SharedPTError) -> ([Sharer], [UInt64])
    {
        let parent = try f.spawn(1, spares: children)[0]
        let a = try mapAnonymous(f, parent, &c)
        var family = [parent]
        for k in 1...children {
            let child = try parent.fork()
            f.adopt(child)
            try check(child, k, a, f.size, seed: 0x1000, &c)
            family.append(child)
        }
        c.note(
            "sharer 0 forked \(children) children (pids \(family.dropFirst().map { String($0.pid) }.joined(separator: ", ")))"
        )
        let at = [UInt64](repeating: a, count: family.count)
        census(family, at, length: f.size, &c, o)
        return (family, at)
    }

    /// Sharer 0 maps 8 MiB of anonymous shared memory with the flag and writes it, then forks
    /// three children, and child 1 forks a grandchild: none of them maps anything. Each reads
    /// the data through the tables it attaches on its first touch (smaps `sp` inherited), and
    /// the census finds one table per chunk for all five. The grandchild's rewrite is what every
    /// other reads. Child 3 exits: the other four still share one table per chunk and read the
    /// data.
    static func anonForkInherit(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.anon.fork_inherit", o, size: 8 << 20) { f, c throws(SharedPTError) in
            let parent = try f.spawn(1, spares: 4)[0]
            let a = try mapAnonymous(f, parent, &c)
            var family = [parent]
            for k in 1...3 {
                // Child 1 takes a spare channel along for the grandchild.
                let child = try parent.fork(handing: k == 1 ? [parent.spareIndices.last!] : [])
                f.adopt(child)
                c.note("sharer 0 forked child \(k) (pid \(child.pid))")
                family.append(child)
            }
            let grandchild = try family[1].fork()
            f.adopt(grandchild)
            c.note("child 1 forked grandchild 4 (pid \(grandchild.pid))")
            family.append(grandchild)
            for i in family.indices {
                expectFlags(family[i], i, a, shared: true, &c)
                if i > 0 { try check(family[i], i, a, f.size, seed: 0x1000, &c) }
            }
            census(family.indices.map { view(family[$0], $0, a, length: f.size) }, &c, o)
            try fill(grandchild, 4, a, f.size, seed: 0x2000, &c)
            for i in 0..<4 { try check(family[i], i, a, f.size, seed: 0x2000, &c) }
            try family[3].exit()
            c.note("child 3 exited")
            let rest = [0, 1, 2, 4]
            for i in rest { try check(family[i], i, a, f.size, seed: 0x2000, &c) }
            census(rest.map { view(family[$0], $0, a, length: f.size) }, &c, o)
        }
    }
}
