import Logging
import NIOCore
import NIOHTTP1
import TokenStore

/// One HTTP connection of the HTTP face: gathers each request (head, then a bounded body),
/// hands it to `HTTPFace`, and writes the answer. NIO's pipelining handler, ahead of this one,
/// delivers the next request only after the answer to this one has ended.
///
/// A request must arrive whole within `requestTimeout` of its head, and one that breaks a
/// limit is answered at once and the connection closed: a peer cannot hold a connection (of a
/// bounded number) by sending half a request.
final class HTTPFaceHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Where the connection is in a request.
    enum State {
        /// Between requests.
        case idle
        /// Head read; the body (bounded) is being gathered.
        case receiving(HTTPRequestHead, ByteBuffer?)
        /// The answer is being made.
        case answering
        /// The last answer is written, or a request was refused: whatever else arrives is
        /// dropped until the connection closes.
        case closing
    }

    /// How long a request may take to arrive once its head has.
    static let requestTimeout = TimeAmount.seconds(10)

    private let face: HTTPFace
    private let peer: HTTPFace.Peer
    private let metrics: TokendMetrics
    private var state = State.idle
    private var requestDeadline: Scheduled<Void>?

    init(face: HTTPFace, peer: HTTPFace.Peer, metrics: TokendMetrics) {
        self.face = face
        self.peer = peer
        self.metrics = metrics
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        requestDeadline?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is IdleStateHandler.IdleStateEvent:
            // Idle between requests, or in the middle of one: either way the peer sent nothing
            // for the idle timeout. Only an answer being made is finished first.
            if case .answering = state { closeAfterAnswer = true } else { context.close(promise: nil) }
        case is ShutdownEvent:
            if case .answering = state { closeAfterAnswer = true } else { context.close(promise: nil) }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Set at shutdown or after an idle timeout: the answer in progress is the connection's last.
    private var closeAfterAnswer = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (_, .closing):
            break
        case (.head(let head), .idle):
            if Self.headBytes(head) > HTTPFaceConfiguration.maximumHeadBytes {
                refuse(.requestHeaderFieldsTooLarge, "the request head exceeds \(HTTPFaceConfiguration.maximumHeadBytes) bytes\n", head: head, context: context)
            } else if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > HTTPFaceConfiguration.maximumBodyBytes {
                refuse(.payloadTooLarge, "the request body exceeds \(HTTPFaceConfiguration.maximumBodyBytes) bytes\n", head: head, context: context)
            } else {
                state = .receiving(head, nil)
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                requestDeadline = context.eventLoop.scheduleTask(in: Self.requestTimeout) {
                    let (handler, context) = loopBound.value
                    guard case .receiving = handler.state else { return }
                    handler.state = .closing
                    context.close(promise: nil)
                }
            }
        case (.body(var chunk), .receiving(let head, var body)):
            if (body?.readableBytes ?? 0) + chunk.readableBytes > HTTPFaceConfiguration.maximumBodyBytes {
                refuse(.payloadTooLarge, "the request body exceeds \(HTTPFaceConfiguration.maximumBodyBytes) bytes\n", head: head, context: context)
            } else {
                if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
                state = .receiving(head, body)
            }
        case (.end, .receiving(let head, let body)):
            requestDeadline?.cancel()
            requestDeadline = nil
            state = .answering
            let request = HTTPFace.Request(method: head.method, uri: head.uri, headers: head.headers, body: body)
            let route = HTTPFace.route(of: request.path)
            let keepAlive = head.isKeepAlive
            let version = head.version
            let isHead = request.method == .HEAD
            switch face.answer(request, peer: peer, on: context.eventLoop) {
            case .ready(let response):
                answered(response, route: route, version: version, keepAlive: keepAlive, head: isHead, context: context)
            case .failed:
                answered(.text(.internalServerError, "internal error\n"), route: route, version: version, keepAlive: keepAlive, head: isHead, context: context)
            case .pending(let future):
                future.hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                    let response = (try? result.get()) ?? .text(.internalServerError, "internal error\n")
                    self.answered(response, route: route, version: version, keepAlive: keepAlive, head: isHead, context: context)
                }
            }
        default:
            // A part out of order cannot come from NIO's decoder; end the connection all the same.
            state = .closing
            context.close(promise: nil)
        }
    }

    /// A request that broke a limit: answered at once, without reading the rest of it, and the
    /// connection closed.
    private func refuse(_ status: HTTPResponseStatus, _ message: String, head: HTTPRequestHead, context: ChannelHandlerContext) {
        requestDeadline?.cancel()
        requestDeadline = nil
        metrics.httpRequest(route: Self.route(head).rawValue, code: status.code)
        write(.text(status, message), version: head.version, keepAlive: false, head: false, context: context)
    }

    private func answered(_ response: HTTPFace.Response, route: HTTPFace.Route, version: HTTPVersion, keepAlive: Bool, head: Bool,
                          context: ChannelHandlerContext) {
        metrics.httpRequest(route: route.rawValue, code: response.status.code)
        write(response, version: version, keepAlive: keepAlive && !closeAfterAnswer, head: head, context: context)
    }

    private func write(_ response: HTTPFace.Response, version: HTTPVersion, keepAlive: Bool, head: Bool, context: ChannelHandlerContext) {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.utf8.count))
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        if !head, !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))), promise: nil)
        }
        // Set before the end goes out: NIO's pipelining handler hands over the next request
        // (already read) as soon as this answer ends, from within this write. A connection
        // that closes takes no more.
        state = keepAlive ? .idle : .closing
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    static func route(_ head: HTTPRequestHead) -> HTTPFace.Route {
        HTTPFace.route(of: HTTPFace.Request(method: head.method, uri: head.uri, headers: [:]).path)
    }

    /// The request line and headers, counted as they were sent (near enough: names, values,
    /// and four bytes of separators per line).
    static func headBytes(_ head: HTTPRequestHead) -> Int {
        head.uri.utf8.count + 16 + head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
    }
}
