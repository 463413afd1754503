/// Why a token was refused: an opaque code to compare and branch on, and a human reason.
public struct JWTError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }

        /// Not a well-formed compact JWS/JWT: segments, base64url, JSON, claim types.
        public static let malformed = Code("malformed")
        /// Longer than the policy's maximum size; refused before any decoding.
        public static let tooLarge = Code("too_large")
        /// The header's `alg` is not the algorithm of the key its `kid` selects (or is `none`).
        public static let algorithmMismatch = Code("algorithm_mismatch")
        /// No key in the ring has the header's `kid`.
        public static let unknownKey = Code("unknown_key")
        /// The signature does not verify.
        public static let badSignature = Code("bad_signature")
        /// `crit` names an extension this verifier does not understand, or `b64` is present.
        public static let unsupportedHeader = Code("unsupported_header")
        /// `exp` has passed (beyond the leeway).
        public static let expired = Code("expired")
        /// `nbf` lies in the future (beyond the leeway).
        public static let notYetValid = Code("not_yet_valid")
        /// A claim the policy requires is absent (`exp` always is required).
        public static let missingClaim = Code("missing_claim")
        /// `iss` differs from the expected issuer.
        public static let invalidIssuer = Code("invalid_issuer")
        /// `aud` does not contain the expected audience.
        public static let invalidAudience = Code("invalid_audience")
        /// The header's `typ` is not the expected one.
        public static let wrongType = Code("wrong_type")

        public var description: String { name }
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }

    public static func == (lhs: JWTError, rhs: JWTError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
