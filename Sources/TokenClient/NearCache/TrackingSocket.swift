import NIOConcurrencyHelpers
import NIOCore
import TokenProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A tracking connection read without blocking, for the read-your-revocations mode: before a
/// cached answer, every invalidation frame already in the socket is read and applied. Plain
/// system calls, not the event loop: the point is to see, in the caller's own thread, what the
/// daemon wrote before it acknowledged a revocation.
final class TrackingSocket: Sendable {
    private struct State {
        var descriptor: Int32
        var buffer = ByteBuffer()
    }

    private let state: NIOLockedValueBox<State>

    /// Connects, sends `track`, and waits (up to `timeout`) for its `ok`.
    init(socketPath: String, timeout: Int = 5) throws(TokenClientError) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TokenClientError(.unreachable, message: "cannot open a socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            closeFile(descriptor)
            throw TokenClientError(.unreachable, message: "the socket path \(socketPath) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            bytes.copyBytes(from: path)
            bytes[path.count] = 0
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            closeFile(descriptor)
            throw TokenClientError(.unreachable, message: "cannot connect to \(socketPath): \(reason)")
        }
        var wait = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        state = NIOLockedValueBox(State(descriptor: descriptor))
        try handshake()
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        close()
    }

    /// Closes the connection (once); a later `drain` reports it ended.
    func close() {
        state.withLockedValue { state in
            guard state.descriptor >= 0 else { return }
            closeFile(state.descriptor)
            state.descriptor = -1
        }
    }

    private func handshake() throws(TokenClientError) {
        var frame = ByteBuffer()
        frame.writeFrame(Request(opcode: .track, id: 1))
        let sent = state.withLockedValue { state in
            frame.withUnsafeReadableBytes { send(state.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        guard sent == frame.readableBytes else { throw .connectionClosed("could not send track: \(String(cString: strerror(errno)))") }
        while true {
            var reply: Response?
            let (open, received) = read(untilEmpty: false) { response in
                if response.opcode == .track, response.id == 1 { reply = response }
            }
            if let reply {
                guard reply.status == .ok else { throw .refused(reply) }
                return
            }
            guard open else { throw .connectionClosed("the daemon closed the tracking connection before answering track") }
            guard received > 0 else { throw .connectionClosed("the daemon did not answer track in time") }
        }
    }

    /// Reads what is readable now and hands each frame to `deliver`; `open` is false once the
    /// connection has ended or failed. `untilEmpty`: read until the socket says it has nothing
    /// more, so that an end behind the last frame is seen now (not at the next drain); during the
    /// blocking handshake, one read that brings something is enough.
    private func read(untilEmpty: Bool = true, _ deliver: (Response) -> Void) -> (open: Bool, received: Int) {
        state.withLockedValue { state in
            guard state.descriptor >= 0 else { return (false, 0) }
            var open = true
            var received = 0
            withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { chunk in
                while true {
                    let count = recv(state.descriptor, chunk.baseAddress, chunk.count, 0)
                    if count > 0 {
                        received += count
                        state.buffer.writeBytes(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
                        if !untilEmpty, count < chunk.count { return }
                        continue
                    }
                    if count < 0, errno == EINTR { continue }
                    if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return }
                    open = false
                    return
                }
            }
            guard received > 0 else { return (open, 0) }
            while let length = state.buffer.getInteger(at: state.buffer.readerIndex, as: UInt32.self),
                  state.buffer.readableBytes >= 4 + Int(length) {
                state.buffer.moveReaderIndex(forwardBy: 4)
                let body = state.buffer.readSlice(length: Int(length))!
                guard let response = try? Response(body: body) else { return (false, received) }
                deliver(response)
            }
            state.buffer.discardReadBytes()
            return (open, received)
        }
    }

    /// Applies every invalidation already readable. Returns false once the connection has ended
    /// or failed: the caller must then drop its cache.
    func drain(into cache: NearCache) -> Bool {
        read { response in
            // A frame that cannot be read is taken as the widest invalidation.
            if Invalidation.isInvalidation(response) { cache.apply((try? Invalidation(fields: response.fields)) ?? .flush) }
        }.open
    }
}

/// The system's `close`, which a method of the same name hides inside the class.
private func closeFile(_ descriptor: Int32) {
    _ = close(descriptor)
}
