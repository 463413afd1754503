import NIOConcurrencyHelpers
import NIOCore

/// One connection in publish/subscribe mode, listening to one channel, kept open: after a loss
/// it reconnects (with the node's backoff) and subscribes again. It says what it hears, and
/// when it starts and stops listening, so that its owner can tell what it may have missed.
///
/// It connects to the endpoint's own address: a message published on any node of a Redis
/// Cluster reaches the subscribers of every node.
public final class RedisSubscriber: Sendable {
    public enum Event: Sendable, Hashable {
        /// Subscribed: every message published from now on is delivered.
        case listening
        /// Not (or no longer) subscribed: messages published meanwhile are lost.
        case deaf(String)
        case message([UInt8])
    }

    private let node: RedisNode
    private let channelName: [UInt8]
    private let loop: any EventLoop
    private let timeout: TimeAmount
    private let deliver: @Sendable (Event) -> Void
    private let state = NIOLockedValueBox(State())

    private struct State {
        var closed = false
        var channel: (any Channel)?
    }

    public init(configuration: RedisClient.Configuration, channel: [UInt8], on loop: any EventLoop,
                deliver: @escaping @Sendable (Event) -> Void) {
        var settings = configuration
        settings.scripts = []
        node = RedisNode(address: configuration.endpoint.address, settings: settings)
        channelName = channel
        self.loop = loop
        timeout = configuration.timeout
        self.deliver = deliver
    }

    public func start() {
        connect()
    }

    public func close() {
        let channel = state.withLockedValue { state in
            state.closed = true
            return state.channel
        }
        channel?.close(promise: nil)
        node.close()
    }

    private func connect() {
        guard !state.withLockedValue({ $0.closed }) else { return }
        node.connection(on: loop).flatMap { connection in
            // The connection was made (and authenticated) for commands; from here on it only
            // listens, and its handler is replaced by one that expects pushed messages.
            connection.channel.eventLoop.flatSubmit {
                let pipeline = connection.channel.pipeline.syncOperations
                do {
                    let commands = try pipeline.context(handlerType: RedisChannelHandler.self)
                    return pipeline.removeHandler(context: commands).flatMapThrowing {
                        let listener = SubscriberHandler(channel: self.channelName, pingEvery: self.timeout, deliver: self.deliver)
                        try connection.channel.pipeline.syncOperations.addHandler(listener)
                        return connection.channel
                    }
                } catch {
                    return connection.channel.eventLoop.makeFailedFuture(error)
                }
            }
        }.whenComplete { result in
            switch result {
            case .success(let channel):
                let closed = self.state.withLockedValue { state in
                    state.channel = channel
                    return state.closed
                }
                if closed { channel.close(promise: nil) }
                channel.closeFuture.whenComplete { _ in
                    self.deliver(.deaf("the subscription's connection closed"))
                    self.retry()
                }
            case .failure(let error):
                self.deliver(.deaf("cannot subscribe: \(error)"))
                self.retry()
            }
        }
    }

    private func retry() {
        guard !state.withLockedValue({ $0.closed }) else { return }
        loop.scheduleTask(in: .milliseconds(100)) { self.connect() }
    }
}

/// Subscribes, then hands every message to `deliver`; pings every `pingEvery` and closes the
/// connection when nothing has been heard for three times that, so that a Redis gone silent is
/// found out, not waited for.
final class SubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = RESPValue
    typealias OutboundOut = ByteBuffer

    private let channel: [UInt8]
    private let pingEvery: TimeAmount
    private let deliver: @Sendable (RedisSubscriber.Event) -> Void
    private var lastHeard = NIODeadline.now()
    private var pinger: RepeatedTask?

    init(channel: [UInt8], pingEvery: TimeAmount, deliver: @escaping @Sendable (RedisSubscriber.Event) -> Void) {
        self.channel = channel
        self.pingEvery = pingEvery
        self.deliver = deliver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        send(RedisCommand(.string("SUBSCRIBE"), .bytes(channel)), context: context)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        pinger = context.eventLoop.scheduleRepeatedTask(initialDelay: pingEvery, delay: pingEvery) { _ in
            let (handler, context) = bound.value
            guard NIODeadline.now() - handler.lastHeard < handler.pingEvery * 3 else {
                context.close(promise: nil)
                return
            }
            handler.send(RedisCommand("PING"), context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        pinger?.cancel()
        pinger = nil
    }

    private func send(_ command: RedisCommand, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        command.encode(into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastHeard = .now()
        guard let parts = unwrapInboundIn(data).array, let kind = parts.first?.string else {
            // Anything else (an error reply) means the subscription is not what it should be.
            context.close(promise: nil)
            return
        }
        switch kind.lowercased() {
        case "subscribe": deliver(.listening)
        case "message": if parts.count == 3, let payload = parts[2].bytes { deliver(.message(payload)) }
        default: break  // "pong"
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
