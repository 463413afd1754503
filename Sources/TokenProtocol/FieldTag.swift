/// The tag of a field. Tags are global: a tag means the same thing, with the same value type,
/// in every message where it appears.
public struct FieldTag: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    // Request fields.
    /// u8: 1 sliding session, 2 access + refresh pair.
    public static let mode = FieldTag(1)
    /// string: who the token is for.
    public static let subject = FieldTag(2)
    /// bytes: the client fingerprint the token is bound to; empty means not bound.
    public static let fingerprint = FieldTag(3)
    /// string: the `aud` claim.
    public static let audience = FieldTag(4)
    /// string: a JSON object of extra claims.
    public static let claims = FieldTag(5)
    /// bytes: makes issue idempotent within the dedup window.
    public static let idempotencyKey = FieldTag(6)
    /// u64 seconds: idle TTL (session) or access-token TTL (pair), at most the configured one.
    public static let ttl = FieldTag(7)
    /// u64 seconds: refresh-token TTL, at most the configured one.
    public static let refreshTTL = FieldTag(8)
    /// u64 seconds: maximum lifetime of the login, at most the configured one.
    public static let maxLifetime = FieldTag(9)
    /// string: a token.
    public static let token = FieldTag(10)
    /// string: a session id (the `sid` claim).
    public static let sessionID = FieldTag(11)
    /// string: where a listing resumes.
    public static let cursor = FieldTag(12)
    /// u64: at most this many items.
    public static let limit = FieldTag(13)
    /// string: the client's name and version, for logs.
    public static let clientName = FieldTag(14)

    // Response fields.
    /// string: human-readable detail, mainly on errors.
    public static let message = FieldTag(32)
    /// string: the token of a sliding session.
    public static let sessionToken = FieldTag(33)
    public static let accessToken = FieldTag(34)
    public static let refreshToken = FieldTag(35)
    /// string: the complete claims set of a verified token, as JSON.
    public static let claimsJSON = FieldTag(36)
    /// u64 Unix seconds: when the session (idle) or the token now expires.
    public static let expiresAt = FieldTag(37)
    /// bool: whether this call extended the session.
    public static let renewed = FieldTag(38)
    /// u64 Unix seconds: the token's own `exp`.
    public static let tokenExpiresAt = FieldTag(39)
    /// u64 Unix seconds: the refresh token's `exp`.
    public static let refreshExpiresAt = FieldTag(40)
    /// u64 Unix seconds: the end of the login's maximum lifetime.
    public static let maxExpiresAt = FieldTag(41)
    /// u64 Unix seconds.
    public static let createdAt = FieldTag(42)
    /// u8: 1 active, 2 idle-expired, 3 revoked.
    public static let state = FieldTag(43)
    /// u64: how many sessions/families a revoke ended.
    public static let count = FieldTag(44)
    /// u8: the protocol version the daemon speaks.
    public static let protocolVersion = FieldTag(45)
    /// string: the daemon's name and version.
    public static let serverName = FieldTag(46)
    /// u64: the largest frame the daemon accepts, in bytes.
    public static let maxFrameSize = FieldTag(47)
    /// record, repeated: one session or family (`sessions`).
    public static let sessionRecord = FieldTag(48)
    /// string: pass as `cursor` to get the next page; absent on the last page.
    public static let nextCursor = FieldTag(49)
    /// record, repeated: one key (`keys_list`).
    public static let keyRecord = FieldTag(50)
    /// string: a key id.
    public static let kid = FieldTag(51)
    /// string: a JWS algorithm name.
    public static let algorithm = FieldTag(52)
    /// bool: whether this key signs new tokens.
    public static let signing = FieldTag(53)
    /// string: a JWK Set as JSON.
    public static let jwks = FieldTag(54)
    /// record, repeated: one statistic (`name`, `value`).
    public static let stat = FieldTag(55)
    /// string: a statistic's name.
    public static let name = FieldTag(56)
    /// u64: a statistic's value.
    public static let value = FieldTag(57)
    /// string: the Prometheus text format of every metric (metrics response).
    public static let metricsText = FieldTag(58)

    // The daemon's settings, in the hello response (seconds unless named otherwise).
    /// u64 milliseconds: how long a refresh's or idempotent issue's result is handed out again.
    public static let dedupWindowMilliseconds = FieldTag(59)
    /// u64: session mode's idle TTL, also the largest `ttl` a session-mode issue may ask.
    public static let idleTTL = FieldTag(60)
    /// u64: a verify renews a session when less than this remains of its idle expiry.
    public static let renewBelow = FieldTag(61)
    /// u64: how much such a renewal adds.
    public static let renewBy = FieldTag(62)
    /// u64: pair mode's access-token TTL, also the largest `ttl` a pair-mode issue may ask.
    public static let accessTTL = FieldTag(63)
    /// u64: the refresh-token TTL, also the largest `refresh_ttl` an issue may ask.
    public static let refreshTokenTTL = FieldTag(64)
    /// u64: the maximum lifetime of a login, also the largest `max_lifetime` an issue may ask.
    public static let maxLoginLifetime = FieldTag(65)
    /// u64: the clock skew tolerated on a token's `exp`.
    public static let leeway = FieldTag(66)
    /// bool: whether the state store serves every operation now (ping and hello responses).
    public static let storeHealthy = FieldTag(67)
    /// u64: on a tracking connection, until when a verify's answer may be reused (proto-spec 12.16).
    public static let cacheableUntil = FieldTag(68)
    /// bool: an invalidation frame that drops every cached answer.
    public static let flush = FieldTag(69)

    public var description: String { "tag \(rawValue)" }
}

/// The renewal scheme of a login.
public enum TokenMode: UInt8, Sendable, Hashable, CaseIterable {
    case session = 1
    case pair = 2

    public var name: String { self == .session ? "session" : "pair" }
}

/// The state of a session or family in a listing.
public enum SessionState: UInt8, Sendable, Hashable {
    case active = 1
    case idleExpired = 2
    case revoked = 3

    public var name: String {
        switch self {
        case .active: "active"
        case .idleExpired: "idle_expired"
        case .revoked: "revoked"
        }
    }
}
