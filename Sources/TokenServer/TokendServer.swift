#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Foundation
import ServiceLifecycle
import NIOConcurrencyHelpers
import TokenJWT
import TokenProtocol
import TokenStore
import UnixSignals

/// The daemon: loads keys, listens on the Unix socket, serves until told to stop, then stops
/// accepting, answers what is in flight, and removes its socket file.
public final class TokendServer: Service, Sendable {
    public let configuration: TokendConfiguration
    public let service: TokenService
    private let backend: any StateBackend
    private let keys: SigningKeys
    private let logger: Logger
    private let group: any EventLoopGroup
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    private let environment: [String: String]
    private let notifier: Systemd.Notifier
    /// Reads the configuration again (flags, environment, config file) for a reload.
    private let reloadConfiguration: (@Sendable () throws -> Reload)?

    /// What a reload read: the configuration, and the options changed since the start that
    /// take effect only at the next one.
    public struct Reload: Sendable {
        public var configuration: TokendConfiguration
        public var needsRestart: [String]

        public init(configuration: TokendConfiguration, needsRestart: [String]) {
            self.configuration = configuration
            self.needsRestart = needsRestart
        }
    }
    /// Held for the life of the process: no second daemon uses this state directory.
    private let stateLock: StateDirectoryLock
    private let limits: ConnectionLimits

    public init(configuration: TokendConfiguration, logger: Logger, clock: any TokenClock = SystemClock(),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                reloadConfiguration: (@Sendable () throws -> Reload)? = nil,
                backend makeBackend: StateBackendFactory = EmbeddedBackend.factory) throws {
        var configuration = configuration
        // Connections must never take the descriptors the journal and snapshots need.
        let descriptors = DescriptorBudget.raise()
        if configuration.maxConnections > descriptors.connections {
            logger.warning("--max-connections lowered to what the open-file limit leaves room for", metadata: [
                "connections.configured": "\(configuration.maxConnections)", "connections.max": "\(descriptors.connections)",
                "files.limit": "\(descriptors.soft)", "files.reserved": "\(DescriptorBudget.reserved)",
            ])
            configuration.maxConnections = descriptors.connections
        }
        limits = ConnectionLimits(total: configuration.maxConnections, perUID: configuration.resolvedMaxConnectionsPerUID)
        logger.info("connection limits", metadata: [
            "files.limit": "\(descriptors.soft)", "files.limit.before": "\(descriptors.softBefore)", "files.hard": "\(descriptors.hard)",
            "connections.max": "\(limits.total)", "connections.per_uid": "\(limits.perUID)", "connections.admin_reserve": "\(limits.adminReserve)",
        ])
        self.configuration = configuration
        self.environment = environment
        self.notifier = Systemd.Notifier(environment: environment)
        self.reloadConfiguration = reloadConfiguration
        self.logger = logger
        self.group = group
        // 0700; an operator may open it to a group (0710/0750) so that the group reaches the socket.
        try FileSystem.makeDirectory(configuration.stateDirectory, mode: 0o700, allowed: 0o750)
        // Before anything in the directory is read or written (keys, snapshot, journals).
        do {
            stateLock = try StateDirectoryLock(directory: configuration.stateDirectory)
        } catch {
            throw ConfigurationError(error.description)
        }
        // A daemon that could not serve its socket must not start: refuse before loading state.
        if !Systemd.isSocketActivated(environment: environment) {
            try SocketFile.refuseIfLive(configuration.resolvedSocketPath)
        }
        let directory = KeyDirectory(path: configuration.keysDirectory)
        let (entries, secret) = try directory.loadOrCreate(algorithm: configuration.algorithm, now: clock.now(),
                                                           create: !makeBackend.isShared || configuration.initKeys, logger: logger)
        keys = SigningKeys(directory: directory, entries: entries, policy: JWTValidationPolicy(leeway: configuration.leeway), now: clock.now())
        let policy = RenewalPolicy(renewBelow: configuration.renewBelow, renewBy: configuration.renewBy, dedupWindowMilliseconds: configuration.dedupWindowMilliseconds,
                                   rotationGraceMilliseconds: configuration.rotationGraceMilliseconds)
        let metrics = TokendMetrics()
        backend = try makeBackend.make(StateBackendContext(configuration: configuration, policy: policy, clock: clock, metrics: metrics, logger: logger))
        service = TokenService(configuration: configuration, store: backend.store, keys: keys, digester: try Digester(secret: secret),
                               clock: clock, logger: logger, snapshots: backend.snapshots, metrics: metrics, sharedStore: makeBackend.isShared)
        logger.info("keys loaded", metadata: ["keys.count": "\(entries.count)", "key.kid": "\(keys.signingKey.kid)", "key.alg": "\(keys.signingKey.algorithm.name)"])
    }

    /// What runs beside the server in the daemon's `ServiceGroup`, listed after it (so that it
    /// stops first): the store's upkeep, switching to a dated key when its time comes, and
    /// systemd's watchdog pings. All on one event loop, which a stall would stop.
    public var services: [any Service] {
        let loop = group.next()
        var services: [any Service] = backend.upkeep(on: loop)
        // A key dated in the future starts signing when its time comes.
        services.append(PeriodicTask("key activation", every: .seconds(1), on: loop) { [keys, service, logger] in
            if let entry = keys.activate(now: service.clock.now()) {
                logger.notice("a new key signs from now on", metadata: ["key.kid": "\(entry.key.kid)", "key.alg": "\(entry.key.algorithm.name)"])
            }
        })
        if let interval = notifier.watchdogInterval {
            services.append(PeriodicTask("systemd watchdog", every: interval, on: loop) { [notifier] in notifier.send("WATCHDOG=1", watchdog: true) })
        }
        return services
    }

    /// Binds the main socket, or takes the one systemd passed; whether it was passed.
    private func listen(_ path: String) async throws -> (channel: any Channel, inherited: Bool) {
        if let inherited = try Systemd.takeListeningSocket(environment: environment) {
            // Socket activation: systemd bound the socket and owns its file.
            return (try await bootstrap().withBoundSocket(inherited).get(), true)
        }
        let mode = configuration.socketMode
        let channel = try await SocketFile.listen(bootstrap(), path: path, mode: mode, logger: logger,
                                                  cannotListen: { "cannot listen on \(path): \($0)" },
                                                  cannotSetMode: { "cannot set mode \(String(mode, radix: 8)) on \(path): \($0)" })
        return (channel, false)
    }

    public func run() async throws {
        try await backend.prepare(on: group.next())
        // A shared store tells of the revocations other daemons make, for near caches.
        let listener = group.next()
        backend.listen(on: listener) { [service] event in service.heard(event, on: listener) }
        // The side listeners first: a daemon that cannot serve all it was asked to never opens
        // its main socket (where clients, and tests, would take it for a working daemon).
        let httpFace = configuration.http.isEnabled ? HTTPFaceServer(service: service, configuration: configuration, group: group, logger: logger) : nil
        try await httpFace?.start()
        let metricsChannel: (any Channel)?
        let path = configuration.resolvedSocketPath
        let channel: any Channel
        let inherited: Bool
        do {
            if let address = configuration.metricsListen {
                metricsChannel = try await MetricsEndpoint.start(address, service: service, group: group)
                logger.notice("metrics served over HTTP", metadata: ["metrics.address": "\(address)", "metrics.path": "/metrics"])
            } else {
                metricsChannel = nil
            }
            do {
                (channel, inherited) = try await listen(path)
            } catch {
                try? await metricsChannel?.close()
                throw error
            }
        } catch {
            await httpFace?.stop()
            throw error
        }
        // Trapped before READY=1, so that a reload right after start never meets SIGHUP's
        // default action (ending the process).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let reloads = Task {
            for await _ in hangups {
                self.reload()
            }
        }
        if inherited {
            logger.notice("tokend listening on the socket systemd passed", metadata: ["socket.fd": "3"])
        } else {
            logger.notice("tokend listening", metadata: ["socket.path": "\(path)", "socket.mode": "\(String(configuration.socketMode, radix: 8))"])
        }
        notifier.send("READY=1\nSTATUS=serving\nMAINPID=\(getpid())")
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            self.notifier.send("STOPPING=1\nSTATUS=finishing requests in flight")
            self.logger.notice("shutting down: no new connections; finishing requests in flight")
            channel.close(promise: nil)
        }
        try? await metricsChannel?.close()
        reloads.cancel()
        await httpFace?.stop()
        await drainConnections()
        if !inherited { unlink(path) }
        await backend.shutdown()
        logger.notice("tokend stopped")
    }

    /// SIGHUP: the key directory, then the settings that can change while serving (log level,
    /// access lists); any other changed setting is logged as needing a restart.
    func reload() {
        notifier.reloading()
        defer { notifier.send("READY=1\nSTATUS=serving") }
        _ = service.keysReload(on: group.next())
        guard let reloadConfiguration else { return }
        let updated: Reload
        do {
            updated = try reloadConfiguration()
        } catch {
            logger.error("configuration reload failed; keeping the running configuration", metadata: ["error": "\(error)"])
            return
        }
        service.reconfigure(updated.configuration)
        if !updated.needsRestart.isEmpty {
            // Names only: a value may be a secret (the Redis password).
            logger.warning("changed settings take effect at the next restart", metadata: ["settings": "\(updated.needsRestart.joined(separator: ","))"])
        }
        logger.notice("configuration reloaded", metadata: ["reloaded": "access lists, log level, keys"])
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
                let limits = self.limits
                return Self.peerCredentials(of: channel).flatMap { peer in
                    if let refusal = limits.admit(peer, admin: service.access.isAdmin(peer)) {
                        if let suppressed = self.refusals.admit() {
                            logger.warning("\(refusal.reason); refusing connection", metadata: [
                                "peer.uid": "\(peer.uid)", "connections.max": "\(limits.total)", "connections.per_uid": "\(limits.perUID)",
                                "connections.refusals_suppressed": "\(suppressed)",
                            ])
                        }
                        return channel.close()
                    }
                    _ = self.service.statistics.connectionOpened()
                    do {
                        let handlers: [any ChannelHandler] = [
                            ByteToMessageHandler(FrameDecoder(maximumFrameSize: configuration.maxFrameSize)),
                            ConnectionHandler(service: service, peer: peer, maxInFlight: configuration.maxInFlight,
                                              idleTimeout: configuration.idleTimeout > 0 ? .seconds(configuration.idleTimeout) : nil, logger: logger),
                        ]
                        try channel.pipeline.syncOperations.addHandlers(handlers)
                    } catch {
                        // A connection that failed to set up still gives its place back.
                        limits.release(peer)
                        self.service.statistics.connectionClosed()
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                    // Tracked once its handler can hear the shutdown event.
                    self.track(channel, peer: peer)
                    return channel.eventLoop.makeSucceededVoidFuture()
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

    private func track(_ channel: any Channel, peer: PeerCredentials) {
        let id = ObjectIdentifier(channel)
        connections.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            guard let self else { return }
            self.connections.withLockedValue { _ = $0.removeValue(forKey: id) }
            self.limits.release(peer)
            self.service.statistics.connectionClosed()
        }
    }

    /// Refused connections are logged at most once a second: a flood would flood the log too.
    private let refusals = LogThrottle()

    /// Asks every connection to finish its requests in flight and close; waits up to 10 s.
    private func drainConnections() async {
        await ShutdownEvent.drain(connections.withLockedValue { Array($0.values) }, within: .seconds(10))
    }
}
