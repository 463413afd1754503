/// The keys a verifier trusts, selected by `kid`, and the one a signer uses.
///
/// There is no fallback: a token whose `kid` is not in the ring is refused. A token without
/// `kid` is accepted only by a ring of exactly one key.
public struct JWTKeyRing: Sendable {
    public private(set) var keys: [JWTKey]
    private var byKid: [String: Int]
    /// The `kid` of the key that signs new tokens.
    public private(set) var signingKid: String?

    public init(keys: [JWTKey] = [], signingKid: String? = nil) {
        self.keys = []
        self.byKid = [:]
        self.signingKid = nil
        for key in keys { add(key) }
        self.signingKid = signingKid ?? keys.last?.kid
    }

    /// Adds `key`, replacing one with the same `kid`.
    public mutating func add(_ key: JWTKey, signing: Bool = false) {
        if let index = byKid[key.kid] {
            keys[index] = key
        } else {
            byKid[key.kid] = keys.count
            keys.append(key)
        }
        if signing { signingKid = key.kid }
    }

    public func key(kid: String) -> JWTKey? {
        byKid[kid].map { keys[$0] }
    }

    public var signingKey: JWTKey? { signingKid.flatMap(key(kid:)) }

    /// The key for a header's `kid` under the rules above.
    func key(forHeaderKid kid: String?) throws(JWTError) -> JWTKey {
        if let kid {
            guard let key = key(kid: kid) else { throw JWTError(.unknownKey, "no key has this token's kid") }
            return key
        }
        guard keys.count == 1 else { throw JWTError(.unknownKey, "the token has no kid and several keys could verify it") }
        return keys[0]
    }
}
