import TokenCrypto

/// A key pinned to one JWS algorithm, with the `kid` that selects it.
///
/// The algorithm belongs to the key, never to the token: a token's header may only confirm it.
public struct JWTKey: Sendable {
    enum Material: Sendable {
        case hmac(HMACKey)
        case asymmetric(AsymmetricKey)
    }

    public let algorithm: JWSAlgorithm
    public let kid: String
    let material: Material

    /// An HMAC key. Secrets shorter than the hash output are refused. The default `kid` is a
    /// digest of the secret under a fixed label, which identifies without revealing it.
    public init(hmacSecret secret: [UInt8], algorithm: JWSAlgorithm, kid: String? = nil) throws {
        guard let hash = algorithm.hmacHash else {
            throw CryptoError(.invalidKey, "\(algorithm.name) is not an HMAC algorithm")
        }
        let key = try HMACKey(secret: secret, hash: hash)
        self.algorithm = algorithm
        self.kid = kid ?? Self.defaultHMACKid(secret)
        self.material = .hmac(key)
    }

    /// An ECDSA P-256, Ed25519 or RSA key. The default `kid` is the RFC 7638 thumbprint.
    public init(asymmetric key: AsymmetricKey, algorithm: JWSAlgorithm, kid: String? = nil) throws {
        guard algorithm.accepts(key.kind) else {
            throw CryptoError(.invalidKey, "a \(key.kind) key cannot be used for \(algorithm.name)")
        }
        self.algorithm = algorithm
        self.kid = try kid ?? key.thumbprint()
        self.material = .asymmetric(key)
    }

    static func defaultHMACKid(_ secret: [UInt8]) -> String {
        let digest = HashFunction.sha256.hash(Array("tokend.hmac-kid.v1".utf8) + secret)
        return Base64URL.encode(Array(digest.prefix(16)))
    }

    public var canSign: Bool {
        switch material {
        case .hmac: true
        case .asymmetric(let key): key.isPrivate
        }
    }

    public func sign(_ signingInput: UnsafeRawBufferPointer) throws -> [UInt8] {
        switch material {
        case .hmac(let key): key.authenticationCode(for: signingInput)
        case .asymmetric(let key): try key.sign(signingInput)
        }
    }

    public func isValidSignature(_ signature: UnsafeRawBufferPointer, for signingInput: UnsafeRawBufferPointer) -> Bool {
        switch material {
        case .hmac(let key): key.isValidAuthenticationCode(signature, for: signingInput)
        case .asymmetric(let key): key.isValidSignature(signature, for: signingInput)
        }
    }

    /// The public JWK with `kid`, `alg` and `use`; nil for HMAC keys, which have no public half.
    public func publicJWK() throws -> JWK? {
        guard case .asymmetric(let key) = material else { return nil }
        var jwk = try key.publicJWK()
        jwk["kid"] = kid
        jwk["alg"] = algorithm.name
        jwk["use"] = "sig"
        return jwk
    }
}
