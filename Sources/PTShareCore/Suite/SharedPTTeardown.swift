import CPTShare
import Glibc

/// sharedpt.teardown.no_leak: the sharers of a memfd leave in every order that matters, and
/// after each scenario PageTables (settled, every sharer gone) is back at its base. Each
/// scenario first proves with a census that its sharers did share one PTE table per chunk.
/// A kernel whose last detach forgets to free leaks 4 KiB per chunk, which only PageTables
/// afterwards can show: every data check inside would still pass. sharedpt.dax.teardown and
/// sharedpt.anon.teardown run the same scenarios (but the SIGKILL mid-populate) on a DAX file
/// and on anonymous shared memory, whose sharers sharer 0 forks (children of sharer 0, not of
/// the driver: their exit is seen as EOF on their channel, their wait status is not; the kernel
/// log must stay clean, so that a sharer that died in exit_mmap() cannot pass for one that
/// exited).
enum SharedPTTeardown {
    typealias Backing = SharedPTBacking

    static let chunk = Geometry.pmdSize
    /// 16 chunks: one forgotten table per chunk is 64 KiB, far above the measured noise (0 B).
    static let size: UInt64 = 32 << 20
    /// The killed populate's file: its second half (32 chunks, 64 MiB of PTEs to write) takes
    /// milliseconds natively and far longer under TCG, time enough to land a SIGKILL in it.
    static let killSize: UInt64 = 128 << 20
    /// Tries at a SIGKILL that lands before the populate answers.
    static let killTries = 5

    typealias Body = @Sendable (SharedPTFixture, Backing, inout Checks, SuiteOptions) throws(SharedPTError) -> Void

    static let scenarios: [(label: String, size: UInt64, memfdOnly: Bool, body: Body)] = [
        (
            "creator_first", size, false,
            { f, b, c, o throws(SharedPTError) in try leave(f, b, &c, o, order: [0, 1, 2]) }
        ),
        (
            "creator_last", size, false,
            { f, b, c, o throws(SharedPTError) in try leave(f, b, &c, o, order: [1, 2, 0]) }
        ),
        ("all_at_once", size, false, allAtOnce),
        // It maps and populates with sharers of its own making.
        ("sigkill_populating", killSize, true, { f, _, c, o throws(SharedPTError) in try killPopulating(f, &c, o) }),
        ("execve", size, false, execve),
        ("munmap_piecewise", size, false, munmapPiecewise),
    ]

    static func noLeak(_ o: SuiteOptions) -> KTAPResult { run("sharedpt.teardown.no_leak", o, .memfd) }

    static func dax(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.dax.teardown"
        // The flag's verdict first, as for every sharedpt.* test, then the mount.
        if let r = Suite.needsSharedPT(name, o) { return r }
        switch Suite.daxMount(name) {
        case .success(let m): return run(name, o, .dax(m.mountPoint))
        case .failure(let box): return box.result
        }
    }

    static func anon(_ o: SuiteOptions) -> KTAPResult { run("sharedpt.anon.teardown", o, .anon) }

    static func run(_ name: String, _ o: SuiteOptions, _ backing: Backing) -> KTAPResult {
        if let r = Suite.needsSharedPT(name, o) { return r }
        var c = Checks(name)
        let log = KernelLog.open()
        for sc in scenarios {
            if sc.memfdOnly && !backing.isMemfd { continue }
            let before: LeakCheck.Reading
            do { before = try LeakCheck.read() } catch {
                c.expect(false, "\(sc.label): PageTables before: \(error)")
                continue
            }
            scenario(sc.label, sc.size, backing, o, &c, sc.body)
            let after: LeakCheck.Reading
            do { after = try LeakCheck.read() } catch {
                c.expect(false, "\(sc.label): PageTables after: \(error)")
                continue
            }
            let out = LeakCheck.judge(before, after, noise: o.teardownNoiseBytes)
            switch out.status {
            case .pass: c.expect(true, "\(sc.label): \(out.line)")
            case .fail: c.expect(false, "\(sc.label): \(out.line)")
            case .skip: c.unproven("\(sc.label): \(out.line)")
            }
        }
        SharedPTSemantics.expectCleanLog(log, &c)
        return c.result()
    }

    /// One scenario on its own fixture; every sharer is reaped and the file closed on return.
    static func scenario(
        _ label: String, _ size: UInt64, _ backing: Backing, _ o: SuiteOptions, _ c: inout Checks, _ body: Body
    ) {
        c.note("\(label): \(ByteSize(size)) \(backing.what) (\(size / chunk) chunks)")
        do {
            let f = try backing.fixture(size: size, flag: o.mapSharedPTValue)

            try body(f, backing, &c, o)
        } catch {
            if case .stepFailed = error {
                c.note("\(label): the rest of this scenario depends on the step that failed")
            } else {
                c.expect(false, "\(label): \(error)")
            }
        }
    }

    /// Three sharers of the whole file (or anonymous mapping), sharer 0 the creator (it wrote
    /// the data, so it faulted every table in), and the census proving that they share one
    /// table per chunk.
    static func shared(_ f: SharedPTFixture, _ b: Backing, _ c: inout Checks, _ o: SuiteOptions)
        throws(SharedPTError) -> ([Sharer], [UInt64])
    {
        // Both take the census.
        if case .anon = b { return try SharedPTSemantics.anonFamily(f, children: 2, &c, o) }
        return try SharedPTSemantics.sharersWithData(f, 3, &c, o)
    }

    /// The sharers exit one by one in `order`.
    static func leave(_ f: SharedPTFixture, _ b: Backing, _ c: inout Checks, _ o: SuiteOptions, order: [Int])
        throws(SharedPTError)
    {
        let (s, _) = try shared(f, b, &c, o)
        for i in order {
            try s[i].exit()
            let how = s[i].isChild ? "exited and was reaped" : "exited (EOF on its channel)"
            c.note("sharer \(i) (pid \(s[i].pid)\(i == 0 ? ", the creator" : "")) \(how)")
        }
    }

    /// SIGKILL to every sharer before any is reaped: their exits race for the last detach.
    static func allAtOnce(_ f: SharedPTFixture, _ b: Backing, _ c: inout Checks, _ o: SuiteOptions)
        throws(SharedPTError)
    {
        let (s, _) = try shared(f, b, &c, o)
        for x in s { _ = Glibc.kill(x.pid, SIGKILL) }
        for x in s { x.kill() }
        c.note("SIGKILL to all \(s.count) sharers at once, then reaped")
    }

    /// Sharers 0 and 1 share the first half; then a victim populates the whole file (it
    /// attaches to the first half's tables and creates the second half's alone) and is
    /// killed once its VmPTE shows it creating them, before its populate answers.
    static func killPopulating(_ f: SharedPTFixture, _ c: inout Checks, _ o: SuiteOptions) throws(SharedPTError) {
        let half = f.size / 2
        let s = try f.spawn(2)
        var a: [UInt64] = []
        for i in s.indices {
            a.append(try SharedPTSemantics.map(f, s[i], i, &c))
            let r = try s[i].call(PTSHARE_AGENT_MADVISE, addr: a[i], length: half, arg: ptshare_MADV_POPULATE_WRITE)
            guard c.succeeds("sharer \(i) populates the first \(ByteSize(half))", r) else {
                throw .stepFailed("populate")
            }
        }
        SharedPTSemantics.census(s, a, length: half, &c, o)
        for attempt in 1...killTries {
            let v = try f.spawn(1)[0]
            let av = try SharedPTSemantics.map(f, v, 2, &c)
            let start: Int64
            do { start = try Runner.vmPTE(v.pid) } catch { throw .stepFailed("VmPTE of the victim: \(error)") }
            try v.send(PTSHARE_AGENT_MADVISE, addr: av, length: f.size, arg: ptshare_MADV_POPULATE_WRITE)
            // Past the first half's tables (attached) and its own PMD tables (one, two when the
            // range crosses a 1 GiB line) means it is creating the second half's.
            let mark = start + Int64(half / chunk + 2) * Int64(Geometry.page)
            var seen = start
            let deadline = Sys.monotonicNanoseconds() + UInt64(Sharer.timeoutSeconds) * 1_000_000_000
            while seen <= mark && !v.hasAnswer() && Sys.monotonicNanoseconds() < deadline {
                guard let now = try? Runner.vmPTE(v.pid) else { break }
                seen = now
            }
            let answer = v.killPosted()
            let tables = (seen - start) / Int64(Geometry.page)
            if let r = answer {
                guard c.succeeds("victim (try \(attempt)) populates \(ByteSize(f.size))", r) else { return }
                c.note("victim (try \(attempt)): the populate finished before the kill (\(tables) tables seen); again")
                continue
            }
            // No answer: the populate had not returned when the kill landed.
            c.expect(
                seen > mark,
                "victim (try \(attempt), pid \(v.pid)) SIGKILLed mid-populate: no answer yet, VmPTE had grown by "
                    + "\(tables) table pages (\(f.size / chunk) chunks in all; past \(half / chunk + 2) it creates)")
            try s[1].exit()
            try s[0].exit()
            c.note("sharers 1 and 0 exited and were reaped")
            return
        }
        c.unproven(
            "the populate finished before the SIGKILL in all \(killTries) tries: the kill was never mid-populate")
    }

    /// A sharer execs (its old mm torn down through exec_mmap()), another exits, and the
    /// creator, last, execs too: exec is both the leaver that unhooks and the last one.
    static func execve(_ f: SharedPTFixture, _ b: Backing, _ c: inout Checks, _ o: SuiteOptions)
        throws(SharedPTError)
    {
        let (s, _) = try shared(f, b, &c, o)
        try s[1].exec()
        c.note("sharer 1 (pid \(s[1].pid)) exec'd a program that exited 0")
        try s[2].exit()
        c.note("sharer 2 exited")
        try s[0].exec()
        c.note("sharer 0 (the creator, last) exec'd a program that exited 0")
    }

    /// Every sharer unmaps its mapping in 2 MiB-aligned pieces, in different orders, so that
    /// the last one out of a chunk differs from chunk to chunk; then they exit.
    static func munmapPiecewise(_ f: SharedPTFixture, _ b: Backing, _ c: inout Checks, _ o: SuiteOptions)
        throws(SharedPTError)
    {
        let (s, a) = try shared(f, b, &c, o)
        let n = f.size / chunk
        let mid = n / 2
        let pieces: [(Int, [Range<UInt64>])] = [
            (2, [mid - 2..<mid + 2]),
            (0, [0..<1, 1..<4, 4..<n]),
            (1, (0..<n).reversed().map { $0..<$0 + 1 }),
            (2, [0..<mid - 2, mid + 2..<n]),
        ]
        for (i, ranges) in pieces {
            for r in ranges {
                let reply = try s[i].call(
                    PTSHARE_AGENT_UNMAP, addr: a[i] + r.lowerBound * chunk, length: UInt64(r.count) * chunk)
                c.succeeds("sharer \(i) unmaps chunks \(r.lowerBound)..<\(r.upperBound)", reply)
            }
        }
        for i in s.indices { try s[i].exit() }
        c.note("every sharer unmapped every chunk, then exited")
    }
}
