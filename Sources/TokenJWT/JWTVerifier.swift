import TokenCrypto

/// A JWT whose signature and claims have been checked.
public struct VerifiedJWT: Sendable, Hashable {
    public let header: JWTHeader
    public let claims: JWTClaims
    /// The `kid` of the key that verified it.
    public let kid: String
}

/// Verifies compact JWTs against a key ring and a validation policy (RFC 8725).
///
/// Order of checks: size, shape, header (`alg` pinned by the key, `crit`, `b64`), base64url of
/// every segment, signature over the exact bytes received, then payload JSON, claim types,
/// time and the policy.
public struct JWTVerifier: Sendable {
    public var keyRing: JWTKeyRing
    public var policy: JWTValidationPolicy

    public init(keyRing: JWTKeyRing, policy: JWTValidationPolicy = .init()) {
        self.keyRing = keyRing
        self.policy = policy
    }

    /// Verifies `token` at `now` (seconds since the Unix epoch).
    public func verify(_ token: String, now: Int64) throws(JWTError) -> VerifiedJWT {
        try token.withJWTBytes { bytes throws(JWTError) in try verify(bytes: bytes, now: now) }
    }

    public func verify(bytes token: UnsafeRawBufferPointer, now: Int64) throws(JWTError) -> VerifiedJWT {
        let verified = try verifyIgnoringTime(bytes: token)
        try checkTime(verified.claims, now: now)
        return verified
    }

    /// Every check but `exp` and `nbf`: for callers that must tell an expired token of theirs
    /// from a forged one (a logout with an expired token), or that name expiry themselves.
    /// Follow with `checkTime(_:now:)` unless time truly does not matter.
    public func verifyIgnoringTime(bytes token: UnsafeRawBufferPointer) throws(JWTError) -> VerifiedJWT {
        try withVerifiedSignature(token) { header, key, payload throws(JWTError) in
            let claims = try JWTClaims(parsing: payload, maximumDepth: policy.maximumJSONDepth, maximumMembers: policy.maximumClaimMembers)
            try check(claims, header: header)
            return VerifiedJWT(header: header, claims: claims, kid: key.kid)
        }
    }

    public func verifyIgnoringTime(_ token: String) throws(JWTError) -> VerifiedJWT {
        try token.withJWTBytes { bytes throws(JWTError) in try verifyIgnoringTime(bytes: bytes) }
    }

    /// Checks size, shape, header and signature only, returning the decoded payload; for JWS
    /// whose payload is not a JWT claims set.
    public func verifySignature(bytes token: UnsafeRawBufferPointer) throws(JWTError) -> (JWTHeader, JWTKey, [UInt8]) {
        try withVerifiedSignature(token) { header, key, payload throws(JWTError) in (header, key, Array(payload)) }
    }

    /// Runs `body` with the header, the key and the decoded payload once the signature holds.
    private func withVerifiedSignature<R>(
        _ token: UnsafeRawBufferPointer,
        _ body: (JWTHeader, JWTKey, UnsafeRawBufferPointer) throws(JWTError) -> R
    ) throws(JWTError) -> R {
        guard token.count <= policy.maximumTokenSize else {
            throw JWTError(.tooLarge, "the token is \(token.count) bytes, more than the \(policy.maximumTokenSize) allowed")
        }
        let jws = try CompactJWS(splitting: token)
        let header = try token.withDecodedSegment(jws.header, name: "header") { raw throws(JWTError) in
            try JWTHeader(object: JWTDecoder.parse(raw, "header", maximumDepth: policy.maximumJSONDepth, maximumMembers: policy.maximumHeaderMembers))
        }
        guard let algorithm = JWSAlgorithm(name: header.algorithmName) else {
            throw JWTError(.algorithmMismatch, "algorithm \"\(header.algorithmName)\" is not accepted")
        }
        let key = try keyRing.key(forHeaderKid: header.kid)
        guard key.algorithm.isSameAlgorithm(as: algorithm) else {
            throw JWTError(.algorithmMismatch, "the header's alg \(algorithm.name) is not the key's \(key.algorithm.name)")
        }
        let signingInput = UnsafeRawBufferPointer(rebasing: token[jws.signingInput])
        // Every segment must be canonical base64url, whatever the signature says.
        return try token.withDecodedSegment(jws.payload, name: "payload") { payload throws(JWTError) in
            let valid = try token.withDecodedSegment(jws.signature, name: "signature") { signature throws(JWTError) in
                key.isValidSignature(signature, for: signingInput)
            }
            guard valid else { throw JWTError(.badSignature, "the signature does not verify") }
            return try body(header, key, payload)
        }
    }

    private func check(_ claims: JWTClaims, header: JWTHeader) throws(JWTError) {
        if let expected = policy.type, !JWTValidationPolicy.typesMatch(header.type, expected: expected) {
            throw JWTError(.wrongType, "the token's typ is \(header.type.map { "\"\($0)\"" } ?? "absent"), expected \"\(expected)\"")
        }
        if let expected = policy.issuer, claims.issuer != expected {
            throw JWTError(.invalidIssuer, "the token's issuer is not the expected one")
        }
        if let expected = policy.audience, !(claims.audience ?? []).contains(expected) {
            throw JWTError(.invalidAudience, "the token is not meant for this audience")
        }
    }

    /// `exp` (required) and `nbf` against `now`, with the policy's leeway.
    public func checkTime(_ claims: JWTClaims, now: Int64) throws(JWTError) {
        guard let expiration = claims.expiration else { throw JWTError(.missingClaim, "the token has no \"exp\"") }
        // exp is exclusive (RFC 7519 §4.1.4): at now == exp the token has expired.
        guard now < expiration + policy.leeway else { throw JWTError(.expired, "the token expired") }
        if let notBefore = claims.notBefore, now + policy.leeway < notBefore {
            throw JWTError(.notYetValid, "the token is not valid yet")
        }
    }
}

extension String {
    /// Runs `body` over the string's UTF-8 bytes in place, keeping the typed error.
    func withJWTBytes<R>(_ body: (UnsafeRawBufferPointer) throws(JWTError) -> R) throws(JWTError) -> R {
        var string = self
        let result: Result<R, JWTError> = string.withUTF8 { utf8 in
            do throws(JWTError) { return .success(try body(UnsafeRawBufferPointer(utf8))) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
