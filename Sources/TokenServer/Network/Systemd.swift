#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// What systemd hands a service it starts: a listening socket (socket activation,
/// `sd_listen_fds(3)`) and a socket for readiness and watchdog messages (`sd_notify(3)`).
/// Both are plain environment variables and file descriptors, read here without libsystemd.
public enum Systemd {
    /// Whether systemd passed this process its listening socket.
    static func isSocketActivated(environment: [String: String]) -> Bool {
        environment["LISTEN_PID"].flatMap(Int32.init) == getpid() && (environment["LISTEN_FDS"].flatMap(Int.init) ?? 0) >= 1
    }

    /// The first socket passed with `LISTEN_FDS` (fd 3) when `LISTEN_PID` is this process;
    /// the variables are then removed so that no child inherits them. Throws when the passed
    /// descriptor is not a listening Unix stream socket.
    public static func takeListeningSocket(environment: [String: String]) throws -> CInt? {
        guard isSocketActivated(environment: environment), let count = environment["LISTEN_FDS"].flatMap(Int.init) else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        let fd: CInt = 3
        guard option(fd, SO_DOMAIN) == AF_UNIX, option(fd, SO_TYPE) == CInt(SOCK_STREAM.rawValue), option(fd, SO_ACCEPTCONN) == 1 else {
            throw ConfigurationError("LISTEN_FDS: descriptor 3 is not a listening Unix stream socket; use ListenStream=/path in the socket unit")
        }
        if count > 1 {
            // Only one socket is served; the others would sit unanswered.
            throw ConfigurationError("LISTEN_FDS=\(count): tokend serves one socket; give the socket unit one ListenStream")
        }
        return fd
    }

    private static func option(_ fd: CInt, _ name: CInt) -> CInt? {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
    }

    /// Sends `sd_notify` messages to `NOTIFY_SOCKET`, when systemd set one.
    public struct Notifier: Sendable {
        let path: String?
        /// Half of `WATCHDOG_USEC` when the watchdog is on for this process.
        public let watchdogInterval: TimeAmount?

        public init(environment: [String: String]) {
            path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
            if let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0,
               environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == getpid() }) ?? true {
                watchdogInterval = .microseconds(usec / 2)
            } else {
                watchdogInterval = nil
            }
        }

        public var isActive: Bool { path != nil }

        /// Sends one message (`READY=1`, `STOPPING=1`...); errors are ignored, as sd_notify does.
        /// A state change waits up to 2 s for room in the notification socket's queue.
        /// `watchdog`: a ping, sent from an event loop, never waits; a reader that has fallen
        /// behind loses it rather than stall that loop and every connection served there.
        public func send(_ message: String, watchdog: Bool = false) {
            guard let path else { return }
            let fd = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue) | (watchdog ? CInt(SOCK_NONBLOCK.rawValue) : 0), 0)
            guard fd >= 0 else { return }
            defer { close(fd) }
            if !watchdog {
                var wait = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
            }
            let payload = Array(message.utf8)
            _ = UnixSocketAddress.with(path) { address, length in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, CInt(MSG_NOSIGNAL), address, length) }
            }
        }

        /// `RELOADING=1` with the monotonic time `Type=notify-reload` wants.
        public func reloading() {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            send("RELOADING=1\nMONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000)")
        }
    }
}
