import Glibc

/// Writes bytes to a file, whole or not at all (a temporary name, then rename): a reader never
/// sees a half-written report.
public func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws(SystemCallError) {
    let tmp = path + ".tmp.\(getpid())"
    let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    do {
        try Sys.write(fd, bytes, path: tmp)
        Sys.close(fd)
    } catch {
        Sys.close(fd)
        _ = unlink(tmp)
        throw error
    }
    if rename(tmp, path) != 0 {
        let e = errno
        _ = unlink(tmp)
        throw SystemCallError("rename", errno: e, path: path)
    }
}

/// mkdir -p.
public func makeDirectories(_ path: String) throws(SystemCallError) {
    var built = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        built += "/" + part
        if mkdir(built, 0o755) != 0 && errno != EEXIST {
            throw SystemCallError("mkdir", errno: errno, path: built)
        }
    }
}

/// "20261123-181502": sortable, for results folder names.
public func timestampForPath() -> String {
    var t = time(nil)
    var tm = tm()
    localtime_r(&t, &tm)
    var buf = [CChar](repeating: 0, count: 32)
    let n = strftime(&buf, buf.count, "%Y%m%d-%H%M%S", &tm)
    return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A new results folder: $PTSHARE_OUT when the guest init sets it, else under ./ptshare-results/.
public func defaultResultsDirectory(_ kind: String) -> String {
    if let env = getenv("PTSHARE_OUT") { return String(cString: env) }
    return "ptshare-results/\(kind)-\(timestampForPath())-\(getpid())"
}

public func printStderr(_ message: String) {
    let line = Array((message + "\n").utf8)
    line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}
