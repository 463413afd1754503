/// An operation a request asks for. Open: an unknown value still decodes, so that the daemon
/// can answer it with `unknown_operation` instead of dropping the connection.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public static let hello = Opcode(0x01)
    public static let ping = Opcode(0x02)
    public static let issue = Opcode(0x03)
    public static let verify = Opcode(0x04)
    public static let renew = Opcode(0x05)
    public static let refresh = Opcode(0x06)
    public static let revoke = Opcode(0x07)
    /// Receive invalidations on this connection, for a near cache (proto-spec 12.16).
    public static let track = Opcode(0x08)
    /// An invalidation frame, sent by the daemon on tracking connections; never a request.
    public static let invalidate = Opcode(0x09)
    public static let stats = Opcode(0x10)
    public static let sessions = Opcode(0x11)
    public static let keysList = Opcode(0x12)
    public static let keysJWKS = Opcode(0x13)
    public static let keysRotate = Opcode(0x14)
    /// Write a snapshot of the state now (admin).
    public static let snapshot = Opcode(0x15)
    /// Read the key directory again (admin), as SIGHUP does.
    public static let keysReload = Opcode(0x16)
    /// Every metric in the Prometheus text format (admin).
    public static let metrics = Opcode(0x17)

    public static let known: [Opcode] = [.hello, .ping, .issue, .verify, .renew, .refresh, .revoke, .track, .stats, .sessions, .keysList, .keysJWKS, .keysRotate, .snapshot, .keysReload, .metrics]

    /// Lower snake case, as the spec and logs name it.
    public var name: String {
        switch self {
        case .hello: "hello"
        case .ping: "ping"
        case .issue: "issue"
        case .verify: "verify"
        case .renew: "renew"
        case .refresh: "refresh"
        case .revoke: "revoke"
        case .track: "track"
        case .invalidate: "invalidate"
        case .stats: "stats"
        case .sessions: "sessions"
        case .keysList: "keys_list"
        case .keysJWKS: "keys_jwks"
        case .keysRotate: "keys_rotate"
        case .snapshot: "snapshot"
        case .keysReload: "keys_reload"
        case .metrics: "metrics"
        default: "unknown_\(rawValue)"
        }
    }

    public var description: String { name }
}
