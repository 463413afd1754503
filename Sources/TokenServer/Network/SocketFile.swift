#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix

/// The listening socket's path: a stale file from a crashed daemon is removed; a live daemon
/// on the same path is never disturbed.
enum SocketFile {
    static func prepare(_ path: String, logger: Logger) throws {
        guard path.utf8.count < UnixSocketAddress.maximumPathLength else {
            throw ConfigurationError("socket path \(path) is too long for a Unix socket (\(path.utf8.count) bytes)")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConfigurationError("\(path) exists and is not a socket; remove it or choose another --socket")
        }
        try refuseIfLive(path)
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ConfigurationError("cannot remove stale socket \(path): \(String(cString: strerror(errno)))")
        }
        logger.notice("removed stale socket left by an earlier run", metadata: ["socket.path": "\(path)"])
    }

    /// Binds `bootstrap` to `path` (a stale file removed first) and gives the file `mode`. The
    /// bind happens under a tight umask, so that the socket is never, even briefly, open to all.
    /// `cannotListen` and `cannotSetMode` word the errors, given the system's reason.
    static func listen(_ bootstrap: ServerBootstrap, path: String, mode: UInt32, logger: Logger,
                       cannotListen: (String) -> String, cannotSetMode: (String) -> String) async throws -> any Channel {
        try prepare(path, logger: logger)
        let previousMask = umask(0o177)
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
            umask(previousMask)
        } catch {
            umask(previousMask)
            throw ConfigurationError(cannotListen(ConfigurationError.plain(error)))
        }
        guard chmod(path, mode_t(mode)) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            throw ConfigurationError(cannotSetMode(reason))
        }
        return channel
    }

    /// Throws when something already accepts connections on `path`.
    static func refuseIfLive(_ path: String) throws {
        if isLive(path) {
            throw ConfigurationError("another tokend is already serving on \(path); stop it first or choose another --socket")
        }
    }

    /// Whether something accepts connections on `path`.
    static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return UnixSocketAddress.with(path) { connect(fd, $0, $1) } == 0
    }
}

/// A `sockaddr_un` for a path, for the socket calls that take one.
enum UnixSocketAddress {
    static let maximumPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path)

    /// Calls `body` with the address of `path` and its length; nil when the path is too long. A
    /// leading `@` names an abstract socket (addressed with a leading NUL), as systemd writes it.
    static func with<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T? {
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < maximumPathLength else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}
