#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import TokenProtocol

/// Serves one client connection: frame bodies in, responses out.
///
/// Thin by design: parsing lives in TokenProtocol and the operations in `TokenService`. What
/// it owns is flow control: at most `maxInFlight` requests of this connection are being
/// answered at once; beyond that, or while the client does not read its responses (the
/// channel is not writable), the handler stops reading from the socket, so a greedy or
/// stalled client costs the daemon bounded memory and delays nobody else.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let service: TokenService
    private let peer: PeerCredentials
    private let maxInFlight: Int
    private var logger: Logger
    private var inFlight = 0
    private var reading = true
    private var draining = false

    init(service: TokenService, peer: PeerCredentials, maxInFlight: Int, logger: Logger) {
        self.service = service
        self.peer = peer
        self.maxInFlight = maxInFlight
        self.logger = logger
        self.logger[metadataKey: "peer.uid"] = "\(peer.uid)"
        self.logger[metadataKey: "peer.pid"] = "\(peer.pid)"
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let body = unwrapInboundIn(data)
        let request: Request
        do {
            request = try Request(body: body)
        } catch {
            logger.debug("bad request", metadata: ["error": "\(error.error)"])
            write(Response(replyingTo: error.opcode, id: error.id, status: error.error.status, message: error.error.reason), context: context)
            return
        }
        inFlight += 1
        updateReading(context: context)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        service.handle(request, peer: peer, on: context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            handler.inFlight -= 1
            switch result {
            case .success(let response):
                handler.write(response, context: context)
            case .failure(let error):
                handler.logger.error("request failed", metadata: ["error": "\(error)"])
                handler.write(Response(replyingTo: request.opcode, id: request.id, status: .internalError, message: "internal error"), context: context)
            }
            handler.updateReading(context: context)
            if handler.draining && handler.inFlight == 0 { context.close(promise: nil) }
        }
    }

    private func write(_ response: Response, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: Response.headerLength + 4 + response.fields.encodedLength)
        buffer.writeFrame(response)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        updateReading(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Reads only while there is room for more requests and the client takes its responses.
    private func updateReading(context: ChannelHandlerContext) {
        let shouldRead = !draining && inFlight < maxInFlight && context.channel.isWritable
        guard shouldRead != reading else { return }
        reading = shouldRead
        context.channel.setOption(ChannelOptions.autoRead, value: shouldRead).whenFailure { _ in }
        if shouldRead { context.read() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tooLarge = error as? FrameTooLargeError {
            logger.notice("frame too large; closing connection", metadata: ["frame.length": "\(tooLarge.length)", "frame.maximum": "\(tooLarge.maximum)"])
            write(Response(replyingTo: Opcode(0), id: 0, status: .tooLarge, message: tooLarge.description), context: context)
            // Answer the requests already in flight, then close.
            draining = true
            updateReading(context: context)
            if inFlight == 0 { context.close(promise: nil) }
            return
        } else if let ioError = error as? IOError, ioError.errnoCode == ECONNRESET || ioError.errnoCode == EPIPE {
            logger.debug("connection reset by peer")
        } else {
            logger.notice("connection error; closing", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ShutdownEvent:
            // Finish what is in flight, read nothing more, then close.
            draining = true
            updateReading(context: context)
            if inFlight == 0 { context.close(promise: nil) }
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            if inFlight == 0 {
                logger.debug("closing idle connection")
                context.close(promise: nil)
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Sent to every connection at shutdown.
struct ShutdownEvent {}
