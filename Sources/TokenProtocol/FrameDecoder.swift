import NIOCore

/// Splits a byte stream into frame bodies: a 4-byte big-endian length, then that many bytes.
///
/// A length above `maximumFrameSize` throws `FrameTooLargeError` before any of the body is
/// buffered, so a hostile length never makes the reader allocate.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maximumFrameSize: Int

    public init(maximumFrameSize: Int = ProtocolVersion.defaultMaximumFrameSize) {
        self.maximumFrameSize = maximumFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maximumFrameSize else {
            throw FrameTooLargeError(length: Int(length), maximum: maximumFrameSize)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

/// A frame announced a length above the limit.
public struct FrameTooLargeError: Error, Hashable, Sendable, CustomStringConvertible {
    public let length: Int
    public let maximum: Int
    public var description: String { "frame of \(length) bytes exceeds the maximum of \(maximum)" }
}
