import Glibc

/// A failed system call: which call, on what, with which value, and the errno it returned.
public struct SystemCallError: Error, Equatable, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32
    /// The file or object the call acted on, when there is one.
    public var path: String?
    /// The argument that was rejected or is worth showing (a flag, a length, an address).
    public var value: String?

    public init(_ call: String, errno: Int32, path: String? = nil, value: String? = nil) {
        self.call = call
        self.errno = errno
        self.path = path
        self.value = value
    }

    public var errnoName: String { ErrnoName.of(errno) }

    public var description: String {
        var s = call
        if let path { s += " \(path)" }
        if let value { s += " (\(value))" }
        return s + " failed: \(errnoName) (errno \(errno)): \(String(cString: strerror(errno)))"
    }
}

/// A /proc or /sys file that did not read as the kernel documents it.
public struct ProcParseError: Error, Equatable, CustomStringConvertible, Sendable {
    public var source: String
    /// 1-based line number, 0 when the problem is the file as a whole.
    public var line: Int
    public var text: String
    public var reason: String

    public init(source: String, line: Int, text: String, reason: String) {
        self.source = source
        self.line = line
        self.text = text
        self.reason = reason
    }

    public var description: String {
        line == 0
            ? "\(source): \(reason)"
            : "\(source):\(line): \(reason): \"\(text)\""
    }
}

/// Symbolic names for the errnos ptshare reports; kernel developers grep for these.
public enum ErrnoName {
    public static func of(_ e: Int32) -> String {
        switch e {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ESRCH: return "ESRCH"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case EBADF: return "EBADF"
        case ECHILD: return "ECHILD"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENODEV: return "ENODEV"
        case ENOTTY: return "ENOTTY"
        case ENOTDIR: return "ENOTDIR"
        case EINVAL: return "EINVAL"
        case ENFILE: return "ENFILE"
        case EMFILE: return "EMFILE"
        case EFBIG: return "EFBIG"
        case ENOSPC: return "ENOSPC"
        case EROFS: return "EROFS"
        case EPIPE: return "EPIPE"
        case ERANGE: return "ERANGE"
        case ENOSYS: return "ENOSYS"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case EOVERFLOW: return "EOVERFLOW"
        case EHWPOISON: return "EHWPOISON"
        default: return "errno\(e)"
        }
    }
}
