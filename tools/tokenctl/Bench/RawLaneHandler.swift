import NIOCore
import TokenProtocol

/// A connection's lanes run straight on its event loop, for requests that never change
/// (`ping`, `verify`): the frames are encoded once, each answer sends the slot's next request
/// at once, and the writes of one read burst go out in one flush. This keeps the load
/// generator's own cost per request small, in the manner of redis-benchmark's event loop.
final class RawLaneHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Sent through the pipeline to start the lanes once every connection is open.
    struct Start {}

    private let frames: [ByteBuffer]
    private let control: BenchControl
    private let recorder: BenchRecorder
    private var sentAt: [UInt64]
    private var inFlight = 0
    let done: EventLoopPromise<Void>

    init(request: Request, pipeline: Int, control: BenchControl, recorder: BenchRecorder, eventLoop: any EventLoop) {
        frames = (0..<pipeline).map { slot in
            var request = request
            request.id = UInt32(slot + 1)
            var frame = ByteBuffer()
            frame.writeFrame(request)
            return frame
        }
        sentAt = Array(repeating: 0, count: pipeline)
        self.control = control
        self.recorder = recorder
        done = eventLoop.makePromise(of: Void.self)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is Start else { return context.fireUserInboundEventTriggered(event) }
        let now = BenchClock.now()
        for slot in frames.indices where control.claim(now: now) {
            send(slot, at: now, context: context)
        }
        context.flush()
        if inFlight == 0 { done.succeed() }
    }

    private func send(_ slot: Int, at now: UInt64, context: ChannelHandlerContext) {
        sentAt[slot] = now
        inFlight += 1
        context.write(wrapOutboundOut(frames[slot]), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let body = unwrapInboundIn(data)
        let now = BenchClock.now()
        // The response header: version, opcode, id (u32), status (u16).
        guard let id = body.getInteger(at: body.readerIndex + 2, as: UInt32.self),
              let rawStatus = body.getInteger(at: body.readerIndex + 6, as: UInt16.self),
              id >= 1, Int(id) <= frames.count
        else {
            recorder.refused("protocol_violation")
            return
        }
        let slot = Int(id) - 1
        inFlight -= 1
        recorder.answered(nanoseconds: now &- sentAt[slot])
        control.complete()
        let status = Status(rawStatus)
        if status == .renewed { recorder.countRenewal() }
        if !status.isSuccess { recorder.refused(status.name) }
        if control.claim(now: now) {
            send(slot, at: now, context: context)
        } else if inFlight == 0 {
            done.succeed()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for _ in 0..<inFlight {
            recorder.lost("connection_closed")
            control.complete()
        }
        inFlight = 0
        done.succeed()
    }
}
