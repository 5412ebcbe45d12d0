import CPTShare
import Glibc

/// sharedpt.thp.*: the flag never loses to shmem THP. A chunk the page cache holds in a
/// PMD-sized folio is mapped by its PMD entry in every process, with no PTE table at all; the
/// chunks in small folios share one PTE table per chunk; one mapping holds both.
extension SharedPTSemantics {
    static let shmemEnabledPath = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

    /// ShmemPmdMapped of the mapping at `a` in `s` is `want`.
    static func expectPmdMapped(_ s: Sharer, _ i: Int, _ a: UInt64, _ want: UInt64, _ c: inout Checks) {
        guard let m = smapsEntry(s, i, a, &c) else { return }
        let got = m.fields["ShmemPmdMapped"] ?? 0
        c.expect(
            got == want,
            "sharer \(i)'s smaps: ShmemPmdMapped \(ByteSize(got))" + (got == want ? "" : ", expected \(ByteSize(want))")
        )
    }

    /// A 10 MiB memfd whose chunks 0 and 2 are allocated with shmem THP on (`always`: PMD-sized
    /// folios) and 1 and 3 with it off (small folios), by fallocate from the driver; chunk 4 is
    /// left empty. Then, with THP on again, three sharers map it with the flag, sharer 0 writes it
    /// all (its fault in empty chunk 4 must get a PMD-sized folio and map it by PMD, not attach a
    /// table first) and the others read it. Each sharer maps chunks 0, 2 and 4 by PMD (smaps
    /// ShmemPmdMapped 6 MiB), and the census finds one PTE table for all three in each of chunks
    /// 1 and 3; words written in either kind of chunk read back in the others. The setting is
    /// restored. Premise: the huge folios were allocated (meminfo ShmemHugePages), else SKIP.
    static func thpMixed(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.thp.mixed", o, size: 10 << 20) { f, c throws(SharedPTError) in
            let path = shmemEnabledPath
            let old: ThpSetting
            do {
                old = try ThpSetting.parse(try ProcFS.read(path), source: path)
            } catch {
                c.unproven("\(path) unreadable: \(error)")
                return
            }
            let fd = try f.scratch()
            let hugeBytes = { (try? ProcFS.meminfo())?.fields["ShmemHugePages"] }
            let before = hugeBytes()
            do {
                try Sys.writeFile(path, "always")
                defer { try? Sys.writeFile(path, old.selected) }
                for k: UInt64 in [0, 2] { try Sys.fallocate(fd, offset: k * chunk, length: chunk, path: "memfd") }
                try Sys.writeFile(path, "never")
                for k: UInt64 in [1, 3] { try Sys.fallocate(fd, offset: k * chunk, length: chunk, path: "memfd") }
            } catch {
                c.unproven("shmem THP cannot be switched on and off through \(path): \(error)")
                return
            }
            let after = hugeBytes()
            guard let b = before, let a = after, a >= b + 2 * chunk else {
                c.unproven(
                    "chunks 0 and 2 did not come in PMD-sized folios (ShmemHugePages "
                        + "\(before.map { ByteSize($0).description } ?? "?") then "
                        + "\(after.map { ByteSize($0).description } ?? "?")): nothing to PMD-map")
                return
            }
            c.note("premise: ShmemHugePages grew by \(ByteSize(a - b)) (chunks 0 and 2)")
            let s = try f.spawn(3)
            var addr: [UInt64] = []
            for i in s.indices { addr.append(try map(f, s[i], i, &c, fd: fd)) }
            do { try Sys.writeFile(path, "always") } catch {
                c.unproven("\(path) cannot be set to always again: \(error)")
                return
            }
            do {
                defer { try? Sys.writeFile(path, old.selected) }
                try fill(s[0], 0, addr[0], f.size, seed: 0x1000, &c)
            }
            do {
                let now = try ProcFS.read(path)
                c.note("\(path) restored: \(now.trimmingWhitespace())")
            } catch { c.expect(false, "\(path) after the test: \(error)") }
            let faulted = (hugeBytes() ?? 0) >= a + chunk
            c.note(
                "chunk 4, faulted with THP on: "
                    + (faulted ? "a PMD-sized folio" : "no PMD-sized folio to be had (small folios, a shared table)"))
            for i in 1..<3 { try check(s[i], i, addr[i], f.size, seed: 0x1000, &c) }
            let pmdMapped = (faulted ? 3 : 2) * chunk
            for i in s.indices {
                expectFlags(s[i], i, addr[i], shared: true, &c)
                expectPmdMapped(s[i], i, addr[i], pmdMapped, &c)
            }
            for k: UInt64 in [1, 3] {
                census(s.indices.map { view(s[$0], $0, addr[$0] + k * chunk, offset: k * chunk, length: chunk) }, &c, o)
            }
            for k: UInt64 in [0, 1, 4] {
                let word = k * chunk + 5 * page + 8
                try write(s[1], 1, addr[1] + word, 0x7_0000 + k, &c)
                try read(s[2], 2, addr[2] + word, 0x7_0000 + k, &c)
            }
        }
    }
}
