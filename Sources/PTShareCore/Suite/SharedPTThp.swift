import CPTShare
import Glibc

/// sharedpt.thp.*: the flag never loses to shmem THP. A chunk the page cache holds in a
/// PMD-sized folio is mapped by its PMD entry in every process, with no PTE table at all; the
/// chunks in small folios share one PTE table per chunk; one mapping holds both.
extension SharedPTSemantics {
    static let shmemEnabledPath = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

    static func writeSetting(_ path: String, _ value: String) throws(SystemCallError) {
        let fd = try Sys.open(path, O_WRONLY | O_CLOEXEC)
        defer { Sys.close(fd) }
        try Sys.write(fd, Array("\(value)\n".utf8), path: path)
    }

    /// ShmemPmdMapped of the mapping at `a` in `s` is `want`.
    static func expectPmdMapped(_ s: Sharer, _ i: Int, _ a: UInt64, _ want: UInt64, _ c: inout Checks) {
        do {
            guard let m = try ProcFS.smaps(s.pid).first(where: { $0.contains(a) }) else {
                c.expect(false, "sharer \(i): no mapping at \(hex(a)) in smaps")
                return
            }
            let got = m.fields["ShmemPmdMapped"] ?? 0
            c.expect(
                got == want,
                "sharer \(i)'s smaps: ShmemPmdMapped \(ByteSize(got))"
                    + (got == want ? "" : ", expected \(ByteSize(want))"))
        } catch {
            c.expect(false, "smaps of sharer \(i) (pid \(s.pid)): \(error)")
        }
    }

    /// An 8 MiB memfd whose chunks 0 and 2 are allocated with shmem THP on (`always`: PMD-sized
    /// folios) and 1 and 3 with it off (small folios), by fallocate from the driver; then three
    /// sharers map it with the flag, sharer 0 writes it all and the others read it. Each sharer
    /// maps chunks 0 and 2 by PMD (smaps ShmemPmdMapped 4 MiB), and the census finds one PTE
    /// table for all three in each of chunks 1 and 3; words written in either kind of chunk read
    /// back in the others. The setting is restored. Premise: the 4 MiB came in huge folios
    /// (meminfo ShmemHugePages), else SKIP.
    static func thpMixed(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.thp.mixed", o, size: 8 << 20) { f, c throws(SharedPTError) in
            let path = shmemEnabledPath
            let old: ThpSetting
            do {
                old = try ThpSetting.parse(try ProcFS.read(path), source: path)
            } catch {
                c.unproven("\(path) unreadable: \(error)")
                return
            }
            let fd = try f.scratch()
            let before = (try? ProcFS.meminfo())?.fields["ShmemHugePages"]
            do {
                try writeSetting(path, "always")
                defer { try? writeSetting(path, old.selected) }
                for k: UInt64 in [0, 2] { try Sys.fallocate(fd, offset: k * chunk, length: chunk, path: "memfd") }
                try writeSetting(path, "never")
                for k: UInt64 in [1, 3] { try Sys.fallocate(fd, offset: k * chunk, length: chunk, path: "memfd") }
            } catch {
                c.unproven("shmem THP cannot be switched on and off through \(path): \(error)")
                return
            }
            do {
                let now = try ProcFS.read(path)
                c.note("\(path) restored: \(now.trimmingWhitespace())")
            } catch { c.expect(false, "\(path) after the test: \(error)") }
            let after = (try? ProcFS.meminfo())?.fields["ShmemHugePages"]
            guard let b = before, let a = after, a >= b + 2 * chunk else {
                c.unproven(
                    "chunks 0 and 2 did not come in PMD-sized folios (ShmemHugePages \(before.map { ByteSize($0).description } ?? "?") "
                        + "then \(after.map { ByteSize($0).description } ?? "?")): nothing to PMD-map")
                return
            }
            c.note("premise: ShmemHugePages grew by \(ByteSize(a - b)) (chunks 0 and 2)")
            let s = try f.spawn(3)
            var addr: [UInt64] = []
            for i in s.indices { addr.append(try map(f, s[i], i, &c, fd: fd)) }
            try fill(s[0], 0, addr[0], f.size, seed: 0x1000, &c)
            for i in 1..<3 { try check(s[i], i, addr[i], f.size, seed: 0x1000, &c) }
            for i in s.indices {
                expectFlags(s[i], i, addr[i], shared: true, &c)
                expectPmdMapped(s[i], i, addr[i], 2 * chunk, &c)
            }
            for k: UInt64 in [1, 3] {
                census(s.indices.map { view(s[$0], $0, addr[$0] + k * chunk, offset: k * chunk, length: chunk) }, &c, o)
            }
            for k: UInt64 in [0, 1] {
                let word = k * chunk + 5 * page + 8
                try write(s[1], 1, addr[1] + word, 0x7_0000 + k, &c)
                try read(s[2], 2, addr[2] + word, 0x7_0000 + k, &c)
            }
        }
    }
}
