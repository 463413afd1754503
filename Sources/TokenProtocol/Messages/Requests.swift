/// `hello`: optional; tells the daemon who is calling and learns its limits.
public struct HelloRequest: Sendable, Hashable {
    public var clientName: String?

    public init(clientName: String? = nil) { self.clientName = clientName }

    public init(fields: Fields) throws(ProtocolError) {
        clientName = try fields.string(.clientName, maximumLength: FieldLimits.clientName)
    }

    public var fields: Fields {
        var fields = Fields()
        if let clientName { fields.append(.clientName, string: clientName) }
        return fields
    }
}

/// `issue`: a new login, as a sliding session or an access + refresh pair.
public struct IssueRequest: Sendable, Hashable {
    public var mode: TokenMode
    public var subject: String
    public var fingerprint: [UInt8]
    public var audience: String?
    /// A JSON object of extra claims.
    public var claims: String?
    public var idempotencyKey: [UInt8]?
    /// Idle TTL (session) or access TTL (pair), in seconds; at most the configured value.
    public var ttl: UInt64?
    public var refreshTTL: UInt64?
    public var maxLifetime: UInt64?

    public init(mode: TokenMode, subject: String, fingerprint: [UInt8] = [], audience: String? = nil, claims: String? = nil,
                idempotencyKey: [UInt8]? = nil, ttl: UInt64? = nil, refreshTTL: UInt64? = nil, maxLifetime: UInt64? = nil) {
        self.mode = mode
        self.subject = subject
        self.fingerprint = fingerprint
        self.audience = audience
        self.claims = claims
        self.idempotencyKey = idempotencyKey
        self.ttl = ttl
        self.refreshTTL = refreshTTL
        self.maxLifetime = maxLifetime
    }

    public init(fields: Fields) throws(ProtocolError) {
        let rawMode = try fields.uint8(.mode) ?? TokenMode.session.rawValue
        guard let mode = TokenMode(rawValue: rawMode) else { throw .badRequest("mode must be 1 (session) or 2 (pair)") }
        self.mode = mode
        subject = try fields.requiredString(.subject, "subject", maximumLength: FieldLimits.subject)
        guard !subject.isEmpty else { throw .badRequest("subject must not be empty") }
        fingerprint = try fields.bytes(.fingerprint, maximumLength: FieldLimits.fingerprint) ?? []
        audience = try fields.string(.audience, maximumLength: FieldLimits.audience)
        claims = try fields.string(.claims, maximumLength: FieldLimits.claims)
        idempotencyKey = try fields.bytes(.idempotencyKey, maximumLength: FieldLimits.idempotencyKey)
        ttl = try fields.uint64(.ttl)
        refreshTTL = try fields.uint64(.refreshTTL)
        maxLifetime = try fields.uint64(.maxLifetime)
    }

    public var fields: Fields {
        var fields = Fields()
        fields.append(.mode, uint8: mode.rawValue)
        fields.append(.subject, string: subject)
        if !fingerprint.isEmpty { fields.append(.fingerprint, bytes: fingerprint) }
        if let audience { fields.append(.audience, string: audience) }
        if let claims { fields.append(.claims, string: claims) }
        if let idempotencyKey { fields.append(.idempotencyKey, bytes: idempotencyKey) }
        if let ttl { fields.append(.ttl, uint64: ttl) }
        if let refreshTTL { fields.append(.refreshTTL, uint64: refreshTTL) }
        if let maxLifetime { fields.append(.maxLifetime, uint64: maxLifetime) }
        return fields
    }
}

/// `verify`, `renew` and `refresh`: a token and the fingerprint of the client presenting it;
/// for `verify`, also the refresh token of the same pair, to be rotated if the access token has
/// expired (verify-or-refresh).
public struct TokenRequest: Sendable, Hashable {
    public var token: String
    public var fingerprint: [UInt8]
    public var refreshToken: String?

    public init(token: String, fingerprint: [UInt8] = [], refreshToken: String? = nil) {
        self.token = token
        self.fingerprint = fingerprint
        self.refreshToken = refreshToken
    }

    public init(fields: Fields) throws(ProtocolError) {
        token = try fields.requiredString(.token, "token", maximumLength: FieldLimits.token)
        fingerprint = try fields.bytes(.fingerprint, maximumLength: FieldLimits.fingerprint) ?? []
        refreshToken = try fields.string(.refreshToken, maximumLength: FieldLimits.token)
    }

    public var fields: Fields {
        var fields = Fields()
        fields.append(.token, string: token)
        if !fingerprint.isEmpty { fields.append(.fingerprint, bytes: fingerprint) }
        if let refreshToken { fields.append(.refreshToken, string: refreshToken) }
        return fields
    }
}

/// `revoke`: exactly one of a token (its session or family), a session id, or a subject
/// (every session and family of it).
public enum RevokeRequest: Sendable, Hashable {
    case token(String)
    case session(String)
    case subject(String)

    public init(fields: Fields) throws(ProtocolError) {
        let token = try fields.string(.token, maximumLength: FieldLimits.token)
        let session = try fields.string(.sessionID, maximumLength: FieldLimits.sessionID)
        let subject = try fields.string(.subject, maximumLength: FieldLimits.subject)
        switch (token, session, subject) {
        case (let token?, nil, nil): self = .token(token)
        case (nil, let session?, nil): self = .session(session)
        case (nil, nil, let subject?): self = .subject(subject)
        default: throw .badRequest("revoke takes exactly one of token, session_id or subject")
        }
    }

    public var fields: Fields {
        var fields = Fields()
        switch self {
        case .token(let token): fields.append(.token, string: token)
        case .session(let id): fields.append(.sessionID, string: id)
        case .subject(let subject): fields.append(.subject, string: subject)
        }
        return fields
    }
}

/// `sessions`: one subject's sessions, or a page of all of them.
public struct SessionsRequest: Sendable, Hashable {
    public var subject: String?
    public var cursor: String?
    public var limit: UInt64?

    public init(subject: String? = nil, cursor: String? = nil, limit: UInt64? = nil) {
        self.subject = subject
        self.cursor = cursor
        self.limit = limit
    }

    public init(fields: Fields) throws(ProtocolError) {
        subject = try fields.string(.subject, maximumLength: FieldLimits.subject)
        cursor = try fields.string(.cursor, maximumLength: FieldLimits.cursor)
        limit = try fields.uint64(.limit)
    }

    public var fields: Fields {
        var fields = Fields()
        if let subject { fields.append(.subject, string: subject) }
        if let cursor { fields.append(.cursor, string: cursor) }
        if let limit { fields.append(.limit, uint64: limit) }
        return fields
    }
}
