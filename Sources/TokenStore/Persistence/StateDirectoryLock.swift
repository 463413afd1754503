#if canImport(Glibc)
import Glibc
#endif

/// One daemon per state directory: an exclusive `flock` on `tokend.lock`, taken before anything
/// else in the directory is read or written and held for the life of the process (the way
/// PostgreSQL's `postmaster.pid` and etcd's lock file are). The kernel drops it when the process
/// ends, however it ends, so a crash never leaves a stale lock behind.
///
/// The file holds the holder's pid, for the message a second daemon prints. Nothing else in the
/// directory is touched by a daemon that fails to take the lock.
public final class StateDirectoryLock: Sendable {
    public static let fileName = "tokend.lock"

    /// The descriptor holding the lock; never closed, so the lock lasts as long as the process.
    private let descriptor: Int32
    public let path: String

    /// Takes the lock, or throws naming the directory and the holder's pid.
    public init(directory: String) throws(PersistenceError) {
        path = directory + "/" + Self.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PersistenceError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = Self.holder(fd)
            close(fd)
            guard reason == EWOULDBLOCK else { throw PersistenceError("cannot lock \(path): \(String(cString: strerror(reason)))") }
            throw PersistenceError(Self.inUseMessage(directory: directory, holder: holder))
        }
        descriptor = fd
        // Only the holder writes the file: its pid, for the next one's message.
        let text = Array("\(getpid())\n".utf8)
        guard ftruncate(fd, 0) == 0, pwrite(fd, text, text.count, 0) == text.count else {
            close(fd)
            throw PersistenceError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// nil when no daemon holds the directory's lock (it does not take it); else the holder's pid
    /// when the file names one, or 0.
    public static func liveHolder(directory: String) -> Int32? {
        let fd = open(directory + "/" + fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // A shared lock conflicts only with the daemon's exclusive one; released at once.
        guard flock(fd, LOCK_SH | LOCK_NB) != 0 else {
            flock(fd, LOCK_UN)
            return nil
        }
        return holder(fd) ?? 0
    }

    static func inUseMessage(directory: String, holder: Int32?) -> String {
        let who = holder.map { "another tokend (pid \($0))" } ?? "another tokend"
        return "state directory \(directory) is in use by \(who); stop it first, or give this one its own --state-dir"
    }

    private static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = pread(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        let text = String(decoding: buffer.prefix(count), as: UTF8.self)
        return Int32(text.split(separator: "\n").first ?? "")
    }
}
