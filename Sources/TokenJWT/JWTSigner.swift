import TokenCrypto

/// Signs claims into a compact JWT.
public enum JWTSigner {
    /// `header.payload.signature` with a header of `alg`, `typ` (when given) and the key's `kid`.
    public static func sign(_ claims: JWTClaims, with key: JWTKey, type: String? = "JWT") throws -> String {
        try sign(payload: Array(claims.json.utf8), with: key, type: type)
    }

    /// Signs an arbitrary payload (a JWS that need not be a JWT).
    public static func sign(payload: [UInt8], with key: JWTKey, type: String? = "JWT") throws -> String {
        let header = JWTHeader.json(algorithm: key.algorithm, type: type, kid: key.kid)
        let signingInput = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(payload)
        let signature = try Array(signingInput.utf8).withUnsafeBytes { try key.sign($0) }
        return signingInput + "." + Base64URL.encode(signature)
    }
}
