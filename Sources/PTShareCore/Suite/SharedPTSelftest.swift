import CPTShare
import Glibc

/// kselftest's closing line: `# Totals: pass:N fail:N xfail:N xpass:N skip:N error:N`.
public struct KselftestTotals: Sendable, Equatable {
    public var pass: Int
    public var fail: Int
    public var xfail: Int
    public var xpass: Int
    public var skip: Int
    public var error: Int

    public init(pass: Int, fail: Int, xfail: Int, xpass: Int, skip: Int, error: Int) {
        self.pass = pass
        self.fail = fail
        self.xfail = xfail
        self.xpass = xpass
        self.skip = skip
        self.error = error
    }

    /// The last `# Totals:` line of a kselftest's output; nil when there is none or one of the
    /// six counts is missing or not a number (a test program that died before its end).
    public static func parse(_ text: String) -> KselftestTotals? {
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("# Totals:") }) else { return nil }
        var v: [String: Int] = [:]
        for word in line.dropFirst("# Totals:".count).split(separator: " ") {
            let kv = word.split(separator: ":")
            guard kv.count == 2, let n = Int(kv[1]) else { return nil }
            v[String(kv[0])] = n
        }
        guard let pass = v["pass"], let fail = v["fail"], let xfail = v["xfail"], let xpass = v["xpass"],
            let skip = v["skip"], let error = v["error"]
        else { return nil }
        return KselftestTotals(pass: pass, fail: fail, xfail: xfail, xpass: xpass, skip: skip, error: error)
    }
}

/// sharedpt.kselftest: the series' own selftest (tools/testing/selftests/mm/ptshare.c, what
/// upstream would run), built static from the kernel tree by scripts/selftest-build.sh and put
/// in the guest's initramfs. It must end with every test passed: one that fails or errs fails
/// this one, and a run where all skipped proves nothing (SKIP).
extension SharedPTSemantics {
    static let selftestPath = "/bin/ptshare-selftest"

    static func kselftest(_ o: SuiteOptions) -> KTAPResult {
        let name = "sharedpt.kselftest"
        if let r = Suite.needsSharedPT(name, o) { return r }
        var c = Checks(name)
        guard access(selftestPath, X_OK) == 0 else {
            c.unproven(
                "no \(selftestPath) (scripts/selftest-build.sh puts it in the guest's initramfs when the kernel tree "
                    + "has tools/testing/selftests/mm/ptshare.c)")
            return c.result()
        }
        var template = Array("/tmp/ptshare-selftest.XXXXXX".utf8CString)
        let tfd = mkstemp(&template)
        guard tfd >= 0 else {
            c.expect(false, "mkstemp in /tmp: \(ErrnoName.of(errno))")
            return c.result()
        }
        Sys.close(tfd)
        let out = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { _ = unlink(out) }
        let status: Int32
        do {
            let pid = try Sys.spawn([selftestPath], stdout: out, stderr: out)
            guard let w = try Sys.waitpid(pid, noHang: false) else {
                c.expect(false, "\(selftestPath) could not be waited for")
                return c.result()
            }
            status = w.status
        } catch {
            c.expect(false, "\(selftestPath): \(error)")
            return c.result()
        }
        let text = (try? ProcFS.read(out)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("ok ") || line.hasPrefix("not ok ") {
            c.note(String(line))
        }
        let exited = WorkerPool.describe(status: status)
        guard let t = KselftestTotals.parse(text) else {
            c.expect(false, "\(selftestPath) \(exited) without a '# Totals:' line")
            return c.result()
        }
        if t.fail == 0 && t.error == 0 && t.pass == 0 {
            c.unproven("every selftest skipped (\(t.skip)): nothing was shown")
            return c.result()
        }
        let clean = ptshare_wifexited(status) != 0 && ptshare_wexitstatus(status) == 0
        c.expect(
            clean && t.fail == 0 && t.error == 0 && t.xpass == 0,
            "\(selftestPath) \(exited): pass \(t.pass), fail \(t.fail), skip \(t.skip), error \(t.error)")
        return c.result()
    }
}
