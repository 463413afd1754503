import NIOCore

/// The protocol version this code speaks.
public enum ProtocolVersion {
    public static let current: UInt8 = 1
    public static let supported: ClosedRange<UInt8> = 1...1
    /// Default largest frame, the 4-byte length prefix excluded.
    public static let defaultMaximumFrameSize = 64 * 1024
}

/// A request frame's body.
///
///     ┌────────────┬───────────┬──────────────────────┬────────┐
///     │ version u8 │ opcode u8 │ request id u32 (BE)  │ fields │
///     └────────────┴───────────┴──────────────────────┴────────┘
public struct Request: Sendable, Hashable {
    public static let headerLength = 6

    public var version: UInt8
    public var opcode: Opcode
    public var id: UInt32
    public var fields: Fields

    public init(version: UInt8 = ProtocolVersion.current, opcode: Opcode, id: UInt32, fields: Fields = Fields()) {
        self.version = version
        self.opcode = opcode
        self.id = id
        self.fields = fields
    }
}

/// A response frame's body.
///
///     ┌────────────┬───────────┬──────────────────────┬────────────────┬────────┐
///     │ version u8 │ opcode u8 │ request id u32 (BE)  │ status u16 (BE)│ fields │
///     └────────────┴───────────┴──────────────────────┴────────────────┴────────┘
public struct Response: Sendable, Hashable {
    public static let headerLength = 8

    public var version: UInt8
    public var opcode: Opcode
    public var id: UInt32
    public var status: Status
    public var fields: Fields

    public init(version: UInt8 = ProtocolVersion.current, opcode: Opcode, id: UInt32, status: Status, fields: Fields = Fields()) {
        self.version = version
        self.opcode = opcode
        self.id = id
        self.status = status
        self.fields = fields
    }

    /// An error response carrying `message`.
    public init(replyingTo opcode: Opcode, id: UInt32, status: Status, message: String) {
        var fields = Fields()
        fields.append(.message, string: message)
        self.init(opcode: opcode, id: id, status: status, fields: fields)
    }

    public var message: String? { try? fields.string(.message) }
}

extension ByteBuffer {
    /// Writes `request` as a whole frame: length prefix, header, fields.
    public mutating func writeFrame(_ request: Request) {
        writeInteger(UInt32(Request.headerLength + request.fields.encodedLength))
        writeInteger(request.version)
        writeInteger(request.opcode.rawValue)
        writeInteger(request.id)
        request.fields.write(to: &self)
    }

    /// Writes `response` as a whole frame: length prefix, header, fields.
    public mutating func writeFrame(_ response: Response) {
        writeInteger(UInt32(Response.headerLength + response.fields.encodedLength))
        writeInteger(response.version)
        writeInteger(response.opcode.rawValue)
        writeInteger(response.id)
        writeInteger(response.status.rawValue)
        response.fields.write(to: &self)
    }
}

extension Request {
    /// Parses a frame body (the length prefix already removed). A body too short for the
    /// header throws with request id 0; field errors carry the request's id via `RequestError`.
    public init(body: ByteBuffer) throws(RequestError) {
        var body = body
        guard let version = body.readInteger(as: UInt8.self),
              let opcode = body.readInteger(as: UInt8.self),
              let id = body.readInteger(as: UInt32.self)
        else {
            throw RequestError(opcode: Opcode(0), id: 0, error: .badRequest("the frame body is shorter than the 6-byte request header"))
        }
        // Version first, then opcode, then fields: a peer from the future learns the version
        // problem even when its fields make no sense to this daemon.
        guard ProtocolVersion.supported.contains(version) else {
            let range = ProtocolVersion.supported
            throw RequestError(opcode: Opcode(opcode), id: id, error: ProtocolError(
                .unsupportedVersion, "protocol version \(version) is not supported; this daemon speaks \(range.lowerBound)...\(range.upperBound)"))
        }
        guard Opcode.known.contains(Opcode(opcode)) else {
            throw RequestError(opcode: Opcode(opcode), id: id, error: ProtocolError(.unknownOperation, "unknown operation \(opcode)"))
        }
        self.version = version
        self.opcode = Opcode(opcode)
        self.id = id
        do {
            self.fields = try Fields(parsing: body)
        } catch {
            throw RequestError(opcode: Opcode(opcode), id: id, error: error)
        }
    }
}

/// A request that could not be parsed, with what is known of it for the error reply.
public struct RequestError: Error, Sendable {
    public let opcode: Opcode
    public let id: UInt32
    public let error: ProtocolError
}

extension Response {
    /// Parses a frame body (the length prefix already removed).
    public init(body: ByteBuffer) throws(ProtocolError) {
        var body = body
        guard let version = body.readInteger(as: UInt8.self),
              let opcode = body.readInteger(as: UInt8.self),
              let id = body.readInteger(as: UInt32.self),
              let status = body.readInteger(as: UInt16.self)
        else { throw .badRequest("the frame body is shorter than the 8-byte response header") }
        self.version = version
        self.opcode = Opcode(opcode)
        self.id = id
        self.status = Status(status)
        self.fields = try Fields(parsing: body)
    }
}
