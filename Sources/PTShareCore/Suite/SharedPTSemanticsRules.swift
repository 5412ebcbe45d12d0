import CPTShare
import Glibc

/// sharedpt.semantics.* for the sharing rules themselves (who may share a table with whom) and
/// for the documented behaviours that had no test: each with a census where sharing is the
/// point, and a premise check where a refusal could come from elsewhere.
extension SharedPTSemantics {
    /// A read-only mapper must not share a read-write group's table: through its writable PTEs
    /// it could write what its own mapping forbids. Two read-write sharers share; a PROT_READ
    /// mapper of the same O_RDWR fd, a second one, and a mapper of an O_RDONLY fd (no
    /// VM_MAYWRITE) get tables of their own (the two alike share theirs), read the data, and
    /// take SIGSEGV on a write.
    static func roRwIsolation(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.ro_rw_isolation", o) { f, c throws(SharedPTError) in
            let roFd = try f.openReadOnly()  // before the sharers fork: they inherit it
            let s = try f.spawn(5)
            let a0 = try map(f, s[0], 0, &c)
            let a1 = try map(f, s[1], 1, &c)
            try fill(s[0], 0, a0, f.size, seed: 0x1000, &c)
            let r2 = try map(f, s[2], 2, &c, prot: PROT_READ)
            let r3 = try map(f, s[3], 3, &c, prot: PROT_READ)
            let r4 = try map(f, s[4], 4, &c, prot: PROT_READ, fd: roFd, label: " of an O_RDONLY fd")
            for (i, a) in [(1, a1), (2, r2), (3, r3), (4, r4)] { try check(s[i], i, a, f.size, seed: 0x1000, &c) }
            let v = { (i: Int, a: UInt64) in view(s[i], i, a, length: f.size) }
            census([v(0, a0), v(1, a1)], &c, o)
            census([v(2, r2), v(3, r3)], &c, o)
            census([v(0, a0), v(2, r2), v(4, r4)], &c, o, .separateTables)
            for (i, a) in [(2, r2), (3, r3), (4, r4)] {
                let w = try s[i].call(PTSHARE_AGENT_WRITE, addr: a + 3 * page + 8, value: 0xBAD)
                c.expect(
                    w.signal == SIGSEGV,
                    "sharer \(i) (read-only) writes at \(hex(a + 3 * page + 8)): "
                        + (w.signal == SIGSEGV ? "SIGSEGV" : "\(Checks.describe(w)), expected SIGSEGV"))
            }
            try check(s[0], 0, a0, f.size, seed: 0x1000, &c)
            try write(s[1], 1, a1 + 3 * page + 8, 0x600D, &c)
            for (i, a) in [(2, r2), (4, r4)] { try read(s[i], i, a + 3 * page + 8, 0x600D, &c) }
        }
    }

    /// Sharing goes by file offset, at whatever address: three sharers map the file at three
    /// different 2 MiB-aligned addresses (different offsets within a 1 GiB PMD table too), one
    /// of them only its second chunk, and every chunk has one table for all.
    static func differentAddresses(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.different_addresses", o) { f, c throws(SharedPTError) in
            let s = try f.spawn(3)
            let a0 = try map(f, s[0], 0, &c)
            // Below the kernel's choice, where forked sharers have nothing mapped.
            let a1 = try map(f, s[1], 1, &c, at: a0 - (1 << 30) - 3 * chunk)
            let a2 = try map(f, s[2], 2, &c, length: chunk, offset: chunk, at: a0 - (2 << 30) - 7 * chunk)
            try fill(s[0], 0, a0, f.size, seed: 0x1000, &c)
            try check(s[1], 1, a1, f.size, seed: 0x1000, &c)
            try check(s[2], 2, a2, chunk, seed: 0x1000 + chunk / page, &c)
            census(
                [
                    view(s[0], 0, a0, length: f.size), view(s[1], 1, a1, length: f.size),
                    view(s[2], 2, a2, offset: chunk, length: chunk),
                ], &c, o)
            try write(s[2], 2, a2 + 5 * page + 8, 0xD1FF, &c)
            try read(s[0], 0, a0 + chunk + 5 * page + 8, 0xD1FF, &c)
            try read(s[1], 1, a1 + chunk + 5 * page + 8, 0xD1FF, &c)
            try fill(s[1], 1, a1, f.size, seed: 0x2000, &c)
            try check(s[0], 0, a0, f.size, seed: 0x2000, &c)
            try check(s[2], 2, a2, chunk, seed: 0x2000 + chunk / page, &c)
        }
    }

    /// The same address is not the same chunk: sharer 1 maps the file's second chunk at the
    /// address where sharer 0 maps its first, and sharer 2 the first chunk where sharer 0 maps
    /// its second. Each reads its own offset's data, and the census (by file offset) finds one
    /// table per chunk: no process took the table that sits at its address elsewhere.
    static func offsetMismatch(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.offset_mismatch", o) { f, c throws(SharedPTError) in
            let s = try f.spawn(3)
            let a0 = try map(f, s[0], 0, &c)
            try fill(s[0], 0, a0, f.size, seed: 0x1000, &c)
            let a1 = try map(f, s[1], 1, &c, length: chunk, offset: chunk, at: a0)
            let a2 = try map(f, s[2], 2, &c, length: chunk, offset: 0, at: a0 + chunk)
            try check(s[1], 1, a1, chunk, seed: 0x1000 + chunk / page, &c)
            try check(s[2], 2, a2, chunk, seed: 0x1000, &c)
            census(
                [
                    view(s[0], 0, a0, length: f.size), view(s[1], 1, a1, offset: chunk, length: chunk),
                    view(s[2], 2, a2, offset: 0, length: chunk),
                ], &c, o)
            try write(s[1], 1, a1 + 8, 0x0FF5E7, &c)
            try read(s[0], 0, a0 + chunk + 8, 0x0FF5E7, &c)
            try read(s[0], 0, a0 + 8, 0, &c)
            try read(s[2], 2, a2 + 8, 0, &c)
        }
    }

    /// MADV_COLLAPSE would put a PMD mapping in place of the shared table.
    static func madviseCollapse(_ o: SuiteOptions) -> KTAPResult {
        refusedAdvice("sharedpt.semantics.madvise_collapse", o, [("MADV_COLLAPSE", ptshare_MADV_COLLAPSE)])
    }

    /// KSM would replace pages under every sharer's PTEs.
    static func madviseMergeable(_ o: SuiteOptions) -> KTAPResult {
        refusedAdvice("sharedpt.semantics.madvise_mergeable", o, [("MADV_MERGEABLE", ptshare_MADV_MERGEABLE)])
    }

    /// MADV_REMOVE frees the range's backing store: zeroes for every sharer, the read-only
    /// mapper with tables of its own included, the rest intact.
    static func madviseRemove(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.madvise_remove", o) { f, c throws(SharedPTError) in
            _ = try zeroRange(f, &c, o, "the removed range") { s, a, lo, hi, c throws(SharedPTError) in
                c.succeeds(
                    "sharer 1 madvise(MADV_REMOVE) of [\(hex(lo)), \(hex(hi)))",
                    try s[1].call(PTSHARE_AGENT_MADVISE, addr: a[1] + lo, length: hi - lo, arg: ptshare_MADV_REMOVE))
            }
        }
    }

    /// MAP_FIXED over a 2 MiB-aligned part replaces that chunk (the rest and the other sharer
    /// keep the file's data, still shared); over a part that splits the mapping off the 2 MiB
    /// grid it works too, and the vma it splits leaves the shared tables.
    static func mapFixed(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.map_fixed", o, size: 6 << 20) { f, c throws(SharedPTError) in
            let (s, m) = try sharersWithData(f, 2, &c, o)
            let (a, b) = (m[0], m[1])
            let anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
            let r = try s[0].call(
                PTSHARE_AGENT_MAP, addr: a + chunk, length: chunk, arg: PROT_READ | PROT_WRITE, flags: anon)
            c.succeeds("sharer 0 maps anonymous memory MAP_FIXED over [2M, 4M)", r)
            try read(s[0], 0, a + chunk + 8, 0, &c)
            try check(s[0], 0, a, chunk, seed: 0x1000, &c)
            try check(s[0], 0, a + 2 * chunk, chunk, seed: 0x1000 + 2 * chunk / page, &c)
            try check(s[1], 1, b, f.size, seed: 0x1000, &c)
            census(
                [view(s[0], 0, a, length: chunk), view(s[1], 1, b, length: chunk)]
                    + [
                        view(s[0], 0, a + 2 * chunk, offset: 2 * chunk, length: chunk),
                        view(s[1], 1, b + 2 * chunk, offset: 2 * chunk, length: chunk),
                    ], &c, o)
            c.succeeds(
                "sharer 0 maps anonymous memory MAP_FIXED over [4M+4K, 4M+8K)",
                try s[0].call(
                    PTSHARE_AGENT_MAP, addr: a + 2 * chunk + page, length: page, arg: PROT_READ | PROT_WRITE,
                    flags: anon))
            try read(s[0], 0, a + 2 * chunk + page + 8, 0, &c)
            let base = 0x1000 + 2 * chunk / page
            try check(s[0], 0, a + 2 * chunk, page, seed: base, &c)
            try check(s[0], 0, a + 2 * chunk + 2 * page, chunk - 2 * page, seed: base + 2, &c)
            expectFlags(s[0], 0, a + 2 * chunk, shared: false, &c)
            expectFlags(s[0], 0, a, shared: true, &c)
            try check(s[1], 1, b, f.size, seed: 0x1000, &c)
            census([view(s[0], 0, a, length: chunk), view(s[1], 1, b, length: chunk)], &c, o)
        }
    }

    /// A sharer's CPU must not keep a translation through a shared table once a PTE in it is
    /// cleared. The reader, alone on CPU 0, spins on a page through its own TLB entry and never
    /// enters the kernel; the driver, on CPU 1, punches that page out of the file (the zap goes
    /// through the first sharer's vma, whose mm is not the reader's) and then raises a flag in a
    /// plain shared page; the reader's next load must see the hole's zero, not the old data of
    /// a page that was freed. Three rounds, on pages in both chunks.
    static func staleTLB(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.semantics.stale_tlb", o) { f, c throws(SharedPTError) in
            let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
            guard cpus >= 2 else {
                c.unproven("\(cpus) CPU online: the reader and the zapping driver need CPUs of their own")
                return
            }
            let flagFd = try f.scratch(size: page)
            let flagsInDriver: UInt64
            do throws(SystemCallError) {
                flagsInDriver = try Sys.mmap(
                    0, page, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: flagFd, offset: 0,
                    path: "memfd:ptshare-sharedpt-plain")
            } catch { throw .system(error) }
            defer { try? Sys.munmap(flagsInDriver, page) }
            let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(flagsInDriver))!
            // The zapper maps first: the rmap walk visits its vma first and clears the shared
            // PTE there, so only a broadcast reaches the reader's CPU.
            let s = try f.spawn(2)
            let z = try map(f, s[0], 0, &c, label: " (first in the file's i_mmap tree)")
            let r = try map(f, s[1], 1, &c)
            let fl = try s[1].call(
                PTSHARE_AGENT_MAP, length: page, arg: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: flagFd)
            guard c.succeeds("sharer 1 maps the flag page", fl) else { throw .stepFailed("flag page") }
            try fill(s[0], 0, z, f.size, seed: 0x1000, &c)
            try check(s[1], 1, r, f.size, seed: 0x1000, &c)
            census([view(s[0], 0, z, length: f.size), view(s[1], 1, r, length: f.size)], &c, o)
            guard c.succeeds("sharer 1 pins itself to CPU 0", try s[1].call(PTSHARE_AGENT_PIN_CPU, arg: 0)) else {
                throw .stepFailed("pin")
            }
            let saved: UInt64
            do throws(SystemCallError) { saved = try Sys.pinToCPU(1) } catch { throw .system(error) }
            defer { try? Sys.setCPUMask(saved) }
            c.note("the driver runs on CPU 1 (its mask was \(hex(saved)))")
            for pageIndex in [5, 300, 700] as [UInt64] {
                let off = pageIndex * page
                words[0] = 0
                words[1] = 0
                try s[1].send(PTSHARE_AGENT_SPIN_READ, addr: r + off, offset: fl.value, value: 1 << 40)
                let deadline = Sys.monotonicNanoseconds() + 30_000_000_000
                while words[0] == 0 && Sys.monotonicNanoseconds() < deadline { Sys.sleep(milliseconds: 1) }
                guard words[0] != 0 else {
                    c.expect(false, "round at page \(pageIndex): the reader did not start spinning within 30 s")
                    throw .stepFailed("spin")
                }
                Sys.sleep(milliseconds: 20)  // many loads through the cached translation
                try f.punchHole(offset: off, length: page)
                words[1] = 1
                let a = try s[1].receive(PTSHARE_AGENT_SPIN_READ)
                if !a.succeeded {
                    c.expect(false, "round at page \(pageIndex): the reader: \(Checks.describe(a))")
                    continue
                }
                c.expect(
                    a.value == 0,
                    "page \(pageIndex): before the punch the reader loaded \(hex(a.found)), after it \(hex(a.value))"
                        + (a.value == 0 ? "" : " (expected 0: a stale TLB entry to a freed page)"))
                try read(s[0], 0, z + off, 0, &c)
            }
        }
    }
}
