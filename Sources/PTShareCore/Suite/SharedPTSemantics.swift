import CPTShare
import Glibc

/// sharedpt.semantics.*: a few sharers of a few MiB each (the guest runs under TCG), each step
/// done by a forked sharer in the C shim and each answer checked. A SIGBUS or errno is an
/// answer; a sharer that dies or hangs fails the test.
enum SharedPTSemantics {
    static let mib: UInt64 = 1 << 20
    static let chunk = Geometry.pmdSize
    static let page = Geometry.page

    /// Gate, fixture of `size`, body, teardown; a step that cannot be carried out fails the test.
    static func run(
        _ name: String, _ o: SuiteOptions, size: UInt64 = 4 << 20, dax: Bool = false,
        _ body: (SharedPTFixture, inout Checks) throws(SharedPTError) -> Void
    ) -> KTAPResult {
        if let r = Suite.needsSharedPT(name, o) { return r }
        var directory: String?
        if dax {
            switch Suite.daxMount(name) {
            case .success(let m): directory = m.mountPoint
            case .failure(let box): return box.result
            }
        }
        var c = Checks(name)
        do throws(SharedPTError) {
            let f: SharedPTFixture
            if let d = directory {
                f = try SharedPTFixture(daxDirectory: d, size: size, flag: o.mapSharedPTValue)
                c.note("\(f.name): a DAX file (statx), its sharers under PR_SET_THP_DISABLE (PTE-mapped)")
            } else {
                f = try SharedPTFixture(size: size, flag: o.mapSharedPTValue)
            }
            try body(f, &c)
        } catch {
            c.stopped(by: error)
        }
        return c.result()
    }

    /// Sharer `index` maps `length` (default the whole file) at `offset` with the flag; the
    /// kernel's address must be 2 MiB-aligned. A failed mmap stops the test. `at` asks for an
    /// address (`MAP_FIXED_NOREPLACE`, which `MAP_SHARED_VALIDATE` takes with the flag).
    static func map(
        _ f: SharedPTFixture, _ s: Sharer, _ index: Int, _ c: inout Checks, length: UInt64? = nil,
        offset: UInt64 = 0, prot: Int32 = PROT_READ | PROT_WRITE, fd: Int32? = nil, at: UInt64? = nil,
        extraFlags: Int32 = 0, label: String = ""
    ) throws(SharedPTError) -> UInt64 {
        let len = length ?? f.size
        let how = prot == PROT_READ ? "read-only " : ""
        let what =
            "sharer \(index) (pid \(s.pid)) maps \(ByteSize(len)) \(how)at offset \(ByteSize(offset))\(label)"
            + (at.map { " at \(hex($0))" } ?? "")
        let flags = (at == nil ? f.flags(index) : f.flags(index) | ptshare_MAP_FIXED_NOREPLACE) | extraFlags
        let r = try s.call(
            PTSHARE_AGENT_MAP, addr: at ?? 0, length: len, offset: offset, arg: prot, flags: flags, fd: fd ?? f.fd)
        guard r.error == 0 else {
            c.expect(false, "\(what): \(Checks.describe(r))")
            throw .stepFailed(what)
        }
        // Flag 0 is the harness's self-test on plain mappings, which the kernel need not align.
        let aligned = r.value % chunk == 0 || f.flag == 0
        c.expect(aligned, "\(what): \(hex(r.value))" + (aligned ? "" : " is not 2 MiB-aligned"))
        if let at, r.value != at {
            c.expect(false, "\(what): landed at \(hex(r.value)), not where asked")
            throw .stepFailed(what)
        }
        return r.value
    }

    /// One view for a census: sharer `index` maps [offset, offset + length) of the file at `addr`.
    static func view(_ s: Sharer, _ index: Int, _ addr: UInt64, offset: UInt64 = 0, length: UInt64)
        -> TableCensus.View
    {
        TableCensus.View(
            label: "sharer \(index)", pid: s.pid, address: addr, fileOffset: offset, length: length)
    }

    /// The census that proves (or refutes) sharing among `views`; see `Checks.census`.
    static func census(
        _ views: [TableCensus.View], _ c: inout Checks, _ o: SuiteOptions,
        _ e: TableCensus.Expectation = .oneTablePerChunk
    ) {
        c.census(views, e, modulePath: o.modulePath)
    }

    /// Sharers `s` each map [0, length) of the file at `a[i]`: one shared table per chunk.
    static func census(_ s: [Sharer], _ a: [UInt64], length: UInt64, _ c: inout Checks, _ o: SuiteOptions) {
        census(s.indices.map { view(s[$0], $0, a[$0], length: length) }, &c, o)
    }

    /// `count` sharers that each map the whole file; sharer 0 writes seed 0x1000's pattern and
    /// the others read it back through the tables they attached to. A census then proves that
    /// they did: one PTE table per chunk for all of them.
    static func sharersWithData(
        _ f: SharedPTFixture, _ count: Int, _ c: inout Checks, _ o: SuiteOptions, census takeCensus: Bool = true
    ) throws(SharedPTError) -> ([Sharer], [UInt64]) {
        let s = try f.spawn(count)
        var a: [UInt64] = []
        for i in s.indices { a.append(try map(f, s[i], i, &c)) }
        try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
        for i in 1..<count { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
        if takeCensus { census(s, a, length: f.size, &c, o) }
        return (s, a)
    }

    /// Adds a sharer that maps the whole file read-only: it reads the data but, its access being
    /// different, through PTE tables of its own (a census shows none shared with sharer 0). The
    /// tests that zap through the file (truncate, hole punch, MADV_REMOVE) then have a view the
    /// rmap walk must reach separately.
    static func addReadOnlySharer(
        _ f: SharedPTFixture, _ s: inout [Sharer], _ a: inout [UInt64], _ c: inout Checks, _ o: SuiteOptions
    ) throws(SharedPTError) {
        let i = s.count
        let r = try f.spawn(1)[0]
        let addr = try map(f, r, i, &c, prot: PROT_READ)
        try check(r, i, addr, f.size, seed: 0x1000, &c)
        census([view(s[0], 0, a[0], length: f.size), view(r, i, addr, length: f.size)], &c, o, .separateTables)
        s.append(r)
        a.append(addr)
    }

    static func fill(_ s: Sharer, _ i: Int, _ a: UInt64, _ len: UInt64, seed: UInt64, _ c: inout Checks)
        throws(SharedPTError)
    {
        let r = try s.call(PTSHARE_AGENT_FILL, addr: a, length: len, value: seed)
        guard c.succeeds("sharer \(i) writes \(ByteSize(len)) (seed \(hex(seed)))", r) else {
            throw .stepFailed("fill")
        }
    }

    static func check(_ s: Sharer, _ i: Int, _ a: UInt64, _ len: UInt64, seed: UInt64, _ c: inout Checks)
        throws(SharedPTError)
    {
        let r = try s.call(PTSHARE_AGENT_CHECK, addr: a, length: len, value: seed)
        c.intact("sharer \(i) reads \(ByteSize(len)) at \(hex(a)) (seed \(hex(seed)))", r, seed: seed)
    }

    static func read(_ s: Sharer, _ i: Int, _ a: UInt64, _ want: UInt64, _ c: inout Checks) throws(SharedPTError) {
        c.reads("sharer \(i) reads the word at \(hex(a))", try s.call(PTSHARE_AGENT_READ, addr: a), want)
    }

    static func write(_ s: Sharer, _ i: Int, _ a: UInt64, _ v: UInt64, _ c: inout Checks) throws(SharedPTError) {
        c.succeeds("sharer \(i) writes \(hex(v)) at \(hex(a))", try s.call(PTSHARE_AGENT_WRITE, addr: a, value: v))
    }

    // MARK: - Tests

    /// A write by one sharer is seen by all others, whichever of them writes.
    static func coherence(_ o: SuiteOptions) -> KTAPResult { coherence("sharedpt.semantics.coherence", o) }

    static func coherence(_ name: String, _ o: SuiteOptions, dax: Bool = false) -> KTAPResult {
        run(name, o, dax: dax) { f, c throws(SharedPTError) in
            let (s, a) = try sharersWithData(f, 3, &c, o)
            try write(s[1], 1, a[1] + 3 * page + 8, 0xC0FFEE, &c)
            try read(s[0], 0, a[0] + 3 * page + 8, 0xC0FFEE, &c)
            try read(s[2], 2, a[2] + 3 * page + 8, 0xC0FFEE, &c)
            try fill(s[2], 2, a[2], f.size, seed: 0x2000, &c)
            for i in 0..<2 { try check(s[i], i, a[i], f.size, seed: 0x2000, &c) }
        }
    }

    /// One sharer unmaps; the others keep reading and writing; it maps again and sees their data.
    static func munmapIsolation(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.munmap_isolation", o) { f, c throws(SharedPTError) in
            let (s, mapped) = try sharersWithData(f, 3, &c, o)
            var a = mapped
            c.succeeds(
                "sharer 0 unmaps the whole mapping", try s[0].call(PTSHARE_AGENT_UNMAP, addr: a[0], length: f.size))
            try check(s[1], 1, a[1], f.size, seed: 0x1000, &c)
            try fill(s[2], 2, a[2], f.size, seed: 0x2000, &c)
            try check(s[1], 1, a[1], f.size, seed: 0x2000, &c)
            a[0] = try map(f, s[0], 0, &c)
            try check(s[0], 0, a[0], f.size, seed: 0x2000, &c)
            try fill(s[0], 0, a[0], f.size, seed: 0x3000, &c)
            for i in 1..<3 { try check(s[i], i, a[i], f.size, seed: 0x3000, &c) }
        }
    }

    /// The sharer that faulted the tables in first exits; the others keep working, and a
    /// newcomer attaches and sees the data.
    static func creatorExit(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.creator_exit", o) { f, c throws(SharedPTError) in
            let s = try f.spawn(3)
            let a0 = try map(f, s[0], 0, &c)
            try fill(s[0], 0, a0, f.size, seed: 0x1000, &c)
            var a: [UInt64] = [a0]
            for i in 1..<3 { a.append(try map(f, s[i], i, &c)) }
            for i in 1..<3 { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            census(s, a, length: f.size, &c, o)
            try s[0].exit()
            c.note("sharer 0 (pid \(s[0].pid), the creator) exited and was reaped")
            try check(s[1], 1, a[1], f.size, seed: 0x1000, &c)
            try fill(s[1], 1, a[1], f.size, seed: 0x2000, &c)
            try check(s[2], 2, a[2], f.size, seed: 0x2000, &c)
            let n = try f.spawn(1)[0]
            let an = try map(f, n, 3, &c)
            try check(n, 3, an, f.size, seed: 0x2000, &c)
            census(
                [
                    view(s[1], 1, a[1], length: f.size), view(s[2], 2, a[2], length: f.size),
                    view(n, 3, an, length: f.size),
                ],
                &c, o)
            try fill(n, 3, an, f.size, seed: 0x3000, &c)
            try s[1].exit()
            c.note("sharer 1 (pid \(s[1].pid)) exited")
            try check(s[2], 2, a[2], f.size, seed: 0x3000, &c)
        }
    }

    /// A sharer's fork child shares too: each sees what the other writes, and so does another sharer.
    static func fork(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.fork", o) { f, c throws(SharedPTError) in
            let s = try f.spawn(2)
            let a = try map(f, s[0], 0, &c)
            try fill(s[0], 0, a, f.size, seed: 0x1000, &c)
            let child = try s[0].fork()
            f.adopt(child)
            c.note("sharer 0 forked child pid \(child.pid) (sharer 2)")
            try check(child, 2, a, f.size, seed: 0x1000, &c)
            try write(child, 2, a + 5 * page + 8, 0xC417D, &c)
            try read(s[0], 0, a + 5 * page + 8, 0xC417D, &c)
            try write(s[0], 0, a + 7 * page + 8, 0x9A7E47, &c)
            try read(child, 2, a + 7 * page + 8, 0x9A7E47, &c)
            let b = try map(f, s[1], 1, &c)
            try read(s[1], 1, b + 5 * page + 8, 0xC417D, &c)
            try fill(child, 2, a, f.size, seed: 0x2000, &c)
            try check(s[0], 0, a, f.size, seed: 0x2000, &c)
            try check(s[1], 1, b, f.size, seed: 0x2000, &c)
            census(
                [
                    view(s[0], 0, a, length: f.size), view(child, 2, a, length: f.size),
                    view(s[1], 1, b, length: f.size),
                ],
                &c, o)
            try child.exit()
            c.note("the child exited")
            try check(s[0], 0, a, f.size, seed: 0x2000, &c)
            try fill(s[0], 0, a, f.size, seed: 0x3000, &c)
            try check(s[1], 1, b, f.size, seed: 0x3000, &c)
        }
    }

    /// Truncating the file while three sharers and a read-only mapper (tables of its own) map
    /// it: each gets SIGBUS past the new EOF and keeps the data below it; extended again, the
    /// range reads as zeroes everywhere.
    static func truncate(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.truncate", o) { f, c throws(SharedPTError) in try truncateSteps(f, &c, o) }
    }

    static func truncateSteps(_ f: SharedPTFixture, _ c: inout Checks, _ o: SuiteOptions) throws(SharedPTError) {
        var (s, a) = try sharersWithData(f, 3, &c, o)
        try addReadOnlySharer(f, &s, &a, &c, o)
        try f.truncate(to: chunk)
        c.note("ftruncate to \(ByteSize(chunk))")
        for i in s.indices {
            for off in [chunk, chunk + mib + 8, f.size - 8] {
                c.sigbus(
                    "sharer \(i) reads offset \(hex(off)) past EOF",
                    try s[i].call(PTSHARE_AGENT_READ, addr: a[i] + off))
            }
            try check(s[i], i, a[i], chunk, seed: 0x1000, &c)
        }
        try f.truncate(to: f.size)
        c.note("ftruncate back to \(ByteSize(f.size))")
        for i in s.indices {
            c.zeroes(
                "sharer \(i) reads zeroes where the file grew again",
                try s[i].call(PTSHARE_AGENT_CHECK_ZERO, addr: a[i] + chunk, length: f.size - chunk))
        }
        try fill(s[1], 1, a[1] + chunk, f.size - chunk, seed: 0x2000, &c)
        for i in [0, 2] { try check(s[i], i, a[i] + chunk, f.size - chunk, seed: 0x2000, &c) }
        try check(s[2], 2, a[2], chunk, seed: 0x1000, &c)
    }

    /// A hole punched across a chunk boundary reads as zeroes in every sharer, the read-only
    /// mapper with tables of its own included; the rest is intact.
    static func holePunch(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.holepunch", o) { f, c throws(SharedPTError) in try holePunchSteps(f, &c, o) }
    }

    static func holePunchSteps(_ f: SharedPTFixture, _ c: inout Checks, _ o: SuiteOptions) throws(SharedPTError) {
        let (s, a) = try zeroRange(f, &c, o, "the hole") { _, _, lo, hi, c throws(SharedPTError) in
            try f.punchHole(offset: lo, length: hi - lo)
            c.note("fallocate(PUNCH_HOLE | KEEP_SIZE) of [\(hex(lo)), \(hex(hi)))")
        }
        try fill(s[2], 2, a[2] + mib, 2 * mib, seed: 0x2000, &c)
        for i in 0..<2 { try check(s[i], i, a[i] + mib, 2 * mib, seed: 0x2000, &c) }
    }

    /// Three sharers with data and a read-only mapper (tables of its own); `zap` frees the file's
    /// [1M, 3M) somehow; then every view reads zeroes there and the data elsewhere.
    static func zeroRange(
        _ f: SharedPTFixture, _ c: inout Checks, _ o: SuiteOptions, _ what: String,
        _ zap: ([Sharer], [UInt64], UInt64, UInt64, inout Checks) throws(SharedPTError) -> Void
    ) throws(SharedPTError) -> ([Sharer], [UInt64]) {
        var (s, a) = try sharersWithData(f, 3, &c, o)
        try addReadOnlySharer(f, &s, &a, &c, o)
        let lo = mib
        let hi = 3 * mib
        try zap(s, a, lo, hi, &c)
        for i in s.indices {
            c.zeroes(
                "sharer \(i) reads zeroes in \(what)",
                try s[i].call(PTSHARE_AGENT_CHECK_ZERO, addr: a[i] + lo, length: hi - lo))
            try check(s[i], i, a[i], lo, seed: 0x1000, &c)
            try check(s[i], i, a[i] + hi, f.size - hi, seed: 0x1000 + hi / page, &c)
        }
        return (s, a)
    }

    /// mremap works and unshares: sharer 0 moves its mapping to twice the size (MREMAP_MAYMOVE),
    /// sharer 1 shrinks its own to 2 MiB; each keeps the file's data at its new extent, and the
    /// others keep sharing.
    static func mremap(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.mremap", o) { f, c throws(SharedPTError) in
            var (s, a) = try sharersWithData(f, 4, &c, o)
            let r = try s[0].call(
                PTSHARE_AGENT_MREMAP, addr: a[0], length: f.size, offset: 2 * f.size, arg: ptshare_MREMAP_MAYMOVE)
            guard c.succeeds("sharer 0 mremap to twice the size (MREMAP_MAYMOVE)", r) else {
                throw .stepFailed("mremap")
            }
            a[0] = r.value
            c.succeeds(
                "sharer 1 mremap down to 2 MiB",
                try s[1].call(PTSHARE_AGENT_MREMAP, addr: a[1], length: f.size, offset: chunk))
            expectFlags(s[1], 1, a[1], shared: false, &c)
            try check(s[1], 1, a[1], chunk, seed: 0x1000, &c)
            s.remove(at: 1)
            a.remove(at: 1)
            try expectUnshared(f, s, a, diverged: 0, &c, o)
        }
    }

    /// MADV_DONTNEED works; every sharer still reads the file's data afterwards.
    static func madviseDontNeed(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.madvise_dontneed", o) { f, c throws(SharedPTError) in
            let (s, a) = try sharersWithData(f, 3, &c, o)
            c.succeeds(
                "sharer 1 madvise(MADV_DONTNEED) on the whole mapping",
                try s[1].call(PTSHARE_AGENT_MADVISE, addr: a[1], length: f.size, arg: ptshare_MADV_DONTNEED))
            for i in s.indices { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            c.succeeds(
                "sharer 2 madvise(MADV_DONTNEED) on its second 2 MiB",
                try s[2].call(PTSHARE_AGENT_MADVISE, addr: a[2] + chunk, length: chunk, arg: ptshare_MADV_DONTNEED))
            try fill(s[2], 2, a[2], f.size, seed: 0x2000, &c)
            for i in 0..<2 { try check(s[i], i, a[i], f.size, seed: 0x2000, &c) }
        }
    }

    /// MADV_HUGEPAGE and MADV_NOHUGEPAGE are refused (THP is off for these mappings).
    static func madviseHugePage(_ o: SuiteOptions) -> KTAPResult {
        refusedAdvice(
            "sharedpt.semantics.madvise_hugepage", o,
            [("MADV_HUGEPAGE", ptshare_MADV_HUGEPAGE), ("MADV_NOHUGEPAGE", ptshare_MADV_NOHUGEPAGE)])
    }

    /// Each advice is EINVAL on the whole mapping of one sharer; the other still reads its data.
    /// Premise: the same advice on a plain shared mapping of another memfd is not EINVAL (else
    /// the kernel refuses it for reasons of its own, e.g. not compiled in, and the refusal proves
    /// nothing: the test ends as SKIP with that reason).
    static func refusedAdvice(_ name: String, _ o: SuiteOptions, _ advices: [(String, Int32)]) -> KTAPResult {
        run(name, o) { f, c throws(SharedPTError) in
            let plain = try f.scratch()  // before the sharers fork: they inherit it
            let s = try f.spawn(2)
            let a = try map(f, s[0], 0, &c)
            let b = try map(f, s[1], 1, &c)
            try fill(s[0], 0, a, f.size, seed: 0x1000, &c)
            // Aligned as the flagged mapping is (THP advice looks at aligned 2 MiB ranges), so
            // the premise differs from the test in the flag alone.
            let at = a - (1 << 30)
            let p = try s[1].call(
                PTSHARE_AGENT_MAP, addr: at, length: f.size, arg: PROT_READ | PROT_WRITE,
                flags: MAP_SHARED | ptshare_MAP_FIXED_NOREPLACE, fd: plain)
            guard c.succeeds("sharer 1 maps another memfd without the flag at \(hex(at)) (the premise)", p) else {
                throw .stepFailed("plain mapping")
            }
            // Populated like the flagged mapping: collapse, for one, refuses an empty range.
            try fill(s[1], 1, p.value, f.size, seed: 0x9000, &c)
            for (what, advice) in advices {
                let r = try s[1].call(PTSHARE_AGENT_MADVISE, addr: p.value, length: f.size, arg: advice)
                if r.error == EINVAL {
                    c.unproven(
                        "madvise(\(what)) is EINVAL on a plain shared mapping too: this kernel refuses it anyway")
                    continue
                }
                c.note("premise: madvise(\(what)) on the plain mapping: \(Checks.describe(r))")
                c.fails(
                    "sharer 0 madvise(\(what))",
                    try s[0].call(PTSHARE_AGENT_MADVISE, addr: a, length: f.size, arg: advice), EINVAL)
            }
            try check(s[1], 1, b, f.size, seed: 0x1000, &c)
            census([view(s[0], 0, a, length: f.size), view(s[1], 1, b, length: f.size)], &c, o)
        }
    }

    /// MADV_COLD and MADV_PAGEOUT are refused: they spare pages other processes map, and a page
    /// behind a shared table looks mapped once, so one sharer could evict everyone's pages.
    static func madvisePageout(_ o: SuiteOptions) -> KTAPResult {
        refusedAdvice(
            "sharedpt.semantics.madvise_pageout", o,
            [("MADV_COLD", ptshare_MADV_COLD), ("MADV_PAGEOUT", ptshare_MADV_PAGEOUT)])
    }

    /// A vma merge moves a boundary without splitting: one that would leave a boundary off the
    /// 2 MiB grid unshares the vma, like an unaligned split. (Left sharing, the sharer's exit
    /// would tear down tables the other still maps through.) Aligned splits and merges keep
    /// sharing; the data survives the first sharer's exit.
    static func unalignedMerge(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.unaligned_merge", o, size: 8 << 20) { f, c throws(SharedPTError) in
            let (s, m) = try sharersWithData(f, 2, &c, o)
            let (a, b) = (m[0], m[1])
            let half = 2 * chunk
            c.succeeds(
                "sharer 0 madvise(MADV_DONTDUMP) on [4M, 8M) (an aligned split)",
                try s[0].call(PTSHARE_AGENT_MADVISE, addr: a + half, length: half, arg: ptshare_MADV_DONTDUMP))
            c.succeeds(
                "sharer 0 madvise(MADV_DODUMP) on [4M, 8M) (an aligned merge back)",
                try s[0].call(PTSHARE_AGENT_MADVISE, addr: a + half, length: half, arg: ptshare_MADV_DODUMP))
            expectFlags(s[0], 0, a + half, shared: true, &c)
            census(s, m, length: f.size, &c, o)
            c.succeeds(
                "sharer 0 madvise(MADV_DONTDUMP) on [4M, 8M) (an aligned split again)",
                try s[0].call(PTSHARE_AGENT_MADVISE, addr: a + half, length: half, arg: ptshare_MADV_DONTDUMP))
            c.succeeds(
                "sharer 0 madvise(MADV_DONTDUMP) on [2M+4K, 4M) (a merge into [4M, 8M) ending off the grid)",
                try s[0].call(
                    PTSHARE_AGENT_MADVISE, addr: a + chunk + page, length: chunk - page, arg: ptshare_MADV_DONTDUMP))
            expectFlags(s[0], 0, a, shared: false, &c)
            expectFlags(s[0], 0, a + half, shared: true, with: ["dd"], &c)
            try check(s[0], 0, a, f.size, seed: 0x1000, &c)
            try s[0].exit()
            c.note("sharer 0 (pid \(s[0].pid)) exited and was reaped")
            try check(s[1], 1, b, f.size, seed: 0x1000, &c)
            try fill(s[1], 1, b, f.size, seed: 0x2000, &c)
            try check(s[1], 1, b, f.size, seed: 0x2000, &c)
        }
    }

    /// munmap of a 2 MiB-aligned middle chunk works and leaves the rest mapped, correct and
    /// still shared, and the other sharer unaffected (an unaligned munmap unshares instead: see
    /// sharedpt.unshare.split).
    static func partialMunmap(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.partial_munmap", o, size: 6 << 20) { f, c throws(SharedPTError) in
            let (s, m) = try sharersWithData(f, 2, &c, o)
            let (a, b) = (m[0], m[1])
            c.succeeds(
                "sharer 0 munmap of [2M, 4M)", try s[0].call(PTSHARE_AGENT_UNMAP, addr: a + chunk, length: chunk))
            let tail = 2 * chunk
            try check(s[0], 0, a, chunk, seed: 0x1000, &c)
            try check(s[0], 0, a + tail, chunk, seed: 0x1000 + tail / page, &c)
            try check(s[1], 1, b, f.size, seed: 0x1000, &c)
            expectFlags(s[0], 0, a, shared: true, &c)
            expectFlags(s[0], 0, a + tail, shared: true, &c)
            census(
                [view(s[0], 0, a, length: chunk), view(s[1], 1, b, length: chunk)]
                    + [
                        view(s[0], 0, a + tail, offset: tail, length: chunk),
                        view(s[1], 1, b + tail, offset: tail, length: chunk),
                    ], &c, o)
            try fill(s[1], 1, b, f.size, seed: 0x2000, &c)
            try check(s[0], 0, a, chunk, seed: 0x2000, &c)
            try check(s[0], 0, a + tail, chunk, seed: 0x2000 + tail / page, &c)
            c.succeeds("sharer 0 munmap of [0, 2M)", try s[0].call(PTSHARE_AGENT_UNMAP, addr: a, length: chunk))
            c.succeeds("sharer 0 munmap of [4M, 6M)", try s[0].call(PTSHARE_AGENT_UNMAP, addr: a + tail, length: chunk))
            try check(s[1], 1, b, f.size, seed: 0x2000, &c)
        }
    }
}
