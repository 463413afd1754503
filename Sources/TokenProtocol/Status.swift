/// The outcome of a request. One list, shared by the spec, TokenClient and `tokenctl --json`.
/// Open, so that a status added by a newer daemon still decodes.
public struct Status: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// Done; for verify, the token is valid and nothing changed.
    public static let ok = Status(0)
    /// Valid, and this call extended the sliding session.
    public static let renewed = Status(1)
    /// The token's own `exp` has passed.
    public static let expired = Status(2)
    /// The sliding session went idle for longer than its idle TTL.
    public static let sessionExpired = Status(3)
    /// No such session or family (never issued here, or its state is gone).
    public static let sessionUnknown = Status(4)
    /// The session or family was revoked (logout, admin, or reuse detection).
    public static let revoked = Status(5)
    /// The fingerprint differs from the one the token was issued for.
    public static let fingerprintMismatch = Status(6)
    /// A spent refresh token was presented after the dedup window: the family is now revoked.
    public static let reuseDetected = Status(7)
    /// The login reached its absolute maximum lifetime.
    public static let maxLifetimeReached = Status(8)
    /// Not a well-formed token (segments, base64url, JSON, claims).
    public static let malformedToken = Status(9)
    /// The signature does not verify, or no trusted key/algorithm matches.
    public static let badSignature = Status(10)
    /// A token of another kind (access where refresh is needed, and so on).
    public static let wrongTokenType = Status(11)
    /// The peer's uid/gid may not perform this operation.
    public static let forbidden = Status(12)
    /// The request is malformed: missing, duplicate or invalid fields.
    public static let badRequest = Status(13)
    /// The frame exceeds the maximum frame size; the connection is closed after this reply.
    public static let tooLarge = Status(14)
    /// The request's protocol version is not supported.
    public static let unsupportedVersion = Status(15)
    /// The opcode is not known to this daemon.
    public static let unknownOperation = Status(16)
    /// The state store could not be reached in time (shared stores); nothing was changed.
    public static let storeUnavailable = Status(17)
    /// An unexpected failure inside the daemon.
    public static let internalError = Status(18)
    /// verify with a refresh token: the access token had expired, and the pair was rotated; the
    /// reply carries the new pair (the article's scheme 2 in one call).
    public static let refreshed = Status(19)

    public static let all: [Status] = [
        .ok, .renewed, .expired, .sessionExpired, .sessionUnknown, .revoked, .fingerprintMismatch,
        .reuseDetected, .maxLifetimeReached, .malformedToken, .badSignature, .wrongTokenType,
        .forbidden, .badRequest, .tooLarge, .unsupportedVersion, .unknownOperation,
        .storeUnavailable, .internalError, .refreshed,
    ]

    /// The status name in lower snake case.
    public var name: String {
        switch self {
        case .ok: "ok"
        case .renewed: "renewed"
        case .expired: "expired"
        case .sessionExpired: "session_expired"
        case .sessionUnknown: "session_unknown"
        case .revoked: "revoked"
        case .fingerprintMismatch: "fingerprint_mismatch"
        case .reuseDetected: "reuse_detected"
        case .maxLifetimeReached: "max_lifetime_reached"
        case .malformedToken: "malformed_token"
        case .badSignature: "bad_signature"
        case .wrongTokenType: "wrong_token_type"
        case .forbidden: "forbidden"
        case .badRequest: "bad_request"
        case .tooLarge: "too_large"
        case .unsupportedVersion: "unsupported_version"
        case .unknownOperation: "unknown_operation"
        case .storeUnavailable: "store_unavailable"
        case .internalError: "internal_error"
        case .refreshed: "refreshed"
        default: "status_\(rawValue)"
        }
    }

    public init?(name: String) {
        guard let status = Self.all.first(where: { $0.name == name }) else { return nil }
        self = status
    }

    /// Whether the request was accepted (`ok`, `renewed` or `refreshed`).
    public var isSuccess: Bool { self == .ok || self == .renewed || self == .refreshed }

    public var description: String { name }
}
