import NIOCore

/// Decodes RESP2 replies. A reply is handed on only once it is complete; limits keep a
/// misbehaving server from making us buffer without end.
public struct RESPDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = RESPValue

    /// Largest bulk string accepted (Redis's own limit is 512 MB; tokend's values are small).
    public static let maximumBulkLength = 64 * 1024 * 1024
    public static let maximumArrayLength = 1 << 20
    public static let maximumDepth = 8

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try Self.decode(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    /// One complete reply from the front of `buffer`, consuming it; nil when more bytes are needed.
    public static func decode(_ buffer: inout ByteBuffer) throws(RESPError) -> RESPValue? {
        var index = buffer.readerIndex
        guard let value = try parse(buffer, &index, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: index)
        return value
    }

    private static func parse(_ buffer: ByteBuffer, _ index: inout Int, depth: Int) throws(RESPError) -> RESPValue? {
        guard let type = buffer.getInteger(at: index, as: UInt8.self) else { return nil }
        guard let (line, next) = try readLine(buffer, from: index + 1) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            index = next
            return .simpleString(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: "-"):
            index = next
            return .error(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: ":"):
            index = next
            return .integer(try number(line))
        case UInt8(ascii: "$"):
            let length = try number(line)
            if length == -1 {
                index = next
                return .null
            }
            guard length >= 0, length <= maximumBulkLength else { throw RESPError("bulk string length \(length) out of range") }
            guard buffer.writerIndex - next >= Int(length) + 2 else { return nil }
            guard buffer.getInteger(at: next + Int(length), as: UInt16.self) == 0x0D0A else { throw RESPError("bulk string not followed by CRLF") }
            let bytes = buffer.getBytes(at: next, length: Int(length))!
            index = next + Int(length) + 2
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            let count = try number(line)
            if count == -1 {
                index = next
                return .null
            }
            guard count >= 0, count <= maximumArrayLength else { throw RESPError("array length \(count) out of range") }
            guard depth < maximumDepth else { throw RESPError("arrays nested deeper than \(maximumDepth)") }
            var cursor = next
            var elements: [RESPValue] = []
            // Not more up front than a partial reply proves: the count alone is only a claim.
            elements.reserveCapacity(min(Int(count), 1024))
            for _ in 0..<count {
                guard let element = try parse(buffer, &cursor, depth: depth + 1) else { return nil }
                elements.append(element)
            }
            index = cursor
            return .array(elements)
        default:
            throw RESPError("unknown reply type byte 0x\(String(type, radix: 16))")
        }
    }

    /// The bytes up to the next CRLF and the index after it; nil when no CRLF yet.
    private static func readLine(_ buffer: ByteBuffer, from start: Int) throws(RESPError) -> ([UInt8], Int)? {
        let limit = min(buffer.writerIndex, start + 64 * 1024)
        var position = start
        while position + 1 < limit {
            if buffer.getInteger(at: position, as: UInt8.self) == UInt8(ascii: "\r") {
                guard buffer.getInteger(at: position + 1, as: UInt8.self) == UInt8(ascii: "\n") else { throw RESPError("CR not followed by LF") }
                return (buffer.getBytes(at: start, length: position - start)!, position + 2)
            }
            position += 1
        }
        if limit - start >= 64 * 1024 { throw RESPError("reply line longer than 64 KiB") }
        return nil
    }

    private static func number(_ line: [UInt8]) throws(RESPError) -> Int64 {
        guard let value = Int64(String(decoding: line, as: UTF8.self)) else { throw RESPError("not an integer: \(String(decoding: line.prefix(32), as: UTF8.self))") }
        return value
    }
}

/// A reply that breaks RESP: the connection cannot be trusted after it.
public struct RESPError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
