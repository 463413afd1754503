#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import NIOConcurrencyHelpers
import TokenJWT
import TokenProtocol
import TokenStore

/// The daemon: loads keys, listens on the Unix socket, serves until told to stop, then stops
/// accepting, answers what is in flight, and removes its socket file.
public final class TokendServer: Service, Sendable {
    public let configuration: TokendConfiguration
    public let service: TokenService
    private let store: EmbeddedStore
    private let snapshots: SnapshotScheduler
    private let logger: Logger
    private let group: any EventLoopGroup
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    public init(configuration: TokendConfiguration, logger: Logger, clock: any TokenClock = SystemClock(),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        self.configuration = configuration
        self.logger = logger
        self.group = group
        // 0700; an operator may open it to a group (0710/0750) so that the group reaches the socket.
        try FileSystem.makeDirectory(configuration.stateDirectory, mode: 0o700, allowed: 0o750)
        let directory = KeyDirectory(path: configuration.keysDirectory)
        let (entries, secret) = try directory.loadOrCreate(algorithm: configuration.algorithm, now: clock.now(), logger: logger)
        let keys = SigningKeys(directory: directory, entries: entries, policy: JWTValidationPolicy(leeway: configuration.leeway))
        let policy = RenewalPolicy(renewBelow: configuration.renewBelow, renewBy: configuration.renewBy, dedupWindow: configuration.dedupWindow)
        let persistence = EmbeddedStore.Persistence(directory: configuration.stateDirectory, fsync: configuration.fsync, repair: configuration.repair)
        do {
            store = try EmbeddedStore(policy: policy, clock: clock, persistence: persistence, logger: logger)
        } catch let error as PersistenceError {
            throw ConfigurationError(error.description)
        }
        snapshots = SnapshotScheduler(store: store, configuration: configuration, logger: logger)
        service = TokenService(configuration: configuration, store: store, keys: keys, digester: try Digester(secret: secret),
                               clock: clock, logger: logger, snapshots: snapshots)
        logger.info("keys loaded", metadata: ["keys.count": "\(entries.count)", "key.kid": "\(keys.signingKey.kid)", "key.alg": "\(keys.signingKey.algorithm.name)"])
    }

    public func run() async throws {
        if configuration.repair {
            // A repair is made durable before serving: the valid part of a damaged file now
            // lives only in memory.
            _ = try await snapshots.writeNow()
        }
        let path = configuration.resolvedSocketPath
        try SocketFile.prepare(path, logger: logger)
        // Bind with a tight umask so that the socket is never, even briefly, open to all.
        let previousMask = umask(0o177)
        let channel: any Channel
        do {
            channel = try await bootstrap().bind(unixDomainSocketPath: path).get()
            umask(previousMask)
        } catch {
            umask(previousMask)
            throw error
        }
        guard chmod(path, mode_t(configuration.socketMode)) == 0 else {
            try? await channel.close()
            throw ConfigurationError("cannot set mode \(String(configuration.socketMode, radix: 8)) on \(path): \(String(cString: strerror(errno)))")
        }
        if store.replayedJournal && !configuration.repair { snapshots.request() }
        // Expiry in small steps (1,000 logins, about a millisecond of the store's lock, ten
        // times a second), so that a mass expiry never stalls verifies for long.
        let sweeper = channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [store] _ in
            store.sweep(budget: 1000)
        }
        let ticker = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [snapshots] _ in
            snapshots.tick()
        }
        logger.notice("tokend listening", metadata: ["socket.path": "\(path)", "socket.mode": "\(String(configuration.socketMode, radix: 8))"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            self.logger.notice("shutting down: no new connections; finishing requests in flight")
            channel.close(promise: nil)
        }
        sweeper.cancel()
        ticker.cancel()
        await drainConnections()
        unlink(path)
        // A clean stop leaves a snapshot and an empty journal: the next start replays nothing.
        await snapshots.finish()
        store.close()
        logger.notice("tokend stopped")
    }

    private func bootstrap() -> ServerBootstrap {
        let service = service
        let configuration = configuration
        let logger = logger
        return ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 4096)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.close() }
                let open = self.service.statistics.connectionOpened()
                guard open <= configuration.maxConnections else {
                    logger.warning("connection limit reached; refusing connection", metadata: ["connections.max": "\(configuration.maxConnections)"])
                    self.service.statistics.connectionClosed()
                    return channel.close()
                }
                return Self.peerCredentials(of: channel).flatMapThrowing { peer in
                    let handlers: [any ChannelHandler] = [
                        IdleStateHandler(readTimeout: configuration.idleTimeout > 0 ? .seconds(configuration.idleTimeout) : nil),
                        ByteToMessageHandler(FrameDecoder(maximumFrameSize: configuration.maxFrameSize)),
                        ConnectionHandler(service: service, peer: peer, maxInFlight: configuration.maxInFlight, logger: logger),
                    ]
                    try channel.pipeline.syncOperations.addHandlers(handlers)
                    // Tracked once its handler can hear the shutdown event.
                    self.track(channel)
                }
            }
    }

    /// SO_PEERCRED of a connected Unix socket.
    static func peerCredentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(.unknown)
        }
        let future: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) }.recover { _ in PeerCredentials.unknown }
    }

    /// Linux's `struct ucred` (glibc hides it behind _GNU_SOURCE): what SO_PEERCRED returns.
    struct UCred: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        connections.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            guard let self else { return }
            self.connections.withLockedValue { _ = $0.removeValue(forKey: id) }
            self.service.statistics.connectionClosed()
        }
    }

    /// Asks every connection to finish its requests in flight and close; waits up to 10 s.
    private func drainConnections() async {
        let open = connections.withLockedValue { Array($0.values) }
        guard !open.isEmpty else { return }
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ShutdownEvent()) }
        let deadline = ContinuousClock.now + .seconds(10)
        for channel in open {
            while channel.isActive, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            if channel.isActive { try? await channel.close() }
        }
    }
}
