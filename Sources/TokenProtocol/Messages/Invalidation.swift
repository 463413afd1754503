import NIOCore

/// What an invalidation frame (opcode `invalidate`, request id 0) tells a near cache to drop
/// (proto-spec 12.17).
public enum Invalidation: Sendable, Hashable {
    /// Every answer about this login (revoked by token or session id, or by reuse detection).
    case session(String)
    /// Every answer about this subject's logins (revoked by subject); compared as bytes.
    case subject(String)
    /// Every answer (the daemon's keys were reloaded).
    case flush

    /// Reads a frame's fields. A frame naming none of the three is `flush`, as the spec says.
    public init(fields: Fields) throws(ProtocolError) {
        if let session = try fields.string(.sessionID) {
            self = .session(session)
        } else if let subject = try fields.string(.subject) {
            self = .subject(subject)
        } else {
            self = .flush
        }
    }

    public var fields: Fields {
        var fields = Fields()
        switch self {
        case .session(let id): fields.append(.sessionID, string: id)
        case .subject(let subject): fields.append(.subject, string: subject)
        case .flush: fields.append(.flush, bool: true)
        }
        return fields
    }

    /// The frame as the daemon writes it: a response to no request.
    public var frame: Response {
        Response(opcode: .invalidate, id: 0, status: .ok, fields: fields)
    }

    /// Whether `response` is an invalidation frame rather than a reply.
    public static func isInvalidation(_ response: Response) -> Bool {
        response.opcode == .invalidate && response.id == 0
    }
}
