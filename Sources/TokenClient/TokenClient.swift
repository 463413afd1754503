import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TokenProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A connection to tokend over its Unix domain socket.
///
/// One client serves many tasks at once: every call sends its request straight away and waits
/// for the response with the same id, so requests from concurrent tasks are pipelined on the one
/// connection and answered in any order.
///
///     let client = try await TokenClient.connect(socketPath: TokenClient.defaultSocketPath)
///     let login = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
///     let outcome = try await client.verify(token: login.sessionToken!)
///     await client.close()
///
/// Every error thrown is a ``TokenClientError``. If the connection ends, each request in flight
/// fails with ``TokenClientError/Code/connectionClosed``, and so does every later call: connect
/// again to carry on.
public final class TokenClient: Sendable {
    /// The socket this client is connected to.
    public let socketPath: String
    private let channel: any Channel
    /// Verify answers the daemon said may be reused, with what keeps them right.
    let nearCache: NearCache?
    /// The read-your-revocations mode's own tracking connection, replaced when it is lost.
    private let trackingSocket: NIOLockedValueBox<TrackingSocket?>

    private init(socketPath: String, channel: any Channel, nearCache: NearCache?, trackingSocket: TrackingSocket?) {
        self.socketPath = socketPath
        self.channel = channel
        self.nearCache = nearCache
        self.trackingSocket = NIOLockedValueBox(trackingSocket)
    }

    /// Read-your-revocations: applies every invalidation already on the tracking socket. If that
    /// connection was lost (the daemon closes a tracking connection whose client left its
    /// frames unread), the cache is dropped and a new connection is made; the cache answers
    /// again once it is in place.
    func readInvalidations(into cache: NearCache) {
        guard cache.configuration.mode == .readYourRevocations else { return }
        let socket = trackingSocket.withLockedValue { $0 }
        if let socket, socket.drain(into: cache) { return }
        cache.connectionLost()
        socket?.close()
        // The main connection is tracking too: if it is gone, so is the client.
        guard channel.isActive, let replacement = try? TrackingSocket(socketPath: socketPath) else {
            trackingSocket.withLockedValue { $0 = nil }
            return
        }
        trackingSocket.withLockedValue { $0 = replacement }
        cache.resume()
    }

    /// The near cache's counters; nil without a near cache.
    public var nearCacheStatistics: NearCacheStatistics? { nearCache?.statistics }

    deinit {
        channel.close(promise: nil)
    }

    /// The socket path to use when none is given: the `TOKEND_SOCKET` environment variable if
    /// set and not empty; else `./tokend-data/tokend.sock` (where `swift run tokend` listens)
    /// when it exists, or `/run/tokend/tokend.sock` (the systemd socket unit's) when that does.
    public static var defaultSocketPath: String {
        if let value = getenv("TOKEND_SOCKET"), value.pointee != 0 {
            return String(cString: value)
        }
        let local = "./tokend-data/tokend.sock", system = "/run/tokend/tokend.sock"
        return access(local, F_OK) != 0 && access(system, F_OK) == 0 ? system : local
    }

    /// Connects to the daemon listening on `socketPath`.
    ///
    /// - Parameters:
    ///   - socketPath: The daemon's Unix domain socket.
    ///   - maximumFrameSize: The largest response frame accepted, in bytes; a larger one is a
    ///     ``TokenClientError/Code/protocolViolation`` and closes the connection.
    ///   - eventLoopGroup: Where the connection's I/O runs.
    ///   - nearCache: Answer repeated verifies locally, as the daemon allows (proto-spec 12.16):
    ///     the connection sends `track`, and in the read-your-revocations mode a second,
    ///     non-blocking tracking connection is opened. Nil (the default): every verify asks.
    /// - Throws: ``TokenClientError`` with code ``TokenClientError/Code/unreachable`` when the
    ///   socket cannot be connected to; its message names the path.
    public static func connect(
        socketPath: String,
        maximumFrameSize: Int = 1 << 20,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        nearCache configuration: NearCacheConfiguration? = nil
    ) async throws -> TokenClient {
        let nearCache = configuration.map { NearCache(configuration: $0) }
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameSize: maximumFrameSize)))
                    try operations.addHandler(ResponseRouter(nearCache: nearCache))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(unixDomainSocketPath: socketPath).get()
        } catch {
            throw TokenClientError(.unreachable, message: "cannot connect to \(socketPath): \(TokenClientError.reason(for: error))")
        }
        guard let nearCache else { return TokenClient(socketPath: socketPath, channel: channel, nearCache: nil, trackingSocket: nil) }
        do {
            // The side connection first: from its `ok` on, no invalidation can pass unseen.
            let side = nearCache.configuration.mode == .readYourRevocations ? try TrackingSocket(socketPath: socketPath) : nil
            let client = TokenClient(socketPath: socketPath, channel: channel, nearCache: nearCache, trackingSocket: side)
            let reply = try await client.send(Request(opcode: .track, id: 0))
            if reply.status == .unknownOperation {
                // A daemon from before the near cache: every verify asks it, as without one.
                nearCache.disable()
                side?.close()
                return client
            }
            guard reply.status == .ok else { throw TokenClientError.refused(reply) }
            return client
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Sends a request as it is and returns the daemon's response, whatever its status.
    ///
    /// The client assigns the request id (the one in `request` is replaced), so that ids never
    /// collide on the connection; the response carries the id used.
    ///
    /// - Throws: ``TokenClientError`` with code ``TokenClientError/Code/connectionClosed`` or
    ///   ``TokenClientError/Code/protocolViolation``; never for a non-success status.
    public func send(_ request: Request) async throws -> Response {
        let promise = channel.eventLoop.makePromise(of: Response.self)
        channel.writeAndFlush(PendingRequest(request: request, promise: promise)).whenFailure { error in
            // Only reached when the router never saw the request (the pipeline is gone);
            // otherwise the router has already failed the promise and this does nothing.
            promise.fail(TokenClientError.connectionClosed("could not send the request: \(TokenClientError.reason(for: error))"))
        }
        do {
            return try await promise.futureResult.get()
        } catch let error as TokenClientError {
            throw error
        } catch {
            throw TokenClientError.connectionClosed(TokenClientError.reason(for: error))
        }
    }

    /// Closes the connection. Requests still in flight fail with
    /// ``TokenClientError/Code/connectionClosed``.
    public func close() async {
        trackingSocket.withLockedValue { $0 }?.close()
        try? await channel.close()
    }
}
