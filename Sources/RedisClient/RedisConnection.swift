import NIOCore
import NIOPosix

/// Commands written together, answered in order.
struct RedisBatch {
    var commands: [RedisCommand]
    var promises: [EventLoopPromise<RESPValue>]
}

/// Writes batches and hands each reply to the oldest waiting promise (Redis answers in order).
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisBatch
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>(initialCapacity: 64)
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        failAll(RedisError.connectionClosed)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let batch = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64 * batch.commands.count)
        for command in batch.commands { command.encode(into: &buffer) }
        waiting.append(contentsOf: batch.promises)
        context.write(wrapOutboundOut(buffer), promise: promise)
        // One flush (one syscall) for every command written in this turn of the event loop: the
        // verifies of one read burst from a client reach Redis together.
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    private var flushScheduled = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let promise = waiting.popFirst() else {
            // A reply nobody asked for: the stream is out of step.
            context.close(promise: nil)
            return
        }
        promise.succeed(value)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error is RESPError ? RedisError.protocolViolation("\(error)") : RedisError.connectionFailed("\(error)"))
        context.close(promise: nil)
    }

    /// A reply is overdue: fail everything waiting and drop the connection, whose replies can
    /// no longer be matched to requests.
    func timeOut() {
        failAll(RedisError.timeout)
        context?.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        while let promise = waiting.popFirst() { promise.fail(error) }
    }
}

/// One connection to one Redis node, pipelined: any number of commands may be in flight.
final class RedisConnection: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<RedisChannelHandler>

    init(channel: any Channel, handler: RedisChannelHandler) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    var isActive: Bool { channel.isActive }

    /// Sends `commands` in one write; each future completes with its reply, or fails when no
    /// reply came within `timeout` (the connection is then closed).
    func send(_ commands: [RedisCommand], timeout: TimeAmount) -> [EventLoopFuture<RESPValue>] {
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        let handler = handler
        let timer = loop.scheduleTask(in: timeout) { handler.value.timeOut() }
        promises.last!.futureResult.whenComplete { _ in timer.cancel() }
        // No flush here: the handler flushes once per event-loop turn.
        channel.write(RedisBatch(commands: commands, promises: promises)).whenFailure { error in
            for promise in promises { promise.fail(RedisError.connectionFailed("\(error)")) }
        }
        return promises.map(\.futureResult)
    }

    func send(_ command: RedisCommand, timeout: TimeAmount) -> EventLoopFuture<RESPValue> {
        send([command], timeout: timeout)[0]
    }

    /// Connects, then runs `handshake` (AUTH, SELECT, script loading) before handing the
    /// connection out.
    static func connect(to address: RedisAddress, on loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<RedisConnection> {
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = RedisChannelHandler()
                    try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(RESPDecoder()), handler])
                }
            }
        let connected: EventLoopFuture<any Channel>
        switch address {
        case .tcp(let host, let port):
            connected = bootstrap.channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1).connect(host: host, port: port)
        case .unix(let path):
            connected = bootstrap.connect(unixDomainSocketPath: path)
        }
        return connected.flatMapThrowing { channel in
            let handler = try channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self)
            return RedisConnection(channel: channel, handler: handler)
        }.flatMapErrorThrowing { error in
            throw error as? RedisError ?? RedisError.connectionFailed("\(error)")
        }
    }
}
