import CPTShare
import Glibc

/// sharedpt.stress: for `stressSeconds`, `processes` forked stress processes (the C shim's
/// `ptshare_stress_main`) map an 8 MiB memfd with MAP_SHARED_PT at varying 2 MiB-aligned
/// offsets, write their own word in every page, check every other process's word, fork checking
/// children, unmap (sometimes in aligned pieces), exit and are respawned, while one process
/// shrinks the file to a floor and back and punches holes above it. A word names its writer,
/// page and generation; a reader refuses one its writer never wrote (another page's, a
/// generation not yet published, one older than it saw before). Every few seconds the driver
/// stops them all and takes a table census: views of a chunk must share its one PTE table.
/// Any refusal, unexpected SIGBUS, death or failed census fails the test, and so does a BUG,
/// WARNING or lockdep report in the kernel log.
enum SharedPTStress {
    static let fileSize: UInt64 = 8 << 20
    static let floor: UInt64 = 4 << 20
    static let processes = 32
    /// Rounds a process runs before it exits and is respawned.
    static let iterations: UInt32 = 24
    /// Longest time between two censuses.
    static let censusEvery: UInt64 = 5_000_000_000
    /// Least number of stop rounds (and, with the module, censuses) a run must take.
    static let minimumRounds = 3
    /// How long a stress process may take to stop after SIGSTOP.
    static let stopTimeout: UInt64 = 30_000_000_000

    /// Pure: the time between two stop rounds, a quarter of the run at most, so that a run
    /// takes at least three.
    static func roundInterval(seconds: Int) -> UInt64 {
        min(censusEvery, UInt64(seconds) * 1_000_000_000 / 4)
    }

    /// What one stop round saw: the stress processes' views of the file and, with the module,
    /// the census of their PTE tables.
    struct Round: Sendable, Equatable {
        var views: Int
        var census: TableCensus?
        /// Views not 2 MiB-aligned in address, file offset or length, which MAP_SHARED_PT's are.
        var misaligned: [String] = []
        /// How long the processes were stopped (time the storm did not run).
        var stoppedNanoseconds: UInt64 = 0
        /// Of that, the wait from the first SIGSTOP until the last process was in state T.
        var stoppingNanoseconds: UInt64 = 0
    }

    /// The totals of the reports received.
    struct Tally: Sendable, Equatable {
        var reports = 0
        var iterations: UInt64 = 0
        var truncations: UInt64 = 0
        var sigbus: UInt64 = 0
        var forks: UInt64 = 0
        var failures: [String] = []
        var rounds: [Round] = []
        /// Under `Pressure`: compactions triggered, migrate_pages calls made, and pages they
        /// could not move.
        var reclaims = 0
        var compactions = 0
        var migrations = 0
        var unmovedPages = 0
        /// Pressure ticks that found the last pressure round still running.
        var pressureSkipped = 0

        /// Adds one pressure round's result; what went wrong becomes a failure line.
        mutating func add(_ r: ptshare_squeeze_result, cgroup: String) {
            // EAGAIN: less could be reclaimed (the pages were in use), not an error.
            if r.reclaim_errno == 0 || r.reclaim_errno == EAGAIN {
                reclaims += 1
            } else {
                failures.append("\(SystemCallError("write", errno: r.reclaim_errno, path: "\(cgroup)/memory.reclaim"))")
            }
            if r.compact_errno == 0 {
                compactions += 1
            } else {
                failures.append(
                    "\(SystemCallError("write", errno: r.compact_errno, path: "/proc/sys/vm/compact_memory"))")
            }
            if r.migrate_errno != 0 {
                failures.append(
                    "\(SystemCallError("migrate_pages", errno: r.migrate_errno, value: "stress process pid \(r.pid)"))")
            } else if r.pid > 0 {
                migrations += 1
                unmovedPages += Int(r.unmoved)
            }
        }
    }

    /// sharedpt.pressure.stress: the storm's processes in a cgroup the driver makes reclaim
    /// half the file (memory.reclaim: swap-outs from under the shared tables), then compacts
    /// memory and moves one stress process's pages to the other node (migrate_pages(2) as root
    /// moves the shared file's pages too), every `every` nanoseconds.
    struct Pressure {
        let cgroup: TestCgroup
        /// At most 64 nodes, 0-63 (`init` refuses others): masks of one word.
        let nodes: [Int]
        let every: UInt64 = 2_000_000_000

        init?(cgroup: TestCgroup, nodes: [Int]) {
            guard !nodes.isEmpty && nodes.allSatisfy({ (0..<64).contains($0) }) else { return nil }
            self.cgroup = cgroup
            self.nodes = nodes
        }

        var mask: UInt64 { nodes.reduce(0) { $0 | UInt64(1) << $1 } }
    }

    /// Adds one report; a report of an error becomes a failure line naming what was wrong.
    static func add(_ r: ptshare_stress_report, truncator: UInt32, to t: inout Tally) {
        t.reports += 1
        if r.slot == truncator {
            t.truncations += r.iterations
        } else if r.in_child == 0 {
            t.iterations += r.iterations
            t.sigbus += r.sigbus
            t.forks += r.forks
        }
        if let line = describe(r) { t.failures.append(line) }
    }

    /// nil for a clean report; else what went wrong, as a sentence.
    static func describe(_ r: ptshare_stress_report) -> String? {
        let who = "process \(r.slot) (pid \(r.pid)\(r.in_child != 0 ? ", a forked child" : ""))"
        let at = "file offset \(hex(r.offset)): found \(hex(r.found)), expected \(hex(r.expected))"
        let e = "\(ErrnoName.of(r.err_no)) (errno \(r.err_no))"
        switch ptshare_stress_error(rawValue: r.error) {
        case PTSHARE_STRESS_OK: return nil
        case PTSHARE_STRESS_MMAP: return "\(who): mmap with MAP_SHARED_PT failed: \(e)"
        case PTSHARE_STRESS_MUNMAP: return "\(who): munmap failed: \(e)"
        case PTSHARE_STRESS_FOREIGN:
            let page = r.offset / Geometry.page
            return
                "\(who): refused the word at file offset \(hex(r.offset)) (page \(page), word \((r.offset % Geometry.page) / 8)), "
                + "\(hex(r.found)): \(refusal(r))"
        case PTSHARE_STRESS_OWN: return "\(who): its own word lost the value it wrote last: \(at)"
        case PTSHARE_STRESS_FORK: return "\(who): fork or setup failed: \(e)"
        case PTSHARE_STRESS_SIGBUS:
            return "\(who): SIGBUS at \(hex(r.offset)), below the floor \(hex(floor)) that is never truncated"
        case PTSHARE_STRESS_TRUNCATE: return "\(who): ftruncate/fallocate failed: \(e)"
        case PTSHARE_STRESS_SIGSEGV:
            return
                "\(who): \(WorkerPool.signalName(Int32(truncatingIfNeeded: r.found))) at file offset \(hex(r.offset)) of its own mapping"
        case PTSHARE_STRESS_CHILD:
            return "\(who): its checking child \(WorkerPool.describe(status: Int32(truncatingIfNeeded: r.found)))"
        default: return "\(who): unknown error code \(r.error)"
        }
    }

    /// A stress word's fields (layout in cptshare.h).
    struct Word: Sendable, Equatable {
        var magic: UInt64
        var writer: UInt64
        var page: UInt64
        var generation: UInt64

        init(_ v: UInt64) {
            magic = v >> 56
            writer = (v >> UInt64(PTSHARE_STRESS_WORD_WRITER_SHIFT)) & 0xfff
            page = (v >> UInt64(PTSHARE_STRESS_WORD_PAGE_SHIFT)) & UInt64(PTSHARE_STRESS_WORD_PAGE_MASK)
            generation = v & UInt64(PTSHARE_STRESS_WORD_GENERATION_MASK)
        }
    }

    /// Why a reader refused `r.found`, as a clause.
    static func refusal(_ r: ptshare_stress_report) -> String {
        let w = Word(r.found)
        let index = (r.offset % Geometry.page) / 8
        switch ptshare_stress_refusal(rawValue: r.refusal) {
        case PTSHARE_WORD_NOT_STRESS:
            return "not a stress word (magic \(hex(w.magic)), not \(hex(UInt64(PTSHARE_STRESS_WORD_MAGIC))))"
        case PTSHARE_WORD_WRITER:
            return w.writer == index
                ? "slot \(index) writes no words (the truncator)"
                : "it names writer \(w.writer), but word \(index) is written by writer \(index) only"
        case PTSHARE_WORD_PAGE:
            return "writer \(w.writer) wrote it for page \(w.page), not page \(r.offset / Geometry.page)"
        case PTSHARE_WORD_GENERATION: return "generation 0, which no writer uses"
        case PTSHARE_WORD_FUTURE:
            return "writer \(w.writer)'s generation \(w.generation) is newer than the \(r.expected) it has published"
        case PTSHARE_WORD_BACKWARDS:
            return
                "writer \(w.writer)'s generation \(w.generation) is older than generation \(r.expected) this reader saw there before"
        case PTSHARE_WORD_ZERO:
            return
                "0 below the floor \(hex(floor)), where this reader saw writer \(index)'s generation \(r.expected) before"
        case PTSHARE_WORD_STALE:
            return r.found == 0
                ? "0 below the floor \(hex(floor)), where writer \(index) had finished writing generation \(r.expected)"
                : "writer \(w.writer)'s generation \(w.generation) is older than generation \(r.expected) it had finished "
                    + "writing there (below the floor \(hex(floor)))"
        default: return "unknown refusal \(r.refusal)"
        }
    }

    static func run(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.stress"
        if let r = Suite.needsSharedPT(name, o) { return r }
        var c = Checks(name)
        // Without the module the rounds still stop the processes and read their views; the
        // test then ends as SKIP (unproven) unless a check failed.
        let census = c.censusPossible(modulePath: o.modulePath)
        stormChecks(o, census: census, flag: o.mapSharedPTValue, pressure: nil, &c)
        return c.result()
    }

    /// sharedpt.dax.stress: the storm on a file of a -o dax=always mount (series patch 10), every
    /// chunk PTE-mapped (PR_SET_THP_DISABLE): truncation and hole punches free the file's
    /// blocks under the shared tables, and faults on the holes map DAX's zero page (special
    /// PTEs) before a write allocates a block there.
    static func daxRun(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.dax.stress"
        if let r = Suite.needsSharedPT(name, o) { return r }
        let mount: MountEntry
        switch Suite.daxMount(name) {
        case .success(let m): mount = m
        case .failure(let box): return box.result
        }
        var c = Checks(name)
        let census = c.censusPossible(modulePath: o.modulePath)
        stormChecks(o, census: census, flag: o.mapSharedPTValue, pressure: nil, backing: .dax(mount.mountPoint), &c)
        return c.result()
    }

    /// sharedpt.anon.stress: the storm on anonymous shared memory (series patch 9) the driver
    /// maps with the flag before forking: every stress process, respawned ones too, works in
    /// the mapping it inherited and attaches on its first touch; forked checkers inherit it in
    /// turn; even incarnations unmap it chunk by chunk at the end, odd ones leave it to exit;
    /// the truncator punches the range above the floor with MADV_REMOVE.
    static func anonRun(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.anon.stress"
        if let r = Suite.needsSharedPT(name, o) { return r }
        var c = Checks(name)
        let census = c.censusPossible(modulePath: o.modulePath)
        stormChecks(o, census: census, flag: o.mapSharedPTValue, pressure: nil, backing: .anon, &c)
        return c.result()
    }

    /// sharedpt.pressure.stress: the storm under memory pressure, with compaction and
    /// migration going on (see `Pressure`): proactive reclaim (memory.reclaim) rather than a
    /// limit, which under TCG throttled 32 processes whose working set is twice the file.
    /// Unshared (flag 0, no census) on a kernel without the flag. Proof that the pressure was
    /// real: /proc/vmstat pswpout and pgmigrate_success grew during the run. Premise: swap, cgroup v2 with memory, two NUMA nodes, root; else SKIP.
    static func pressureRun(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.pressure.stress"
        var c = Checks(name)
        // Unshared only on the stock test kernel: it reclaims, compacts and migrates machine-wide.
        let shared: Bool
        switch SharedPTSemantics.sharedOrPlain(
            name, o, &c, unshared: "the storm runs unshared (plain MAP_SHARED, no census)")
        {
        case .decided(let s): shared = s
        case .ended(let r): return r
        }
        let nodes = ProcFS.numaNodes()
        let swap = (try? ProcFS.meminfo())?.fields["SwapTotal"] ?? 0
        if nodes.count < 2 { c.unproven("\(nodes.count) NUMA node(s): migration needs two (ptshare vm --numa 2)") }
        if swap < fileSize { c.unproven("SwapTotal \(ByteSize(swap)): reclaim of shmem needs swap") }
        if geteuid() != 0 { c.unproven("migrate_pages of another process's shared pages needs root") }
        if let why = TestCgroup.unavailableReason() { c.unproven(why) }
        if c.unprovenReason != nil { return c.result() }
        let g: TestCgroup
        do { g = try TestCgroup("ptshare-pressure") } catch {
            c.expect(false, "cgroup ptshare-pressure: \(error)")
            return c.result()
        }
        defer { g.remove() }
        guard let pressure = Pressure(cgroup: g, nodes: nodes) else {
            c.unproven("NUMA nodes \(NodeList.format(nodes)): the pressure child's masks take nodes 0-63")
            return c.result()
        }
        c.note(
            "stress processes in \(g.path); every 2 s: memory.reclaim \(ByteSize(fileSize / 2)), compaction, migrate_pages"
        )
        let census = shared && c.censusPossible(modulePath: o.modulePath)
        let before = try? ProcFS.counters("/proc/vmstat")
        stormChecks(
            o, census: census, flag: shared ? o.mapSharedPTValue : 0,
            pressure: pressure, &c)
        _ = ProcFS.refreshVMStats()
        guard let before, let after = try? ProcFS.counters("/proc/vmstat") else {
            c.expect(false, "/proc/vmstat could not be read")
            return c.result()
        }
        for key in ["pswpout", "pgmigrate_success", "pswpin"] {
            guard let d = Counters.delta(before, after, key) else {
                c.expect(false, "/proc/vmstat has no \(key)")
                continue
            }
            let needed = key != "pswpin"
            c.expect(
                d > 0 || !needed,
                "/proc/vmstat \(key) +\(d) during the storm" + (d > 0 || !needed ? "" : ", expected some"))
        }
        return c.result()
    }

    /// Runs the storm and turns its tally and the kernel log into check lines.
    static func stormChecks(
        _ o: SuiteOptions, census: Bool, flag: UInt32, pressure: Pressure?, backing: SharedPTBacking = .memfd,
        _ c: inout Checks
    ) {
        let log = KernelLog.open()
        do {
            let t = try storm(o, census: census, flag: flag, pressure: pressure, backing: backing)
            let cycles = if case .anon = backing { "MADV_REMOVE punches" } else { "truncate/extend/punch cycles" }
            c.note(
                "\(processes) processes for \(o.stressSeconds) s on a \(ByteSize(fileSize)) \(backing.what) (floor "
                    + "\(ByteSize(floor))): \(t.iterations) iterations, \(t.forks) forked checkers, "
                    + "\(t.truncations) \(cycles), \(t.sigbus) SIGBUS above the floor, "
                    + "\(t.reports) reports")
            if pressure != nil {
                c.note(
                    "\(t.reclaims) reclaims, \(t.compactions) compactions, \(t.migrations) migrate_pages calls "
                        + "(\(t.unmovedPages) pages left where they were); \(t.pressureSkipped) ticks skipped "
                        + "while the last pressure round ran")
            }
            for f in t.failures.prefix(20) { c.expect(false, f) }
            if t.failures.count > 20 { c.expect(false, "… and \(t.failures.count - 20) more failures") }
            c.expect(t.iterations > 0, "iterations completed: \(t.iterations)")
            judge(t.rounds, census: census, into: &c)
        } catch {
            c.expect(false, "\(error)")
        }
        let problems = log.problems()
        for p in problems { c.expect(false, "kernel log: \(p)") }
        // Worded without the patterns themselves: the guest console echoes this line, and the host's
        // console scan must not take it for a report.
        if problems.isEmpty { c.note("kernel log: clean (no report matched the console patterns)") }
    }

    /// Check lines for the stop rounds: enough of them, and with the module, every census
    /// showing one table per faulted chunk and some sharing.
    static func judge(_ rounds: [Round], census: Bool, into c: inout Checks) {
        let views = rounds.map(\.views)
        let stopped = rounds.map { $0.stoppedNanoseconds / 1_000_000 }
        let stopping = rounds.map { $0.stoppingNanoseconds / 1_000_000 }
        c.expect(
            rounds.count >= minimumRounds,
            "\(rounds.count) stop rounds (at least \(minimumRounds)), views of the file per round "
                + "\(views.min() ?? 0)–\(views.max() ?? 0), stopped \(stopped.reduce(0, +)) ms in all "
                + "(longest \(stopped.max() ?? 0) ms; waiting for state T \(stopping.reduce(0, +)) ms in all)")
        guard census else { return }
        for (i, r) in rounds.enumerated() {
            for m in r.misaligned.prefix(4) { c.expect(false, "stop round \(i + 1): \(m)") }
        }
        let taken = rounds.compactMap(\.census)
        let bad = taken.enumerated().compactMap { (i, t) -> String? in
            let (ok, line) = t.judge(.sharedWhereFaulted)
            return ok ? nil : "census \(i + 1): \(line)"
        }
        for line in bad.prefix(5) { c.expect(false, line) }
        if bad.count > 5 { c.expect(false, "… and \(bad.count - 5) more failed censuses") }
        let tables = taken.map(\.distinctTables)
        let shared = taken.map(\.sharedChunks)
        let good = taken.count - bad.count
        c.expect(
            taken.count >= minimumRounds && bad.isEmpty && rounds.allSatisfy(\.misaligned.isEmpty),
            "\(taken.count) censuses, \(good) with one table per faulted chunk and sharing; distinct PTE tables per "
                + "census \(tables.min() ?? 0)–\(tables.max() ?? 0), chunks shared by several views "
                + "\(shared.min() ?? 0)–\(shared.max() ?? 0)")
    }

    /// Runs the storm and returns the tally; everything it started is killed and reaped.
    static func storm(
        _ o: SuiteOptions, census: Bool, flag: UInt32, pressure: Pressure? = nil, backing: SharedPTBacking = .memfd
    ) throws(SharedPTError) -> Tally {
        // Under pressure the stress processes allocate the file's pages themselves, so that
        // their cgroup is charged and reclaims them. A DAX fixture turns PR_SET_THP_DISABLE on
        // for the driver, and so for every stress process: every chunk is PTE-mapped.
        let f = try backing.fixture(size: fileSize, flag: flag, preallocate: pressure == nil)
        // Anonymous shared memory: mapped here, never touched here, inherited by every stress
        // process (and respawned one), which attaches on its first touch.
        var anon: UInt64 = 0
        if case .anon = backing {
            do {
                anon = try Sys.mmap(
                    0, fileSize, prot: PROT_READ | PROT_WRITE,
                    flags: ptshare_MAP_SHARED_VALIDATE | Int32(bitPattern: flag) | MAP_ANONYMOUS, fd: -1, offset: 0)
            } catch { throw .system(error) }
        }
        defer { if anon != 0 { try? Sys.munmap(anon, fileSize) } }
        // /proc/PID/maps names every anonymous shared mapping "/dev/zero (deleted)", the
        // driver's generation pages too: the storm's is what lies in the range it inherited.
        let path = anon == 0 ? f.mapsPath : "/dev/zero"
        let range = anon == 0 ? 0..<UInt64.max : anon..<anon + fileSize
        func isView(_ m: MapsEntry) -> Bool {
            m.path.hasPrefix(path) && range.contains(m.start) && m.end <= range.upperBound
        }
        let report: (read: Int32, write: Int32)
        do { report = try Sys.pipe() } catch { throw .system(error) }
        defer {
            Sys.close(report.read)
            Sys.close(report.write)
        }
        // Each slot's published and finished generations, shared with every stress process and
        // outliving them (layout in cptshare.h).
        let generations: UInt64
        do {
            generations = try Sys.mmap(
                0, 2 * Geometry.page, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS, fd: -1,
                offset: 0)
        } catch { throw .system(error) }
        defer { try? Sys.munmap(generations, 2 * Geometry.page) }
        let truncator = UInt32(processes - 1)
        let plan = UnsafeMutablePointer<ptshare_stress_plan>.allocate(capacity: 1)
        defer { plan.deallocate() }
        plan.initialize(to: ptshare_stress_plan())
        plan.pointee.driver_pid = getpid()
        plan.pointee.fd = f.fd
        plan.pointee.report_write_fd = report.write
        plan.pointee.report_read_fd = report.read
        plan.pointee.flag = flag
        plan.pointee.processes = UInt32(processes)
        plan.pointee.file_size = fileSize
        plan.pointee.floor = floor
        let start = Sys.monotonicNanoseconds()
        plan.pointee.deadline_ns = start + UInt64(o.stressSeconds) * 1_000_000_000
        plan.pointee.iterations = iterations
        plan.pointee.truncator_slot = truncator
        plan.pointee.generations = generations
        plan.pointee.anon_addr = anon

        var pids = [pid_t](repeating: 0, count: processes)
        var incarnation = [UInt32](repeating: 0, count: processes)
        var tally = Tally()
        var pending: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64 * MemoryLayout<ptshare_stress_report>.size)
        defer {
            for pid in pids where pid > 0 { _ = kill(pid, SIGKILL) }
            for pid in pids where pid > 0 { _ = try? Sys.waitpid(pid, noHang: false) }
        }

        func spawn(_ slot: Int) throws(SharedPTError) {
            let pid: pid_t
            do { pid = try Sys.fork() } catch { throw .system(error) }
            if pid == 0 { ptshare_stress_main(plan, UInt32(slot), incarnation[slot]) }
            incarnation[slot] += 1
            pids[slot] = pid
            // A process that already exited (ESRCH) has nothing left to charge.
            do { try pressure?.cgroup.add(pid) } catch  where error.errno != ESRCH { throw .system(error) } catch {}
        }

        // One pressure round at a time, in a child (reclaim, compaction and migrate_pages can
        // each block for seconds on a debug kernel under TCG): the driver keeps taking stop
        // rounds, draining reports and respawning meanwhile. A tick that finds the last round
        // still running is skipped.
        var nextPressure = Sys.monotonicNanoseconds() + (pressure?.every ?? 0)
        var target = 0
        var squeezer: pid_t?
        var squeezed: (read: Int32, write: Int32)?
        if pressure != nil {
            do { squeezed = try Sys.pipe() } catch { throw .system(error) }
        }
        defer {
            if let q = squeezed {
                Sys.close(q.read)
                Sys.close(q.write)
            }
        }
        func reapSqueezer(wait: Bool) throws(SharedPTError) {
            guard let pid = squeezer, let q = squeezed, let p = pressure else { return }
            let reaped: (pid: pid_t, status: Int32)?
            do { reaped = try Sys.waitpid(pid, noHang: !wait) } catch { throw .system(error) }
            guard let (_, status) = reaped else { return }
            squeezer = nil
            guard ptshare_wifexited(status) != 0 && ptshare_wexitstatus(status) == 0 else {
                tally.failures.append("pressure child (pid \(pid)) \(WorkerPool.describe(status: status))")
                return
            }
            // The child wrote its result in one write(2) before it exited.
            let size = MemoryLayout<ptshare_squeeze_result>.size
            var bytes = [UInt8](repeating: 0, count: size)
            let n: Int
            do { n = try Sys.read(q.read, into: &bytes) } catch { throw .system(error) }
            guard n == size else { throw .badReport("pressure child wrote \(n) bytes, not \(size)") }
            tally.add(
                bytes.withUnsafeBytes { $0.loadUnaligned(as: ptshare_squeeze_result.self) }, cgroup: p.cgroup.path)
        }
        // On an error: the stress processes and the pressure child are killed before anything
        // waits (the child may be in migrate_pages on one of them); the defer above reaps them.
        defer {
            if let pid = squeezer {
                for p in pids where p > 0 { _ = Glibc.kill(p, SIGKILL) }
                _ = Glibc.kill(pid, SIGKILL)
                _ = try? Sys.waitpid(pid, noHang: false)
            }
        }
        func squeeze(_ p: Pressure) throws(SharedPTError) {
            try reapSqueezer(wait: false)
            guard squeezer == nil, let q = squeezed else {
                tally.pressureSkipped += 1
                return
            }
            // Reclaim half the file from the stress cgroup (swap-outs from under the shared
            // tables, without a limit that would throttle the storm), compact, and move the next
            // live stress process's pages to the next node: migrate_pages(2) as root moves the
            // shared file's pages too.
            let live = pids.filter { $0 > 0 }
            let first = live.isEmpty ? 0 : target % live.count
            let to = p.nodes[target % p.nodes.count]
            target += 1
            do {
                squeezer = try Sys.squeezeInChild(
                    reclaim: "\(p.cgroup.path)/memory.reclaim", "\(fileSize / 2)",
                    pids: Array(live[first...] + live[..<first]), from: p.mask, to: UInt64(1) << to,
                    resultFD: q.write)
            } catch { throw .system(error) }
        }

        /// Reads what reports are waiting (up to `timeoutMs` for the first); false when none were.
        @discardableResult
        func drain(timeoutMs: Int32) throws(SharedPTError) -> Bool {
            let size = MemoryLayout<ptshare_stress_report>.size
            do {
                guard try Sys.pollReadable(report.read, timeoutMs: timeoutMs) else { return false }
                let n = try Sys.read(report.read, into: &buf)
                pending += buf[0..<n]
            } catch { throw .system(error) }
            while pending.count >= size {
                let r = pending.withUnsafeBytes { $0.loadUnaligned(as: ptshare_stress_report.self) }
                pending.removeFirst(size)
                guard r.slot < UInt32(processes) else { throw .badReport("slot \(r.slot) of \(processes)") }
                add(r, truncator: truncator, to: &tally)
            }
            return true
        }

        for slot in 0..<processes { try spawn(slot) }
        let deadline = plan.pointee.deadline_ns
        let interval = roundInterval(seconds: o.stressSeconds)
        var nextRound = start + interval
        // After the deadline the processes finish their round; under TCG that may take a while.
        let hardDeadline = deadline + 120 * 1_000_000_000
        while pids.contains(where: { $0 > 0 }) {
            if Sys.stopSignal != 0 {
                throw .system(SystemCallError("sharedpt.stress", errno: EINTR, value: "signal \(Sys.stopSignal)"))
            }
            let now = Sys.monotonicNanoseconds()
            if now > hardDeadline {
                let left = pids.filter { $0 > 0 }.count
                throw .stepFailed("\(left) stress process(es) still running 120 s after the deadline")
            }
            if now >= nextRound && now < deadline {
                var r = try stopRound(pids, census: census, isView: isView)
                r.stoppedNanoseconds = Sys.monotonicNanoseconds() - now
                tally.rounds.append(r)
                nextRound += interval
            }
            if let p = pressure, now >= nextPressure && now < deadline {
                try squeeze(p)
                nextPressure = now + p.every
            }
            try reapSqueezer(wait: false)
            try drain(timeoutMs: 50)
            for slot in 0..<processes where pids[slot] > 0 {
                let reaped: (pid: pid_t, status: Int32)?
                do { reaped = try Sys.waitpid(pids[slot], noHang: true) } catch { throw .system(error) }
                guard let (pid, status) = reaped else { continue }
                pids[slot] = 0
                // Exit status 1: the process reported what went wrong before it exited.
                let clean = ptshare_wifexited(status) != 0 && ptshare_wexitstatus(status) <= 1
                if !clean {
                    tally.failures.append(
                        "process \(slot) (pid \(pid)) \(WorkerPool.describe(status: status))")
                }
                if Sys.monotonicNanoseconds() < deadline { try spawn(slot) }
            }
        }
        try reapSqueezer(wait: true)
        while try drain(timeoutMs: 0) {}
        return tally
    }

    /// Stops every stress process (SIGSTOP, then waits for state T; a zombie has exited and maps
    /// nothing), reads their mappings of the file (the maps entries `isView` takes), takes the census when `census`, and lets
    /// them all go on. Stopped, nobody maps, unmaps or truncates while the module walks (under
    /// `Pressure`, reclaim, compaction and migrate_pages may still rewrite PTEs meanwhile: they
    /// free no table, which is what the census counts).
    static func stopRound(_ pids: [pid_t], census: Bool, isView: (MapsEntry) -> Bool) throws(SharedPTError) -> Round {
        var stopped: [pid_t] = []
        defer { for pid in stopped { try? Sys.kill(pid, SIGCONT) } }
        for pid in pids where pid > 0 {
            do { try Sys.kill(pid, SIGSTOP) } catch { throw .system(error) }
            stopped.append(pid)
        }
        let signalled = Sys.monotonicNanoseconds()
        let until = signalled + stopTimeout
        var views: [TableCensus.View] = []
        for (slot, pid) in pids.enumerated() where pid > 0 {
            while true {
                let state: String
                do { state = try ProcFS.status(pid).stateCode } catch {
                    throw .stepFailed("census: /proc/\(pid)/status of stress process \(slot): \(error)")
                }
                if state == "T" || state == "Z" { break }
                if Sys.monotonicNanoseconds() > until {
                    throw .stepFailed(
                        "census: stress process \(slot) (pid \(pid)) not stopped \(stopTimeout / 1_000_000_000) s "
                            + "after SIGSTOP (state \(state))")
                }
                Sys.sleep(milliseconds: 1)
            }
        }
        let stopping = Sys.monotonicNanoseconds() - signalled
        for (slot, pid) in pids.enumerated() where pid > 0 {
            let maps: [MapsEntry]
            do { maps = try ProcFS.maps(pid) } catch {
                throw .stepFailed("census: /proc/\(pid)/maps of stress process \(slot): \(error)")
            }
            for m in maps where isView(m) {
                views.append(
                    TableCensus.View(
                        label: "process \(slot) at \(hex(m.start))", pid: pid, address: m.start, fileOffset: m.offset,
                        length: m.size))
            }
        }
        guard census else { return Round(views: views.count, census: nil, stoppingNanoseconds: stopping) }
        // MAP_SHARED_PT mappings are 2 MiB-aligned in address, offset and length. The census is
        // taken all the same: separate tables show through misalignment.
        let misaligned = views.filter { ($0.address | $0.fileOffset | $0.length) % Geometry.pmdSize != 0 }.map {
            "\($0.label) maps \(hex($0.length)) bytes of file offset \(hex($0.fileOffset)): not 2 MiB-aligned"
        }
        let t: TableCensus?
        do { t = try TableCensus.take(views) } catch { throw .system(error) }
        guard let t else { throw .stepFailed("census: the ptshare_probe module went away during the run") }
        return Round(views: views.count, census: t, misaligned: misaligned, stoppingNanoseconds: stopping)
    }
}
