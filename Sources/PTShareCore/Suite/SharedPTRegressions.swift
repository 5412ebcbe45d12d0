import CPTShare
import Glibc

/// Tests of bugs a review found in the series, each failing on the kernel before its fix, and
/// the cost of the cross-sharer TLB flush.
extension SharedPTSemantics {
    /// The hint where the test asks for a mapping: high enough to be free in any process, low
    /// enough that mmap_min_addr just above it moves nothing else (4 TiB).
    static let hintBase: UInt64 = 0x400_0000_0000

    /// An aligned hint below vm.mmap_min_addr: round_hint_to_min() raises it to mmap_min_addr,
    /// 1 MiB off the grid. The kernel must then pick an aligned address (or refuse): v1 followed
    /// the rounded hint, and the first touch hit a WARN_ON_ONCE and SIGBUS. The sysctl is set for
    /// the one mmap call and restored; the kernel log must stay clean.
    static func hintRounding(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.hint_rounding", o, size: chunk) { f, c throws(SharedPTError) in
            let path = "/proc/sys/vm/mmap_min_addr"
            let old: UInt64
            do { old = try ProcFS.integer(path) } catch {
                c.unproven("\(path) unreadable: \(error)")
                return
            }
            let minAddr = hintBase + mib
            let s = try f.spawn(1)[0]
            let log = KernelLog.open()
            do { try writeSysctl(path, minAddr) } catch {
                c.unproven("\(path) cannot be set to \(hex(minAddr)) (\(error)): the rounding cannot be provoked")
                return
            }
            c.note("\(path) set to \(hex(minAddr)) (was \(hex(old)))")
            let r: SharerReply
            do throws(SharedPTError) {
                r = try s.call(
                    PTSHARE_AGENT_MAP, addr: hintBase, length: chunk, arg: PROT_READ | PROT_WRITE, flags: f.flags(0),
                    fd: f.fd)
            } catch {
                try? writeSysctl(path, old)
                throw error
            }
            do { try writeSysctl(path, old) } catch { c.expect(false, "\(path) not restored to \(hex(old)): \(error)") }
            let what = "sharer 0 maps 2 MiB with the flag, hint \(hex(hintBase)) (rounded up to \(hex(minAddr)))"
            if r.error == EINVAL {
                c.expect(true, "\(what): EINVAL")
            } else if c.succeeds(what, r) {
                let aligned = r.value % chunk == 0
                c.expect(
                    aligned && r.value >= minAddr,
                    "\(what): at \(hex(r.value))"
                        + (aligned ? "" : ", off the 2 MiB grid") + (r.value >= minAddr ? "" : ", below mmap_min_addr"))
                try fill(s, 0, r.value, chunk, seed: 0x1000, &c)
                try check(s, 0, r.value, chunk, seed: 0x1000, &c)
                expectFlags(s, 0, r.value, shared: true, &c)
            }
            let problems = log.problems()
            c.expect(
                problems.isEmpty,
                "kernel log since the mmap: " + (problems.isEmpty ? "clean" : problems.joined(separator: " | ")))
        }
    }

    /// pt_share_count is an atomic_t: a table takes a bounded number of sharers, and a fault
    /// that finds only full tables starts a new one. The kernel's cap (INT_MAX) cannot be
    /// reached in a test; debugfs lowers it to 2 extra sharers, and six sharers must then use
    /// two tables per chunk, three sharers each (v1 had no cap: one table, and a count that
    /// could wrap). The knob is restored afterwards.
    static func saturation(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.saturation", o) { f, c throws(SharedPTError) in
            let path = "/sys/kernel/debug/ptshare_max_sharers"
            let old: UInt64
            do { old = try ProcFS.integer(path) } catch {
                c.unproven("\(path) unreadable (\(error)): this kernel has no cap to lower")
                return
            }
            do { try writeSysctl(path, 2) } catch {
                c.unproven("\(path) cannot be set (\(error)): the cap cannot be tested")
                return
            }
            defer { try? writeSysctl(path, old) }
            c.note("\(path) set to 2 (was \(old)): a table takes its creator and 2 more")
            let s = try f.spawn(6)
            var a: [UInt64] = []
            for i in s.indices { a.append(try map(f, s[i], i, &c)) }
            try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
            for i in 1..<s.count { try check(s[i], i, a[i], f.size, seed: 0x1000, &c) }
            census(s.indices.map { view(s[$0], $0, a[$0], length: f.size) }, &c, o, .atMostPerTable(3))
            try write(s[5], 5, a[5] + 3 * page + 16, 0x5A7, &c)
            try read(s[0], 0, a[0] + 3 * page + 16, 0x5A7, &c)
        }
    }

    static func writeSysctl(_ path: String, _ value: UInt64) throws(SystemCallError) {
        try Sys.writeFile(path, "\(value)")
    }

    /// The cost of one hole punch against the number of sharers. The punch clears one PTE (the
    /// first sharer the rmap walk visits zaps it in the shared table); every other sharer's TLB
    /// must be flushed, but only on the CPUs that run it, which for sleeping sharers is none. v1
    /// sent a machine-wide flush per sharer visited. Bound: the function call IPIs the punches
    /// cause (/proc/interrupts CAL, which carries every cross-CPU flush) stay under one per CPU
    /// per punch at `scaleSharers` sharers, as at one. The time per punch is reported beside the same punch on a plain MAP_SHARED
    /// mapping with as many mappers, whose rmap walk has as many vmas to visit.
    static let scaleSharers = 64
    static let scalePunches = 16

    static func scaleTruncate(_ o: SuiteOptions) -> KTAPResult {
        run("sharedpt.scale.truncate", o) { f, c throws(SharedPTError) in
            let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            guard IPICounts.read() != nil else {
                c.unproven("/proc/interrupts has no CAL and TLB rows (not x86, or not SMP): no bound to check")
                return
            }
            let plain = try f.scratch()
            var rows: [String] = []
            var flagged: [Int: Double] = [:]
            for n in [1, scaleSharers] {
                for shared in [true, false] {
                    let s = try f.spawn(n)
                    var a: [UInt64] = []
                    // Quiet: one line per failure, not one per sharer.
                    for i in s.indices {
                        let r = try s[i].call(
                            PTSHARE_AGENT_MAP, length: f.size, arg: PROT_READ | PROT_WRITE,
                            flags: shared ? f.flags(i) : MAP_SHARED, fd: shared ? f.fd : plain)
                        guard r.succeeded, !shared || r.value % chunk == 0 else {
                            c.expect(
                                false,
                                "sharer \(i) maps the \(shared ? "flagged" : "plain") memfd: \(Checks.describe(r))")
                            throw .stepFailed("map")
                        }
                        a.append(r.value)
                    }
                    let fd = shared ? f.fd : plain
                    // Every page written, then read by every sharer: all PTEs present.
                    try fill(s[0], 0, a[0], f.size, seed: 0x1000, &c)
                    for i in s.indices {
                        let r = try s[i].call(PTSHARE_AGENT_CHECK, addr: a[i], length: f.size, value: 0x1000)
                        if !r.succeeded { c.intact("sharer \(i) reads \(ByteSize(f.size))", r, seed: 0x1000) }
                    }
                    if shared && n > 1 { census(s, a, length: f.size, &c, o) }
                    let before = IPICounts.read() ?? IPICounts(call: 0, tlb: 0)
                    let t0 = Sys.monotonicNanoseconds()
                    for k in 0..<scalePunches {
                        do throws(SystemCallError) {
                            try Sys.punchHole(fd, offset: UInt64(k) * 8 * page + page, length: page, path: "memfd")
                        } catch { throw .system(error) }
                    }
                    let ns = Double(Sys.monotonicNanoseconds() - t0) / Double(scalePunches)
                    let after = IPICounts.read() ?? before
                    let calls = Double(after.call &- before.call) / Double(scalePunches)
                    let tlbs = Double(after.tlb &- before.tlb) / Double(scalePunches)
                    for i in s.indices { try s[i].exit() }
                    rows.append(
                        "\(shared ? "MAP_SHARED_PT" : "plain MAP_SHARED") x \(n): "
                            + "\(formatFixed(ns / 1000, decimals: 1)) us, \(formatFixed(calls, decimals: 2)) "
                            + "function call IPIs (\(formatFixed(tlbs, decimals: 2)) of them TLB shootdowns) per punch")
                    if shared { flagged[n] = calls }
                }
            }
            for r in rows { c.note(r) }
            let bound = Double(cpus)
            let at = flagged[scaleSharers] ?? .infinity
            c.expect(
                at <= bound,
                "function call IPIs per punch at \(scaleSharers) sharers: \(formatFixed(at, decimals: 2)) "
                    + "(bound: \(cpus), one per CPU; at 1 sharer \(formatFixed(flagged[1] ?? 0, decimals: 2)))")
        }
    }
}

/// Per-CPU interrupt counts summed from /proc/interrupts rows: `CAL` (function call IPIs, which
/// carry every cross-CPU TLB flush on x86, targeted or `flush_tlb_all()`) and `TLB` (the
/// targeted shootdowns among them).
struct IPICounts: Equatable {
    var call: UInt64
    var tlb: UInt64

    static func read() -> IPICounts? {
        guard let text = try? ProcFS.read("/proc/interrupts") else { return nil }
        return parse(text)
    }

    /// Pure: both rows, nil unless both are there.
    static func parse(_ text: String) -> IPICounts? {
        guard let call = row(text, "CAL:"), let tlb = row(text, "TLB:") else { return nil }
        return IPICounts(call: call, tlb: tlb)
    }

    /// Pure: the sum of the per-CPU counts on the row labelled `label`, nil without one.
    static func row(_ text: String, _ label: String) -> UInt64? {
        for line in text.split(separator: "\n") {
            let t = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = t.first, first == label else { continue }
            var sum: UInt64 = 0
            for w in t.dropFirst() {
                guard let v = UInt64(w) else { break }
                sum += v
            }
            return sum
        }
        return nil
    }
}
