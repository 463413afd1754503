/// What a verifier demands of a token beyond a valid signature (RFC 8725).
public struct JWTValidationPolicy: Sendable, Hashable {
    /// Tokens longer than this are refused before any decoding.
    public var maximumTokenSize: Int = 8 * 1024
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    public var leeway: Int64 = 0
    /// When set, `iss` must equal it.
    public var issuer: String?
    /// When set, `aud` must contain it.
    public var audience: String?
    /// When set, the header's `typ` must equal it (case-insensitively, `application/` optional,
    /// RFC 7515 §4.1.9).
    public var type: String?
    /// Deepest JSON nesting accepted in header and payload.
    public var maximumJSONDepth: Int = 16
    /// The most members the header may have: a dozen names are defined; anything near this is
    /// hostile, and it is parsed before any signature is checked.
    public var maximumHeaderMembers: Int = 16
    /// The most members any object of the claims may have.
    public var maximumClaimMembers: Int = 1024

    public init(leeway: Int64 = 0, issuer: String? = nil, audience: String? = nil, type: String? = nil) {
        self.leeway = leeway
        self.issuer = issuer
        self.audience = audience
        self.type = type
    }

    static func normalizedType(_ type: String) -> Substring {
        let lowered = type.lowercased()
        let prefix = "application/"
        return lowered.hasPrefix(prefix) ? lowered.dropFirst(prefix.count) : Substring(lowered)
    }

    static func typesMatch(_ actual: String?, expected: String) -> Bool {
        guard let actual else { return false }
        return normalizedType(actual) == normalizedType(expected)
    }
}
