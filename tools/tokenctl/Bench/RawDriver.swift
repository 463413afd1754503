import NIOCore
import NIOPosix
import TokenClient
import TokenProtocol

/// Runs `ping` and `verify` on ``RawLaneHandler`` connections: one channel per connection,
/// opened before the clock starts.
struct RawDriver {
    private let channels: [any Channel]
    private let handlers: [RawLaneHandler]
    private let recorders: [BenchRecorder]

    /// Opens `connections` channels to `socket`, ready to send `request` `pipeline` at a time.
    static func connect(socket: String, connections: Int, pipeline: Int, request: Request, control: BenchControl) async throws -> RawDriver {
        let recorders = (0..<min(connections, BenchRecorder.maximumCount)).map { _ in BenchRecorder() }
        var channels: [any Channel] = []
        var handlers: [RawLaneHandler] = []
        for index in 0..<connections {
            let recorder = recorders[index % recorders.count]
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = RawLaneHandler(request: request, pipeline: pipeline, control: control, recorder: recorder, eventLoop: channel.eventLoop)
                    try channel.pipeline.syncOperations.addHandlers(ByteToMessageHandler(FrameDecoder(maximumFrameSize: 1 << 20)), handler)
                }
            }
            do {
                let channel = try await bootstrap.connect(unixDomainSocketPath: socket).get()
                channels.append(channel)
                handlers.append(try await channel.pipeline.handler(type: RawLaneHandler.self).get())
            } catch {
                for channel in channels { try? await channel.close() }
                throw TokenClientError(.unreachable, message: "cannot connect to \(socket): \(error)")
            }
        }
        return RawDriver(channels: channels, handlers: handlers, recorders: recorders)
    }

    /// Starts every connection's lanes and waits until they have all finished.
    func run() async -> BenchTally {
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(RawLaneHandler.Start()) }
        for handler in handlers { try? await handler.done.futureResult.get() }
        for channel in channels { try? await channel.close() }
        var total = BenchTally()
        for recorder in recorders { total.merge(recorder.snapshot) }
        return total
    }
}
