import NIOCore
import NIOPosix

/// Commands written together, answered in order.
struct RedisBatch {
    var commands: [RedisCommand]
    var promises: [EventLoopPromise<RESPValue>]
}

/// Writes batches and hands each reply to the oldest waiting promise (Redis answers in order).
///
/// Every command must be answered within the timeout. Replies come in order, so only the oldest
/// waiting command can be overdue: a check a few times per timeout looks at it alone, instead
/// of a timer per command.
final class RedisChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisBatch
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<(promise: EventLoopPromise<RESPValue>, deadline: NIODeadline)>(initialCapacity: 64)
    private var context: ChannelHandlerContext?
    private let timeout: TimeAmount
    private var overdueCheck: RepeatedTask?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let tick = TimeAmount.nanoseconds(max(timeout.nanoseconds / 4, 5_000_000))
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        overdueCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in
            if let oldest = handler.value.waiting.first, oldest.deadline <= .now() { handler.value.timeOut() }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        overdueCheck?.cancel()
        overdueCheck = nil
        self.context = nil
        failAll(RedisError.connectionClosed)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let batch = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64 * batch.commands.count)
        for command in batch.commands { command.encode(into: &buffer) }
        let deadline = NIODeadline.now() + timeout
        for promise in batch.promises { waiting.append((promise, deadline)) }
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
        guard let oldest = waiting.popFirst() else {
            // A reply nobody asked for: the stream is out of step.
            context.close(promise: nil)
            return
        }
        oldest.promise.succeed(value)
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
        // Closed before anyone hears of the timeout, so that a retry never picks this connection.
        let overdue = waiting
        waiting.removeAll()
        context?.close(promise: nil)
        for entry in overdue { entry.promise.fail(RedisError.timeout) }
    }

    private func failAll(_ error: RedisError) {
        while let oldest = waiting.popFirst() { oldest.promise.fail(error) }
    }
}

/// One connection to one Redis node, pipelined: any number of commands may be in flight.
final class RedisConnection: Sendable {
    let channel: any Channel
    init(channel: any Channel) {
        self.channel = channel
    }

    var isActive: Bool { channel.isActive }

    /// Sends `commands` in one write; each future completes with its reply, or fails when no
    /// reply came within the connection's timeout (the connection is then closed).
    func send(_ commands: [RedisCommand], timeout: TimeAmount) -> [EventLoopFuture<RESPValue>] {
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
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
    static func connect(to address: RedisAddress, on loop: any EventLoop, timeout: TimeAmount, tls: RedisTLSContext? = nil) -> EventLoopFuture<RedisConnection> {
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, case .tcp(let host, _) = address {
                        try channel.pipeline.syncOperations.addHandler(try tls.handler(host: host))
                    }
                    let handler = RedisChannelHandler(timeout: timeout)
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
        return connected.map { channel in RedisConnection(channel: channel) }.flatMapErrorThrowing { error in
            throw error as? RedisError ?? RedisError.connectionFailed("\(error)")
        }
    }
}
