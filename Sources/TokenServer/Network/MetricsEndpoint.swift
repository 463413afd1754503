import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// `--metrics-listen HOST:PORT`: a small HTTP/1.1 server that answers `GET /metrics` with the
/// Prometheus text format, for a Prometheus server to scrape. Anything else gets 404 (405 for
/// another method on /metrics). One response per connection; the connection then closes.
enum MetricsEndpoint {
    static let maximumConnections = 16

    /// Binds `address` (`host:port`, `[v6]:port`) and serves until the returned channel closes.
    static func start(_ address: String, service: TokenService, group: any EventLoopGroup) async throws -> any Channel {
        // The HTTP face's address syntax, TCP only.
        guard !address.hasPrefix("unix:"), case .tcp(let host, let port)? = try? HTTPListenAddress(parsing: address) else {
            throw ConfigurationError("--metrics-listen \(address): expected HOST:PORT, such as 127.0.0.1:9464")
        }
        let open = NIOLockedValueBox(0)
        do {
            return try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    // A scraper asks and reads at once: a few connections at a time, and none idle
                    // for long, so that this port cannot eat the descriptors the socket needs.
                    guard open.withLockedValue({ count in
                        guard count < maximumConnections else { return false }
                        count += 1
                        return true
                    }) else { return channel.close() }
                    channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(10)))
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(service: service))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            throw ConfigurationError("--metrics-listen \(address): cannot listen: \(ConfigurationError.plain(error))")
        }
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let service: TokenService
    private var head: HTTPRequestHead?

    init(service: TokenService) { self.service = service }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            guard path == "/metrics" else { return respond(context, .notFound, "not found; metrics are at /metrics\n") }
            guard head.method == .GET || head.method == .HEAD else { return respond(context, .methodNotAllowed, "GET /metrics\n") }
            let loop = context.eventLoop
            service.metricsText(on: loop).hop(to: loop).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let text): self.respond(context, .ok, head.method == .HEAD ? "" : text)
                case .failure: self.respond(context, .internalServerError, "metrics unavailable\n")
                }
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
