/// The fields of a successful `issue` or `refresh`.
public struct IssueResult: Sendable, Hashable {
    public var mode: TokenMode
    public var sessionID: String
    /// Session mode: the one token of the login.
    public var sessionToken: String?
    /// Pair mode.
    public var accessToken: String?
    public var refreshToken: String?
    /// Session mode: when the session goes idle; pair mode: the access token's `exp`.
    public var expiresAt: UInt64
    /// Pair mode: the refresh token's `exp`.
    public var refreshExpiresAt: UInt64?
    /// The end of the login's maximum lifetime.
    public var maxExpiresAt: UInt64

    public init(mode: TokenMode, sessionID: String, sessionToken: String? = nil, accessToken: String? = nil, refreshToken: String? = nil,
                expiresAt: UInt64, refreshExpiresAt: UInt64? = nil, maxExpiresAt: UInt64) {
        self.mode = mode
        self.sessionID = sessionID
        self.sessionToken = sessionToken
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.refreshExpiresAt = refreshExpiresAt
        self.maxExpiresAt = maxExpiresAt
    }

    public init(fields: Fields) throws(ProtocolError) {
        guard let mode = try fields.uint8(.mode).flatMap(TokenMode.init(rawValue:)) else { throw .badRequest("missing or unknown mode") }
        self.mode = mode
        sessionID = try fields.requiredString(.sessionID, "session_id")
        sessionToken = try fields.string(.sessionToken)
        accessToken = try fields.string(.accessToken)
        refreshToken = try fields.string(.refreshToken)
        guard let expiresAt = try fields.uint64(.expiresAt), let maxExpiresAt = try fields.uint64(.maxExpiresAt) else {
            throw .badRequest("missing expires_at or max_expires_at")
        }
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt
        refreshExpiresAt = try fields.uint64(.refreshExpiresAt)
    }

    public var fields: Fields {
        var fields = Fields()
        fields.append(.mode, uint8: mode.rawValue)
        fields.append(.sessionID, string: sessionID)
        if let sessionToken { fields.append(.sessionToken, string: sessionToken) }
        if let accessToken { fields.append(.accessToken, string: accessToken) }
        if let refreshToken { fields.append(.refreshToken, string: refreshToken) }
        fields.append(.expiresAt, uint64: expiresAt)
        if let refreshExpiresAt { fields.append(.refreshExpiresAt, uint64: refreshExpiresAt) }
        fields.append(.maxExpiresAt, uint64: maxExpiresAt)
        return fields
    }
}

/// The fields of a successful `verify` or `renew`.
public struct VerifyResult: Sendable, Hashable {
    public var mode: TokenMode
    public var subject: String
    public var sessionID: String
    /// The token's complete claims set as JSON.
    public var claimsJSON: String
    /// Session mode: when the session now goes idle; pair mode: the access token's `exp`.
    public var expiresAt: UInt64
    /// The token's own `exp`.
    public var tokenExpiresAt: UInt64
    /// Whether this call extended the session.
    public var renewed: Bool
    /// On a tracking connection: until when this answer may be given again without asking the
    /// daemon (Unix seconds; proto-spec 12.16). Absent: never.
    public var cacheableUntil: UInt64?

    public init(mode: TokenMode, subject: String, sessionID: String, claimsJSON: String, expiresAt: UInt64, tokenExpiresAt: UInt64, renewed: Bool,
                cacheableUntil: UInt64? = nil) {
        self.mode = mode
        self.subject = subject
        self.sessionID = sessionID
        self.claimsJSON = claimsJSON
        self.expiresAt = expiresAt
        self.tokenExpiresAt = tokenExpiresAt
        self.renewed = renewed
        self.cacheableUntil = cacheableUntil
    }

    public init(fields: Fields) throws(ProtocolError) {
        guard let mode = try fields.uint8(.mode).flatMap(TokenMode.init(rawValue:)) else { throw .badRequest("missing or unknown mode") }
        self.mode = mode
        subject = try fields.requiredString(.subject, "subject")
        sessionID = try fields.requiredString(.sessionID, "session_id")
        claimsJSON = try fields.requiredString(.claimsJSON, "claims_json")
        guard let expiresAt = try fields.uint64(.expiresAt), let tokenExpiresAt = try fields.uint64(.tokenExpiresAt) else {
            throw .badRequest("missing expires_at or token_expires_at")
        }
        self.expiresAt = expiresAt
        self.tokenExpiresAt = tokenExpiresAt
        renewed = try fields.bool(.renewed) ?? false
        cacheableUntil = try fields.uint64(.cacheableUntil)
    }

    public var fields: Fields {
        var fields = Fields(capacity: 8 * Fields.overhead + 1 + subject.utf8.count + sessionID.utf8.count + claimsJSON.utf8.count + 25)
        fields.append(.mode, uint8: mode.rawValue)
        fields.append(.subject, string: subject)
        fields.append(.sessionID, string: sessionID)
        fields.append(.claimsJSON, string: claimsJSON)
        fields.append(.expiresAt, uint64: expiresAt)
        fields.append(.tokenExpiresAt, uint64: tokenExpiresAt)
        fields.append(.renewed, bool: renewed)
        if let cacheableUntil { fields.append(.cacheableUntil, uint64: cacheableUntil) }
        return fields
    }
}

/// One session (scheme 1) or refresh family (scheme 2) in a `sessions` listing.
public struct SessionInfo: Sendable, Hashable {
    public var sessionID: String
    public var subject: String
    public var mode: TokenMode
    public var state: SessionState
    public var createdAt: UInt64
    /// Session: idle expiry; family: the current refresh token's `exp`.
    public var expiresAt: UInt64
    public var maxExpiresAt: UInt64

    public init(sessionID: String, subject: String, mode: TokenMode, state: SessionState, createdAt: UInt64, expiresAt: UInt64, maxExpiresAt: UInt64) {
        self.sessionID = sessionID
        self.subject = subject
        self.mode = mode
        self.state = state
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt
    }

    public init(fields: Fields) throws(ProtocolError) {
        sessionID = try fields.requiredString(.sessionID, "session_id")
        subject = try fields.requiredString(.subject, "subject")
        guard let mode = try fields.uint8(.mode).flatMap(TokenMode.init(rawValue:)),
              let state = try fields.uint8(.state).flatMap(SessionState.init(rawValue:)),
              let createdAt = try fields.uint64(.createdAt), let expiresAt = try fields.uint64(.expiresAt),
              let maxExpiresAt = try fields.uint64(.maxExpiresAt)
        else { throw .badRequest("incomplete session record") }
        self.mode = mode
        self.state = state
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt
    }

    public var fields: Fields {
        var fields = Fields()
        fields.append(.sessionID, string: sessionID)
        fields.append(.subject, string: subject)
        fields.append(.mode, uint8: mode.rawValue)
        fields.append(.state, uint8: state.rawValue)
        fields.append(.createdAt, uint64: createdAt)
        fields.append(.expiresAt, uint64: expiresAt)
        fields.append(.maxExpiresAt, uint64: maxExpiresAt)
        return fields
    }
}

/// One signing key in a `keys_list` reply.
public struct KeyInfo: Sendable, Hashable {
    public var kid: String
    public var algorithm: String
    public var signing: Bool
    public var createdAt: UInt64

    public init(kid: String, algorithm: String, signing: Bool, createdAt: UInt64) {
        self.kid = kid
        self.algorithm = algorithm
        self.signing = signing
        self.createdAt = createdAt
    }

    public init(fields: Fields) throws(ProtocolError) {
        kid = try fields.requiredString(.kid, "kid")
        algorithm = try fields.requiredString(.algorithm, "algorithm")
        signing = try fields.bool(.signing) ?? false
        createdAt = try fields.uint64(.createdAt) ?? 0
    }

    public var fields: Fields {
        var fields = Fields()
        fields.append(.kid, string: kid)
        fields.append(.algorithm, string: algorithm)
        fields.append(.signing, bool: signing)
        fields.append(.createdAt, uint64: createdAt)
        return fields
    }

    /// A `keys_list`, `keys_reload` or `keys_rotate` reply: one `key` record per key.
    public static func fields(_ keys: [KeyInfo]) -> Fields {
        var fields = Fields()
        for key in keys { fields.append(.keyRecord, record: key.fields) }
        return fields
    }

    /// The keys of such a reply, in the daemon's order.
    public static func list(_ fields: Fields) throws(ProtocolError) -> [KeyInfo] {
        var keys: [KeyInfo] = []
        for record in try fields.records(.keyRecord) {
            keys.append(try KeyInfo(fields: record))
        }
        return keys
    }
}

/// The fields of a `refreshed` verify (verify-or-refresh): the verify of the new access token,
/// and the new pair.
public struct RefreshedResult: Sendable, Hashable {
    public var verify: VerifyResult
    public var pair: IssueResult

    public init(verify: VerifyResult, pair: IssueResult) {
        self.verify = verify
        self.pair = pair
    }

    public init(fields: Fields) throws(ProtocolError) {
        verify = try VerifyResult(fields: fields)
        pair = try IssueResult(fields: fields)
        guard pair.accessToken != nil, pair.refreshToken != nil else { throw .badRequest("a refreshed verify without the new pair") }
    }

    /// In the order of proto-spec.md 12.4: the verify's fields, then the pair's.
    public var fields: Fields {
        var fields = verify.fields
        if let accessToken = pair.accessToken { fields.append(.accessToken, string: accessToken) }
        if let refreshToken = pair.refreshToken { fields.append(.refreshToken, string: refreshToken) }
        if let refreshExpiresAt = pair.refreshExpiresAt { fields.append(.refreshExpiresAt, uint64: refreshExpiresAt) }
        fields.append(.maxExpiresAt, uint64: pair.maxExpiresAt)
        return fields
    }
}
