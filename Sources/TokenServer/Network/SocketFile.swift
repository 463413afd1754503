#if canImport(Glibc)
import Glibc
#endif
import Logging

/// The listening socket's path: a stale file from a crashed daemon is removed; a live daemon
/// on the same path is never disturbed.
enum SocketFile {
    static func prepare(_ path: String, logger: Logger) throws {
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            throw ConfigurationError("socket path \(path) is too long for a Unix socket (\(path.utf8.count) bytes)")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConfigurationError("\(path) exists and is not a socket; remove it or choose another --socket")
        }
        if isLive(path) {
            throw ConfigurationError("another tokend is already serving on \(path); stop it first or choose another --socket")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ConfigurationError("cannot remove stale socket \(path): \(String(cString: strerror(errno)))")
        }
        logger.notice("removed stale socket left by an earlier run", metadata: ["socket.path": "\(path)"])
    }

    /// Whether something accepts connections on `path`.
    static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }
}
