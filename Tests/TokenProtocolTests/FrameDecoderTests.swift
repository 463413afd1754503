import NIOCore
import NIOEmbedded
import Testing
import TokenProtocol

@Suite struct FrameDecoderTests {
    func channel(maximum: Int = 64) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameSize: maximum)))
        return channel
    }

    @Test func fragmentedFramesReassemble() throws {
        let channel = try channel()
        var frame = ByteBuffer()
        frame.writeFrame(Request(opcode: .ping, id: 1))
        frame.writeFrame(Request(opcode: .ping, id: 2))
        // One byte at a time.
        while let byte = frame.readSlice(length: 1) {
            try channel.writeInbound(byte)
        }
        let first = try #require(try channel.readInbound(as: ByteBuffer.self))
        let second = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(try Request(body: first).id == 1)
        #expect(try Request(body: second).id == 2)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test(arguments: [UInt32(65), UInt32.max, UInt32(1 << 31)])
    func oversizedLengthIsRefusedBeforeBuffering(length: UInt32) throws {
        let channel = try channel()
        var buffer = ByteBuffer()
        buffer.writeInteger(length)
        #expect(throws: FrameTooLargeError.self) { try channel.writeInbound(buffer) }
    }

    @Test func zeroLengthFrameIsAnEmptyBody() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 0]))
        let body = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(body.readableBytes == 0)
        #expect(throws: RequestError.self) { try Request(body: body) }
    }
}
