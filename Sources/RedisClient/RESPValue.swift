import NIOCore

/// A RESP2 reply from Redis.
public enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    /// An error reply: its first word is the error kind (`ERR`, `MOVED`, `NOSCRIPT`...).
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    /// A null bulk string or null array.
    case null
    case array([RESPValue])

    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text): Array(text.utf8)
        default: nil
        }
    }

    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .bulkString(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}

/// One argument of a command.
public enum RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral {
    case bytes([UInt8])
    case string(String)
    case integer(Int64)

    public init(stringLiteral value: String) { self = .string(value) }
}

/// A command: its name and arguments, all sent as bulk strings.
public struct RedisCommand: Sendable, Hashable {
    public var arguments: [RedisArgument]

    public init(_ arguments: [RedisArgument]) { self.arguments = arguments }
    public init(_ arguments: RedisArgument...) { self.arguments = arguments }

    /// Appends the command as a RESP array of bulk strings.
    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeString(String(arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            switch argument {
            case .bytes(let bytes): Self.writeBulk(bytes, into: &buffer)
            case .string(let string): Self.writeBulk(string.utf8, into: &buffer)
            case .integer(let value): Self.writeBulk(String(value).utf8, into: &buffer)
            }
        }
    }

    private static func writeBulk<Bytes: Collection<UInt8>>(_ bytes: Bytes, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "$"))
        buffer.writeString(String(bytes.count))
        buffer.writeStaticString("\r\n")
        buffer.writeBytes(bytes)
        buffer.writeStaticString("\r\n")
    }
}
