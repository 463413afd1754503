import NIOCore
import TokenProtocol

/// Matches responses to the requests in flight on one connection.
///
/// Outbound, it takes a ``PendingRequest``, gives it a request id not in use (never 0),
/// remembers its promise and writes the frame. Inbound, it takes frame bodies (from
/// `FrameDecoder`), parses each as a `Response` and completes the promise with the same id, in
/// whatever order the daemon answers. When the connection ends or fails, every request still
/// waiting fails.
///
/// Once a `hello` reply has told it the daemon's `max_frame_size`, it refuses to send a larger
/// request (the daemon would answer `too_large` and close the connection).
final class ResponseRouter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = ByteBuffer

    private var pending: [UInt32: EventLoopPromise<Response>] = [:]
    private var nextID: UInt32 = 1
    /// Set once the connection is done: later requests fail at once with it.
    private var failure: TokenClientError?
    /// An opcode-0, id-0 reply: the daemon's word on the connection itself (such as
    /// `too_large` for a frame it would not read), kept to explain the close that follows.
    private var connectionError: Response?
    /// The largest request body the daemon accepts, once a `hello` reply has said.
    private var maximumRequestSize: Int?
    /// The client's near cache, told of invalidation frames as they arrive and of the
    /// connection's end.
    private let nearCache: NearCache?

    init(nearCache: NearCache? = nil) {
        self.nearCache = nearCache
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var pendingRequest = unwrapOutboundIn(data)
        if let failure {
            pendingRequest.promise.fail(failure)
            promise?.fail(failure)
            return
        }
        let bodySize = Request.headerLength + pendingRequest.request.fields.encodedLength
        if let maximumRequestSize, bodySize > maximumRequestSize {
            let error = TokenClientError(
                .refused, status: .tooLarge,
                message: "the request is \(bodySize) bytes, above the daemon's max_frame_size of \(maximumRequestSize); not sent"
            )
            pendingRequest.promise.fail(error)
            promise?.fail(error)
            return
        }
        let id = takeID()
        pendingRequest.request.id = id
        pending[id] = pendingRequest.promise

        var frame = context.channel.allocator.buffer(capacity: 4 + bodySize)
        frame.writeFrame(pendingRequest.request)

        let written = context.eventLoop.makePromise(of: Void.self)
        if let promise { written.futureResult.cascade(to: promise) }
        written.futureResult.assumeIsolated().whenFailure { error in
            self.pending.removeValue(forKey: id)?.fail(TokenClientError.connectionClosed("could not send the request: \(TokenClientError.reason(for: error))"))
        }
        context.write(wrapOutboundOut(frame), promise: written)
    }

    /// The next id that no request in flight uses; 0 is skipped, so it can mean "no request".
    private func takeID() -> UInt32 {
        while nextID == 0 || pending[nextID] != nil {
            nextID &+= 1
        }
        defer { nextID &+= 1 }
        return nextID
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response: Response
        do {
            response = try Response(body: unwrapInboundIn(data))
        } catch {
            fail(context: context, with: .protocolViolation("unreadable response: \(error.reason)"))
            return
        }
        if Invalidation.isInvalidation(response) {
            // A frame that cannot be read is taken as the widest invalidation.
            nearCache?.apply((try? Invalidation(fields: response.fields)) ?? .flush)
        } else if let promise = pending.removeValue(forKey: response.id) {
            if response.opcode == .hello, response.status.isSuccess, let size = try? response.fields.uint64(.maxFrameSize) {
                maximumRequestSize = Int(clamping: size)
            }
            promise.succeed(response)
        } else if response.id == 0, response.opcode == Opcode(0) {
            connectionError = response
        }
        // Any other response answers no request in flight: ignored, as the spec asks.
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let error as FrameTooLargeError:
            fail(context: context, with: .protocolViolation("the daemon sent a \(error.length)-byte frame, above the client's maximum of \(error.maximum)"))
        case ByteToMessageDecoderError.leftoverDataWhenDone:
            fail(context: context, with: closedError("the connection ended in the middle of a response"))
        default:
            fail(context: context, with: closedError("connection error: \(TokenClientError.reason(for: error))"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(closedError("the daemon closed the connection"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(closedError("the connection was closed"))
    }

    // MARK: Failing

    private func closedError(_ reason: String) -> TokenClientError {
        guard let reply = connectionError, !reply.status.isSuccess else { return .connectionClosed(reason) }
        let detail = reply.message ?? "the daemon replied \(reply.status.name)"
        return .connectionClosed("\(detail) (then: \(reason))", status: reply.status)
    }

    private func fail(context: ChannelHandlerContext, with error: TokenClientError) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: TokenClientError) {
        nearCache?.connectionLost()
        if failure == nil { failure = error }
        let waiting = pending
        pending.removeAll()
        for promise in waiting.values {
            promise.fail(error)
        }
    }
}

@available(*, unavailable)
extension ResponseRouter: Sendable {}
