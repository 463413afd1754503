import Logging
import NIOCore
import NIOEmbedded
import Testing
@testable import TokenServer
import TokenProtocol

/// The binary socket's connection handling on an `EmbeddedChannel`: frames in, frames out,
/// with the service core behind it (embedded store, manual clock).
@Suite struct ConnectionHandlerTests {
    let fixture: ServiceFixture
    let channel: EmbeddedChannel

    init(maxInFlight: Int = 256) throws {
        fixture = try ServiceFixture()
        channel = EmbeddedChannel(loop: fixture.loop)
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(FrameDecoder(maximumFrameSize: TokendConfiguration.minimumFrameSize)),
            ConnectionHandler(service: fixture.service, peer: fixture.owner, maxInFlight: maxInFlight, logger: Logger(label: "test")),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_000)).wait()
    }

    static func frames(_ requests: [Request]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for request in requests { buffer.writeFrame(request) }
        return buffer
    }

    /// Every buffer written to the socket, as it was written.
    func writes() throws -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out.append(buffer) }
        return out
    }

    static func responses(_ buffers: [ByteBuffer]) throws -> [Response] {
        var all = ByteBuffer()
        for var buffer in buffers { all.writeBuffer(&buffer) }
        var responses: [Response] = []
        while let length = all.readInteger(as: UInt32.self) {
            responses.append(try Response(body: all.readSlice(length: Int(length))!))
        }
        return responses
    }

    @Test func pipelinedRequestsOfOneReadAreAnsweredInOrderWithOneWrite() throws {
        try channel.writeInbound(Self.frames((1...16).map { Request(opcode: .ping, id: UInt32($0)) }))
        fixture.loop.run()
        let written = try writes()
        #expect(written.count == 1, "one buffer for the read's sixteen answers")
        let responses = try Self.responses(written)
        #expect(responses.map(\.id) == Array(1...16))
        #expect(responses.allSatisfy { $0.status == .ok && $0.opcode == .ping })
    }

    /// More answers than one gathered buffer holds (64 KiB): handed over as they fill, and all
    /// flushed at the end of the read.
    @Test func manyLargeAnswersOfOneReadAreAllFlushed() throws {
        try channel.writeInbound(Self.frames((1...100).map { Request(opcode: .stats, id: UInt32($0)) }))
        fixture.loop.run()
        let written = try writes()
        #expect(written.count > 1 && written.map(\.readableBytes).reduce(0, +) > 64 * 1024)
        #expect(try Self.responses(written).map(\.id) == Array(1...100))
    }

    @Test func aBadFrameIsAnsweredAndTheConnectionGoesOn() throws {
        try channel.writeInbound(Self.frames([Request(opcode: Opcode(0x7F), id: 9), Request(opcode: .ping, id: 10)]))
        fixture.loop.run()
        let responses = try Self.responses(try writes())
        #expect(responses.map(\.status) == [.unknownOperation, .ok])
        #expect(responses.map(\.id) == [9, 10])
        #expect(channel.isActive)
    }

    @Test func nothingStartsWhileTheClientTakesNoAnswers() throws {
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(Self.frames((1...3).map { Request(opcode: .ping, id: UInt32($0)) }))
        fixture.loop.run()
        #expect(try writes().isEmpty, "no request starts while the channel is not writable")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        fixture.loop.run()
        #expect(try Self.responses(try writes()).map(\.id) == [1, 2, 3])
    }

    @Test func anOversizedFrameIsRefusedAndTheConnectionClosedAfterItsAnswers() throws {
        var bytes = Self.frames([Request(opcode: .ping, id: 1)])
        bytes.writeInteger(UInt32(TokendConfiguration.minimumFrameSize + 1))
        bytes.writeBytes([0, 1, 2])
        try? channel.writeInbound(bytes)
        fixture.loop.run()
        let responses = try Self.responses(try writes())
        #expect(responses.map(\.status) == [.ok, .tooLarge])
        #expect(!channel.isActive)
    }

    @Test func shutdownAnswersWhatWasReceivedThenCloses() throws {
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(Self.frames([Request(opcode: .ping, id: 1), Request(opcode: .ping, id: 2)]))
        channel.pipeline.fireUserInboundEventTriggered(ShutdownEvent())
        fixture.loop.run()
        #expect(channel.isActive, "the waiting requests are still to be answered")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        fixture.loop.run()
        #expect(try Self.responses(try writes()).map(\.id) == [1, 2])
        #expect(!channel.isActive)
    }
}
