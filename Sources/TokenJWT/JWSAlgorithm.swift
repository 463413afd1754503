import TokenCrypto

/// The JWS algorithms tokend signs and verifies with (RFC 7518, RFC 8037, RFC 9864).
public enum JWSAlgorithm: String, Sendable, CaseIterable, Hashable {
    case hs256 = "HS256"
    case hs384 = "HS384"
    case hs512 = "HS512"
    case es256 = "ES256"
    /// Ed25519 under its fully-specified name (RFC 9864); preferred.
    case ed25519 = "Ed25519"
    /// Ed25519 under its RFC 8037 name.
    case eddsa = "EdDSA"
    case rs256 = "RS256"

    /// Parses a name exactly as JOSE spells it (case-sensitive: `hs256` is not `HS256`).
    public init?(name: String) { self.init(rawValue: name) }

    public var name: String { rawValue }

    public var isHMAC: Bool { hmacHash != nil }

    public var hmacHash: HashFunction? {
        switch self {
        case .hs256: .sha256
        case .hs384: .sha384
        case .hs512: .sha512
        default: nil
        }
    }

    /// The asymmetric key kind this algorithm needs, nil for HMAC.
    public func accepts(_ kind: AsymmetricKey.Kind) -> Bool {
        switch (self, kind) {
        case (.es256, .p256), (.ed25519, .ed25519), (.eddsa, .ed25519), (.rs256, .rsa): true
        default: false
        }
    }

    /// Whether a header naming `other` may be verified with a key pinned to `self`. Only the
    /// two names of Ed25519 are interchangeable; they denote the same algorithm.
    public func isSameAlgorithm(as other: JWSAlgorithm) -> Bool {
        self == other || (self.isEd25519 && other.isEd25519)
    }

    var isEd25519: Bool { self == .ed25519 || self == .eddsa }
}
