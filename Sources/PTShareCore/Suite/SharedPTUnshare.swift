import CPTShare
import Glibc

/// sharedpt.unshare.*: what one process does that only it should see (a protection, a lock,
/// userfaultfd, a boundary off the 2 MiB grid) succeeds, and that process leaves the shared
/// tables for tables of its own (ptshare_unshare()) while the others keep sharing. Each test
/// proves all three: the call's answer, smaps (`sp` gone from the diverging vma, kept by the
/// others) and a census (the others one table per chunk, the diverging one apart), with the
/// data coherent through the one page cache.
extension SharedPTSemantics {
    /// The smaps entry of the mapping that holds `addr` in sharer `i`; nil, with a failed check
    /// saying why, when smaps cannot be read or has no such mapping.
    static func smapsEntry(_ s: Sharer, _ i: Int, _ addr: UInt64, _ c: inout Checks) -> SmapsEntry? {
        do {
            guard let e = try ProcFS.smaps(s.pid).first(where: { $0.contains(addr) }) else {
                c.expect(false, "sharer \(i): no mapping at \(hex(addr)) in smaps")
                return nil
            }
            return e
        } catch {
            c.expect(false, "smaps of sharer \(i) (pid \(s.pid)): \(error)")
            return nil
        }
    }

    /// The vma at `addr` has `sp` (`shared`) or not, and every flag of `with`.
    static func expectFlags(
        _ s: Sharer, _ i: Int, _ addr: UInt64, shared: Bool, with: [String] = [], _ c: inout Checks
    ) {
        guard let f = smapsEntry(s, i, addr, &c)?.vmFlags else { return }
        let sp = f.contains("sp")
        let missing = with.filter { !f.contains($0) }
        c.expect(
            sp == shared && missing.isEmpty,
            "sharer \(i)'s mapping at \(hex(addr)): VmFlags \(f.joined(separator: " "))"
                + (sp == shared ? "" : shared ? " (no sp: not sharing)" : " (still sp: not unshared)")
                + (missing.isEmpty ? "" : " (without \(missing.joined(separator: ", ")))"))
    }

    /// After sharer `d` diverged: it no longer shares (no `sp`, flags `with`), every other
    /// sharer still does; each reads the file's data (seed 0x1000) over `length` at its
    /// address, `d` included when `readable`; a word another sharer writes is what `d` reads
    /// (one page cache); and the census finds one table per chunk among the others, none of it
    /// shared with `d`, which refaulted into tables of its own.
    static func expectUnshared(
        _ f: SharedPTFixture, _ s: [Sharer], _ a: [UInt64], diverged d: Int, length: UInt64? = nil,
        with: [String] = [], readable: Bool = true, _ c: inout Checks, _ o: SuiteOptions
    ) throws(SharedPTError) {
        let len = length ?? f.size
        let others = s.indices.filter { $0 != d }
        expectFlags(s[d], d, a[d], shared: false, with: with, &c)
        for i in others { expectFlags(s[i], i, a[i], shared: true, &c) }
        for i in s.indices where i != d || readable { try check(s[i], i, a[i], len, seed: 0x1000, &c) }
        let w = others[0]
        let word = 3 * page + 16
        try write(s[w], w, a[w] + word, 0xD1_5C0DE, &c)
        if readable { try read(s[d], d, a[d] + word, 0xD1_5C0DE, &c) }
        census(others.map { view(s[$0], $0, a[$0], length: len) }, &c, o)
        if readable {
            census([view(s[d], d, a[d], length: len), view(s[w], w, a[w], length: len)], &c, o, .separateTables)
        }
    }

    /// Soft-dirty tracking (`echo 4 > /proc/PID/clear_refs`, written by the driver, as CRIU
    /// does) write-protects the process's PTEs and changes its vma's vm_page_prot, which would
    /// be every sharer's: it unshares that process. After it, the others still share, its own
    /// writes work (and mark the pages soft-dirty again: pagemap bit 55), and the data stays
    /// one page cache. SKIP without /proc/PID/clear_refs (CONFIG_PROC_PAGE_MONITOR) or where
    /// soft-dirty is not compiled (CONFIG_MEM_SOFT_DIRTY: the write is accepted but does
    /// nothing, which pagemap shows as a page never soft-dirty).
    static func unshareSoftDirty(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.unshare.soft_dirty", o) { f, c throws(SharedPTError) in
            let (s, a) = try sharersWithData(f, 3, &c, o)
            let path = "/proc/\(s[1].pid)/clear_refs"
            guard ProcFS.exists(path) else {
                c.unproven("no \(path) (CONFIG_PROC_PAGE_MONITOR)")
                return
            }
            do { try Sys.writeFile(path, "4") } catch {
                c.expect(false, "4 > \(path): \(error)")
                return
            }
            c.note("4 > \(path): sharer 1's soft-dirty bits cleared")
            try write(s[1], 1, a[1] + 2 * page, 0x50F7, &c)
            do {
                let e = try ProcFS.pagemap(s[1].pid, address: a[1] + 2 * page, count: 1)
                guard e[0].softDirty else {
                    c.unproven(
                        "sharer 1's written page is not soft-dirty: no soft-dirty tracking (CONFIG_MEM_SOFT_DIRTY)")
                    return
                }
                c.note("sharer 1's written page is soft-dirty again (pagemap)")
            } catch {
                c.expect(false, "pagemap of sharer 1: \(error)")
            }
            try read(s[0], 0, a[0] + 2 * page, 0x50F7, &c)
            try write(s[0], 0, a[0] + 2 * page, 0x1000 + 2, &c)
            try expectUnshared(f, s, a, diverged: 1, &c, o)
        }
    }

    /// mprotect to another protection succeeds and unshares: sharer 0 read-only over the whole
    /// mapping (its writes fault, its reads see the others' writes), sharer 1 PROT_NONE on one
    /// page (a split off the grid too); mprotect to the same protection keeps sharing.
    static func unshareMprotect(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.unshare.mprotect", o) { f, c throws(SharedPTError) in
            let (s, a) = try sharersWithData(f, 4, &c, o)
            c.succeeds(
                "sharer 2 mprotect PROT_READ | PROT_WRITE (unchanged)",
                try s[2].call(PTSHARE_AGENT_MPROTECT, addr: a[2], length: f.size, arg: PROT_READ | PROT_WRITE))
            expectFlags(s[2], 2, a[2], shared: true, &c)
            c.succeeds(
                "sharer 0 mprotect PROT_READ on the whole mapping",
                try s[0].call(PTSHARE_AGENT_MPROTECT, addr: a[0], length: f.size, arg: PROT_READ))
            let w = try s[0].call(PTSHARE_AGENT_WRITE, addr: a[0] + 8, value: 0xBAD)
            c.expect(
                w.signal == SIGSEGV,
                "sharer 0 writes to its read-only mapping: \(Checks.describe(w))"
                    + (w.signal == SIGSEGV ? "" : ", expected SIGSEGV"))
            c.succeeds(
                "sharer 1 mprotect PROT_NONE on one page at 4K",
                try s[1].call(PTSHARE_AGENT_MPROTECT, addr: a[1] + page, length: page, arg: PROT_NONE))
            let r = try s[1].call(PTSHARE_AGENT_READ, addr: a[1] + page)
            c.expect(
                r.signal == SIGSEGV,
                "sharer 1 reads its PROT_NONE page: \(Checks.describe(r))"
                    + (r.signal == SIGSEGV ? "" : ", expected SIGSEGV"))
            expectFlags(s[1], 1, a[1], shared: false, &c)
            try check(s[1], 1, a[1] + 2 * page, f.size - 2 * page, seed: 0x1000 + 2, &c)
            try expectUnshared(
                f, [s[0], s[2], s[3]], [a[0], a[2], a[3]], diverged: 0, with: ["rd"], &c, o)
        }
    }

    /// mlock and mlock2(MLOCK_ONFAULT) succeed and unshare the locking sharer; MAP_LOCKED with
    /// the flag maps, locked and unshared.
    static func unshareMlock(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.unshare.mlock", o) { f, c throws(SharedPTError) in
            var (s, a) = try sharersWithData(f, 4, &c, o)
            c.succeeds("sharer 0 mlock", try s[0].call(PTSHARE_AGENT_MLOCK, addr: a[0], length: f.size))
            c.succeeds(
                "sharer 1 mlock2(MLOCK_ONFAULT)",
                try s[1].call(PTSHARE_AGENT_MLOCK, addr: a[1], length: f.size, arg: ptshare_MLOCK_ONFAULT))
            expectFlags(s[1], 1, a[1], shared: false, with: ["lo"], &c)
            try check(s[1], 1, a[1], f.size, seed: 0x1000, &c)
            let l = try f.spawn(1)[0]
            let r = try l.call(
                PTSHARE_AGENT_MAP, length: f.size, arg: PROT_READ | PROT_WRITE,
                flags: f.flags(0) | ptshare_MAP_LOCKED, fd: f.fd)
            if c.succeeds("sharer 4 maps with the flag and MAP_LOCKED", r) {
                expectFlags(l, 4, r.value, shared: false, with: ["lo"], &c)
                try check(l, 4, r.value, f.size, seed: 0x1000, &c)
            }
            s.remove(at: 1)
            a.remove(at: 1)
            try expectUnshared(f, s, a, diverged: 0, with: ["lo"], &c, o)
        }
    }

    /// mlockall(MCL_CURRENT) locks and unshares the existing mapping; under MCL_FUTURE a new
    /// mapping with the flag maps, locked and never shared, while the other sharers share.
    static func unshareMlockall(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.unshare.mlockall", o) { f, c throws(SharedPTError) in
            var (s, a) = try sharersWithData(f, 4, &c, o)
            c.succeeds(
                "sharer 0 mlockall(MCL_CURRENT)", try s[0].call(PTSHARE_AGENT_MLOCKALL, arg: ptshare_MCL_CURRENT))
            c.succeeds(
                "sharer 1 munmap of its mapping",
                try s[1].call(PTSHARE_AGENT_UNMAP, addr: a[1], length: f.size))
            c.succeeds(
                "sharer 1 mlockall(MCL_FUTURE)", try s[1].call(PTSHARE_AGENT_MLOCKALL, arg: ptshare_MCL_FUTURE))
            let r = try s[1].call(
                PTSHARE_AGENT_MAP, length: f.size, arg: PROT_READ | PROT_WRITE, flags: f.flags(1), fd: f.fd)
            if c.succeeds("sharer 1 maps with the flag under MCL_FUTURE", r) {
                expectFlags(s[1], 1, r.value, shared: false, with: ["lo"], &c)
                try check(s[1], 1, r.value, f.size, seed: 0x1000, &c)
                census(
                    [view(s[1], 1, r.value, length: f.size), view(s[2], 2, a[2], length: f.size)], &c, o,
                    .separateTables)
            }
            s.remove(at: 1)
            a.remove(at: 1)
            try expectUnshared(f, s, a, diverged: 0, with: ["lo"], &c, o)
        }
    }

    /// userfaultfd registration succeeds and unshares (a fault in a shared table would be
    /// resolved for every sharer). Premise: registering a plain mapping works, else the kernel
    /// has no userfaultfd for us and the test ends as SKIP with the reason.
    static func unshareUserfaultfd(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.unshare.userfaultfd", o) { f, c throws(SharedPTError) in
            let plain = try f.scratch()
            let (s, a) = try sharersWithData(f, 3, &c, o)
            let p = try s[0].call(
                PTSHARE_AGENT_MAP, length: f.size, arg: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: plain)
            guard c.succeeds("sharer 0 maps another memfd without the flag (the premise)", p) else {
                throw .stepFailed("plain mapping")
            }
            let steps = ["", "userfaultfd()", "UFFDIO_API", "UFFDIO_REGISTER"]
            let r = try s[0].call(PTSHARE_AGENT_UFFD_REGISTER, addr: p.value, length: f.size)
            if r.error != 0 {
                c.unproven(
                    "userfaultfd on a plain mapping fails at \(steps[Int(min(r.value, 3))]): \(Checks.describe(r)) "
                        + "(CONFIG_USERFAULTFD off, or vm.unprivileged_userfaultfd): unsharing cannot be shown")
                return
            }
            c.note("premise: userfaultfd registration of the plain mapping: ok")
            let q = try s[0].call(PTSHARE_AGENT_UFFD_REGISTER, addr: a[0], length: f.size)
            c.expect(
                q.error == 0,
                "sharer 0 registers its MAP_SHARED_PT mapping: "
                    + (q.error == 0 ? "ok" : "\(steps[Int(min(q.value, 3))]): \(Checks.describe(q))"))
            // The agent closed the userfaultfd, which unregistered the range (no `um` left): the
            // vma stays unshared, and never joins a shared table again.
            try expectUnshared(f, s, a, diverged: 0, &c, o)
        }
    }

    /// A boundary off the 2 MiB grid unshares the vma instead of being refused: sharer 0 unmaps
    /// one page at 4K (a split), sharer 1 marks [2M+4K, 4M) MADV_DONTDUMP (a split and a merge
    /// that puts a boundary there); both keep the rest of their data, and their later exit frees
    /// nothing the others still map through.
    static func unshareSplit(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.unshare.split", o, size: 8 << 20) { f, c throws(SharedPTError) in
            var (s, a) = try sharersWithData(f, 4, &c, o)
            c.succeeds(
                "sharer 0 munmap of one page at 4K", try s[0].call(PTSHARE_AGENT_UNMAP, addr: a[0] + page, length: page)
            )
            let r = try s[0].call(PTSHARE_AGENT_READ, addr: a[0] + page)
            c.expect(
                r.signal == SIGSEGV,
                "sharer 0 reads the unmapped page: \(Checks.describe(r))"
                    + (r.signal == SIGSEGV ? "" : ", expected SIGSEGV"))
            try check(s[0], 0, a[0] + 2 * page, f.size - 2 * page, seed: 0x1000 + 2, &c)
            expectFlags(s[0], 0, a[0], shared: false, &c)
            expectFlags(s[0], 0, a[0] + 2 * page, shared: false, &c)
            c.succeeds(
                "sharer 1 madvise(MADV_DONTDUMP) on [2M+4K, 4M)",
                try s[1].call(
                    PTSHARE_AGENT_MADVISE, addr: a[1] + chunk + page, length: chunk - page, arg: ptshare_MADV_DONTDUMP))
            expectFlags(s[1], 1, a[1] + chunk + page, shared: false, with: ["dd"], &c)
            try check(s[1], 1, a[1], f.size, seed: 0x1000, &c)
            census(
                [view(s[0], 0, a[0] + chunk, offset: chunk, length: f.size - chunk)]
                    + [view(s[2], 2, a[2] + chunk, offset: chunk, length: f.size - chunk)], &c, o, .separateTables)
            try s[0].exit()
            c.note("sharer 0 (pid \(s[0].pid)) exited and was reaped")
            s.remove(at: 0)
            a.remove(at: 0)
            // Sharer 1 (now 0) has three vmas; the one at its start shows the whole picture.
            try expectUnshared(f, s, a, diverged: 0, &c, o)
        }
    }

    /// A process that gets an MMU notifier (here a KVM VM, as a hypervisor's does) leaves the
    /// shared tables: its secondary MMU would not hear of a PTE another sharer clears. The
    /// others keep sharing; a later mapping with the flag in that process maps, unshared.
    /// Premise: /dev/kvm creates a VM (the patched flavours build KVM_AMD; QEMU's TCG `max`
    /// CPU has SVM); where it cannot, the test ends as SKIP with the reason.
    static func unshareNotifier(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.unshare.notifier", o) { f, c throws(SharedPTError) in
            let (s, a) = try sharersWithData(f, 3, &c, o)
            let r = try s[0].call(PTSHARE_AGENT_KVM_VM)
            if r.error != 0 {
                let step = r.value == 1 ? "open /dev/kvm" : "KVM_CREATE_VM"
                c.unproven("\(step): \(Checks.describe(r)): no MMU notifier can be registered here")
                return
            }
            c.note("sharer 0 created a KVM VM: its mm has an MMU notifier")
            try expectUnshared(f, s, a, diverged: 0, &c, o)
            let m = try s[0].call(
                PTSHARE_AGENT_MAP, length: f.size, arg: PROT_READ | PROT_WRITE, flags: f.flags(0), fd: f.fd)
            if c.succeeds("sharer 0 maps again with the flag", m) {
                expectFlags(s[0], 0, m.value, shared: false, &c)
                try check(s[0], 0, m.value, f.size, seed: 0x1000, &c)
            }
        }
    }
}
