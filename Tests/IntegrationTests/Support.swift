import Foundation
import Glibc
import PTShareCore
import Testing

/// The `ptshare` binary built next to the test bundle (or $PTSHARE_BIN).
func ptshareBinary() throws -> String {
    if let b = ProcessInfo.processInfo.environment["PTSHARE_BIN"] { return b }
    let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let bin = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("ptshare").path
    guard FileManager.default.isExecutableFile(atPath: bin) else {
        throw ValidationMessage("ptshare binary not found at \(bin); run `swift build` first or set PTSHARE_BIN")
    }
    return bin
}

/// A started `ptshare` with stdout and stderr going to files.
final class Driver {
    let pid: pid_t
    let out: String
    let err: String
    private(set) var status: Int32?

    init(_ args: [String], environment: [String: String] = [:]) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ptshare-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        out = dir.appendingPathComponent("stdout").path
        err = dir.appendingPathComponent("stderr").path
        // Sys.spawn starts it as a shell would: nothing blocked, default dispositions (the
        // test runner's threads block signals, and posix_spawn would pass that on).
        pid = try Sys.spawn([try ptshareBinary()] + args, stdout: out, stderr: err, environment: environment)
    }

    /// Waits for exit; returns the exit code, or 128+signal.
    @discardableResult
    func wait(timeoutSeconds: Double = 300) throws -> Int32 {
        if let status { return status }
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var st: Int32 = 0
        while true {
            let r = waitpid(pid, &st, WNOHANG)
            if r == pid { break }
            if Date() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &st, 0)
                throw ValidationMessage("ptshare \(pid) did not exit within \(timeoutSeconds) s; stderr: \(stderr)")
            }
            usleep(20_000)
        }
        let code = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
        status = code
        return code
    }

    var stdout: String { (try? String(contentsOfFile: out, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }

    /// Runs to completion.
    static func run(_ args: [String], environment: [String: String] = [:], timeoutSeconds: Double = 300) throws
        -> Driver
    {
        let d = try Driver(args, environment: environment)
        try d.wait(timeoutSeconds: timeoutSeconds)
        return d
    }
}

/// Direct children of `parent` (from /proc/*/stat).
func children(of parent: pid_t) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 2 && Int32(fields[1]) == parent
    }
}

/// Whether a pid still exists in any state other than fully reaped.
func exists(_ pid: pid_t) -> Bool { FileManager.default.fileExists(atPath: "/proc/\(pid)/stat") }

/// The process state letter (R, S, Z, …), nil if gone.
func state(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(after: close)...].split(separator: " ").first?.first
}

/// Polls until `condition` holds or the time runs out.
func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// Workers of a holding driver: its children that have the backing file mapped.
func mappedWorkers(of driver: pid_t, marker: String) -> [pid_t] {
    children(of: driver).filter { pid in
        ((try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? "").contains(marker)
    }
}

func readReport(_ path: String) throws -> RunReport {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return try JSONOutput.decodeRun(Array(data))
}

func tempPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("ptshare-\(UUID().uuidString)-\(name)").path
}

var isRoot: Bool { geteuid() == 0 }
