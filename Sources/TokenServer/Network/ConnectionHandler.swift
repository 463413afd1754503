#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import TokenProtocol

/// Serves one client connection: frame bodies in, responses out.
///
/// Thin by design: parsing lives in TokenProtocol, the operations in `TokenService`, and flow
/// control and the connection's lifetime in `ConnectionStateMachine`, which this handler asks
/// and obeys. Decoded requests wait in its queue and start only while the client takes its
/// responses; while anything waits, the handler stops reading from the socket. A greedy or
/// stalled client therefore costs the daemon one read's worth of requests, and delays nobody.
/// What the handler owns itself is writing: the answers of one read go out together.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let service: TokenService
    private let peer: PeerCredentials
    private var logger: Logger
    private var state: ConnectionStateMachine
    /// Inside a read burst, responses answered at once are gathered in `outgoing` and written
    /// with one flush at `channelReadComplete`: pipelined requests cost one buffer and one
    /// syscall, not one each.
    private var inReadBurst = false
    private var outgoing: ByteBuffer?
    /// Gathered responses handed to the channel but not yet flushed.
    private var unflushed = false
    /// Gathered responses beyond this many bytes are handed to the channel at once, so that its
    /// back-pressure sees them.
    private static let outgoingLimit = 64 * 1024
    /// A connection that completes no request for this long, with none in flight, is closed.
    /// Counted from complete requests, not bytes: a peer that sends a byte now and then to
    /// hold its place is closed all the same.
    private let idleTimeout: TimeAmount?
    private var lastRequestAt = NIODeadline.now()
    private var idleCheck: RepeatedTask?

    init(service: TokenService, peer: PeerCredentials, maxInFlight: Int, idleTimeout: TimeAmount? = nil, logger: Logger) {
        self.service = service
        self.peer = peer
        self.state = ConnectionStateMachine(maxInFlight: maxInFlight)
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.logger[metadataKey: "peer.uid"] = "\(peer.uid)"
        self.logger[metadataKey: "peer.pid"] = "\(peer.pid)"
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let idleTimeout else { return }
        // Looked at four times per timeout: a connection closes within 1.25 timeouts of its last request.
        let period = TimeAmount.nanoseconds(max(idleTimeout.nanoseconds / 4, TimeAmount.milliseconds(250).nanoseconds))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            let (handler, context) = loopBound.value
            handler.closeIfIdle(idleTimeout, context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if state.tracking { service.invalidations.remove(context.channel) }
        context.fireChannelInactive()
    }

    private func closeIfIdle(_ idleTimeout: TimeAmount, context: ChannelHandlerContext) {
        // Nothing in flight: either nothing was asked, or requests wait because the client
        // stopped reading its responses. Both end here.
        guard state.closeIfIdle(idleFor: NIODeadline.now() - lastRequestAt, timeout: idleTimeout) else { return }
        logger.debug("closing idle connection", metadata: ["requests.queued": "\(state.queuedCount)"])
        idleCheck?.cancel()
        idleCheck = nil
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadBurst = true
        lastRequestAt = .now()
        guard state.phase == .serving else { return }
        do {
            state.received(try Request(body: unwrapInboundIn(data)))
        } catch {
            logger.debug("refused request", metadata: ["status": "\(error.error.status)", "error": "\(error.error.reason)"])
            service.statistics.record(error.opcode, error.error.status)
            write(Response(replyingTo: error.opcode, id: error.id, status: error.error.status, message: error.error.reason), context: context)
        }
        startQueued(context: context)
    }

    /// Set while `startQueued` loops: a request answered at once (the embedded store) must not
    /// start the next one from inside its own answer, or a long pipeline would recurse.
    private var starting = false

    /// Starts queued requests while the client keeps up.
    private func startQueued(context: ChannelHandlerContext) {
        guard !starting else { return }
        starting = true
        while let request = state.startNext(writable: context.channel.isWritable) {
            start(request, context: context)
        }
        starting = false
        updateReading(context: context)
        if state.closeIfDrained() { closeAfterWrites(context: context) }
    }

    /// Closes once everything written so far is out: writes complete in order, so the end of
    /// an empty one follows them all.
    private func closeAfterWrites(context: ChannelHandlerContext) {
        writeOutgoing(context: context, flush: false)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func start(_ request: Request, context: ChannelHandlerContext) {
        if request.opcode == .track, state.beginTracking() {
            // Registered before the reply is sent: every invalidation after it reaches the client.
            // It leaves the hub when it closes (channelInactive).
            service.invalidations.add(context.channel)
        }
        switch service.respond(to: request, peer: peer, tracking: state.tracking, on: context.eventLoop) {
        case .now(let response):
            finish(response, context: context)
        case .later(let future):
            // The embedded store answers on this loop; a shared store may answer elsewhere.
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            future.hop(to: context.eventLoop).whenSuccess { response in
                let (handler, context) = loopBound.value
                handler.finish(response, context: context)
            }
        }
    }

    private func finish(_ response: Response, context: ChannelHandlerContext) {
        state.finished()
        write(response, context: context)
        startQueued(context: context)
    }

    private func write(_ response: Response, context: ChannelHandlerContext) {
        let length = Response.headerLength + 4 + response.fields.encodedLength
        if inReadBurst {
            if outgoing == nil { outgoing = context.channel.allocator.buffer(capacity: max(length, 1024)) }
            outgoing!.writeFrame(response)
            if outgoing!.readableBytes >= Self.outgoingLimit { writeOutgoing(context: context, flush: false) }
        } else {
            var buffer = context.channel.allocator.buffer(capacity: length)
            buffer.writeFrame(response)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }

    private func writeOutgoing(context: ChannelHandlerContext, flush: Bool = true) {
        if let buffer = outgoing {
            outgoing = nil
            context.write(wrapOutboundOut(buffer), promise: nil)
            unflushed = true
        }
        if flush, unflushed {
            unflushed = false
            context.flush()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        writeOutgoing(context: context)
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        startQueued(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Reads only while nothing waits and the client takes its responses.
    private func updateReading(context: ChannelHandlerContext) {
        switch state.readAction(writable: context.channel.isWritable) {
        case .none:
            return
        case .startReading:
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            context.read()
        case .stopReading:
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The rest of an oversized frame keeps arriving while the connection drains.
        if state.phase != .serving, error is ByteToMessageDecoderError { return }
        if let tooLarge = error as? FrameTooLargeError {
            logger.notice("frame too large; closing connection", metadata: ["frame.length": "\(tooLarge.length)", "frame.maximum": "\(tooLarge.maximum)"])
            service.statistics.record(Opcode(0), .tooLarge)
            inReadBurst = false
            state.drain()
            updateReading(context: context)
            // The reply must reach the client before the close; requests already received
            // are answered too (startQueued closes once they are).
            writeOutgoing(context: context)
            var buffer = context.channel.allocator.buffer(capacity: 256)
            buffer.writeFrame(Response(replyingTo: Opcode(0), id: 0, status: .tooLarge, message: tooLarge.description))
            context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in self.startQueued(context: context) }
            return
        }
        if let ioError = error as? IOError, ioError.errnoCode == ECONNRESET || ioError.errnoCode == EPIPE {
            logger.debug("connection reset by peer")
        } else {
            logger.notice("connection error; closing", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ShutdownEvent:
            state.drain()
            startQueued(context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Sent to every connection at shutdown.
struct ShutdownEvent {
    /// Asks each of `channels` to finish what is in flight and close; waits up to `within`,
    /// then closes those still open.
    static func drain(_ channels: [any Channel], within: Duration) async {
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(ShutdownEvent()) }
        let deadline = ContinuousClock.now + within
        for channel in channels {
            while channel.isActive, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            if channel.isActive { try? await channel.close() }
        }
    }
}
