#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The HTTP face's listeners (`--http-listen`) and their connections: started before the main
/// socket, stopped with it (answers in progress finish, then every connection closes).
final class HTTPFaceServer: Sendable {
    private let face: HTTPFace
    private let configuration: TokendConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let listeners = NIOLockedValueBox<[(address: HTTPListenAddress, channel: any Channel)]>([])
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    init(service: TokenService, configuration: TokendConfiguration, group: any EventLoopGroup, logger: Logger) {
        self.face = HTTPFace(service: service, configuration: configuration.http)
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    /// Binds every `--http-listen` address; a failure closes those already bound.
    func start() async throws {
        do {
            for address in configuration.http.listen {
                let channel = try await bind(address)
                listeners.withLockedValue { $0.append((address, channel)) }
                if case .tcp(let host, _) = address, !Self.isLoopback(host: host) {
                    logger.notice("the HTTP face listens beyond loopback: peers elsewhere get only the JWKS and /healthz (and /introspect, with its secret)",
                                  metadata: ["http.address": "\(address)"])
                }
                logger.notice("HTTP face listening", metadata: ["http.address": "\(address)", "http.routes": "/auth /introspect /.well-known/jwks.json /healthz"])
            }
        } catch {
            await stop()
            throw error
        }
    }

    private func bind(_ address: HTTPListenAddress) async throws -> any Channel {
        switch address {
        case .unix(let path):
            try SocketFile.refuseIfLive(path)
            let mode = configuration.socketMode
            return try await SocketFile.listen(bootstrap(tcp: false), path: path, mode: mode, logger: logger,
                                               cannotListen: { "--http-listen \(address): cannot listen: \($0)" },
                                               cannotSetMode: { "--http-listen \(address): cannot set mode \(String(mode, radix: 8)): \($0)" })
        case .tcp(let host, let port):
            do {
                return try await bootstrap(tcp: true).serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1).bind(host: host, port: port).get()
            } catch {
                throw ConfigurationError("--http-listen \(address): cannot listen: \(ConfigurationError.plain(error))")
            }
        }
    }

    private func bootstrap(tcp: Bool) -> ServerBootstrap {
        let face = face
        let metrics = face.service.metrics
        let idleTimeout = configuration.idleTimeout
        return ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.close() }
                return Self.peer(of: channel, tcp: tcp).flatMap { peer in
                    // Peers elsewhere (who may only read the JWKS and the health) get half the
                    // places: they can never lock out the proxy on this host.
                    let limit = peer.isLocal ? HTTPFaceConfiguration.maximumConnections : HTTPFaceConfiguration.maximumConnections / 2
                    let admitted = self.connections.withLockedValue { open in
                        guard open.count < limit else { return false }
                        open[ObjectIdentifier(channel)] = channel
                        return true
                    }
                    guard admitted else { return channel.close() }
                    channel.closeFuture.whenComplete { _ in self.connections.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) } }
                    return channel.eventLoop.makeCompletedFuture {
                        try Self.configure(channel.pipeline.syncOperations, face: face, peer: peer, metrics: metrics,
                                           idleTimeout: idleTimeout > 0 ? .seconds(idleTimeout) : nil)
                    }
                }
            }
    }

    /// One HTTP connection's handlers, in the daemon and in tests alike.
    static func configure(_ pipeline: ChannelPipeline.SynchronousOperations, face: HTTPFace, peer: HTTPFace.Peer, metrics: TokendMetrics,
                          idleTimeout: TimeAmount?) throws {
        if let idleTimeout { try pipeline.addHandler(IdleStateHandler(allTimeout: idleTimeout)) }
        // No outbound header validation: every header value the face sends is one it made safe
        // itself (percent-encoded subjects, base64url, numbers, names checked at start), and
        // the check costs a pass over every header.
        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withServerUpgrade: nil,
                                                 withErrorHandling: true, withOutboundHeaderValidation: false)
        try pipeline.addHandler(HTTPFaceHandler(face: face, peer: peer, metrics: metrics))
    }

    /// A Unix peer's credentials; for TCP, whether it is on this host's loopback. A TCP peer
    /// whose address cannot be read (it reset before the accept) is taken to be elsewhere.
    static func peer(of channel: any Channel, tcp: Bool) -> EventLoopFuture<HTTPFace.Peer> {
        guard tcp else { return TokendServer.peerCredentials(of: channel).map { .unix($0) } }
        switch channel.remoteAddress {
        case .v4(let address)?:
            return channel.eventLoop.makeSucceededFuture(isLoopback(host: address.host) ? .loopback : .remote)
        case .v6(let address)?:
            return channel.eventLoop.makeSucceededFuture(isLoopback(host: address.host) ? .loopback : .remote)
        default:
            return channel.eventLoop.makeSucceededFuture(.remote)
        }
    }

    /// 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6.
    static func isLoopback(host: String) -> Bool {
        let host = host.lowercased()
        let v4 = host.hasPrefix("::ffff:") ? String(host.dropFirst("::ffff:".count)) : host
        return v4.hasPrefix("127.") || host == "::1" || host == "localhost"
    }

    /// Stops listening, lets each answer in progress finish (up to 5 s), closes every
    /// connection, and removes the Unix socket files.
    func stop() async {
        let bound = listeners.withLockedValue { listeners in
            defer { listeners = [] }
            return listeners
        }
        for listener in bound { try? await listener.channel.close() }
        await ShutdownEvent.drain(connections.withLockedValue { Array($0.values) }, within: .seconds(5))
        for listener in bound {
            if case .unix(let path) = listener.address { unlink(path) }
        }
    }
}
