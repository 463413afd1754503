import TokenCrypto

/// The protected header of a compact JWS, as far as tokend reads it.
///
/// `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come from the key ring, never the token.
public struct JWTHeader: Sendable, Hashable {
    /// The `alg` member as written; compared against the key's algorithm, never trusted.
    public let algorithmName: String
    public let type: String?
    public let kid: String?
    /// The whole header object.
    public let object: JSONObject

    init(object: JSONObject) throws(JWTError) {
        self.object = object
        guard case .string(let alg)? = object["alg"] else {
            throw JWTError(.malformed, "the header has no string \"alg\"")
        }
        self.algorithmName = alg
        self.type = try Self.optionalString(object, "typ")
        self.kid = try Self.optionalString(object, "kid")
        if let crit = object["crit"] {
            // RFC 7515 §4.1.11: a recipient must refuse extensions it does not understand, and
            // this verifier understands none.
            guard case .array(let names) = crit, !names.isEmpty, names.allSatisfy({ $0.stringValue != nil }) else {
                throw JWTError(.malformed, "\"crit\" must be a non-empty array of strings")
            }
            throw JWTError(.unsupportedHeader, "\"crit\" names an extension this verifier does not understand")
        }
        if object["b64"] != nil {
            // RFC 7797 unencoded payloads are not JWTs.
            throw JWTError(.unsupportedHeader, "the \"b64\" header parameter is not supported")
        }
    }

    private static func optionalString(_ object: JSONObject, _ name: String) throws(JWTError) -> String? {
        guard let value = object[name] else { return nil }
        guard case .string(let string) = value else { throw JWTError(.malformed, "header \"\(name)\" must be a string") }
        return string
    }

    /// Compact header JSON for signing.
    static func json(algorithm: JWSAlgorithm, type: String?, kid: String?) -> String {
        var json = "{\"alg\":" + JSONString.quote(algorithm.name)
        if let type { json += ",\"typ\":" + JSONString.quote(type) }
        if let kid { json += ",\"kid\":" + JSONString.quote(kid) }
        return json + "}"
    }
}
