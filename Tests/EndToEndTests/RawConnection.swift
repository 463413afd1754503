import Foundation
import TestSupport
import NIOCore
import TokenProtocol

/// A blocking Unix-socket connection that sends whatever bytes a test likes, for hostile
/// input the real client would never produce.
final class RawConnection {
    private(set) var fd: Int32

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let result = withUnixAddress(path) { connect(fd, $0, $1) }
        guard result == 0 else { throw DaemonError("connect failed: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { hangUp() }

    /// Closes this end now (a hang-up).
    func hangUp() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            offset += n
        }
    }

    func send(_ request: Request) {
        var buffer = ByteBuffer()
        buffer.writeFrame(request)
        send(Array(buffer.readableBytesView))
    }

    /// Reads exactly `count` bytes; nil on close or timeout.
    private func read(_ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = bytes[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            offset += n
        }
        return bytes
    }

    /// The next response frame, or nil when the daemon closed the connection (or 5 s passed).
    func readResponse() throws -> Response? {
        guard let header = read(4) else { return nil }
        let length = Int(header.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard let body = read(length) else { return nil }
        return try Response(body: ByteBuffer(bytes: body))
    }

    /// Sends a `stats` request and returns the named counters of its reply.
    func stats(id: UInt32 = 0x5747) throws -> [String: UInt64] {
        send(Request(opcode: .stats, id: id))
        guard let response = try readResponse(), response.status == .ok else { throw DaemonError("no stats reply") }
        var rows: [String: UInt64] = [:]
        for record in try response.fields.records(.stat) {
            if let name = try record.string(.name), let value = try record.uint64(.value) { rows[name] = value }
        }
        return rows
    }

    /// Whether the daemon has closed its end (a read returns EOF).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    /// Whether the daemon closes its end within `wait` (nothing else is expected to arrive).
    func isClosedByPeer(wait: Duration) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&poller, 1, milliseconds) == 1 else { return false }
        return isClosedByPeer()
    }
}
