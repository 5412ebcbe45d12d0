import Glibc

/// The kernel log from a point on (/dev/kmsg), to check that a test left it clean.
public final class KernelLog {
    let fd: Int32

    /// Opens /dev/kmsg positioned at its end; -1 (nothing to read) where it cannot be opened.
    public static func open() -> KernelLog { KernelLog() }

    init() {
        fd = Glibc.open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd >= 0 { lseek(fd, 0, SEEK_END) }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Records since opening that match ConsoleScan's patterns. Unreadable
    /// /dev/kmsg is itself reported, so a clean result always means the log was read.
    public func problems() -> [String] {
        guard fd >= 0 else { return ["/dev/kmsg could not be opened: the kernel log was not checked"] }
        var text = ""
        var lost: [String] = []
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                text += String(decoding: buf[0..<n], as: UTF8.self)
            } else if n < 0 && errno == EPIPE {
                // Overwritten before we read them: unseen records cannot count as clean.
                lost = ["/dev/kmsg: records were overwritten before they could be read"]
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break  // EAGAIN: no more records
            }
        }
        return lost + ConsoleScan.problems(in: text).map(\.text)
    }
}
