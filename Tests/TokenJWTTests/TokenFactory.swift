import TokenCrypto
import TokenJWT

/// Builds tokens by hand, header and payload exactly as written, correctly signed, so that a
/// refusal in a test is caused by what the test changed and not by a broken signature.
struct TokenFactory {
    let key: JWTKey

    static func hs256() throws -> TokenFactory {
        TokenFactory(key: try JWTKey(hmacSecret: [UInt8](repeating: 7, count: 32), algorithm: .hs256, kid: "k1"))
    }

    var verifier: JWTVerifier { JWTVerifier(keyRing: JWTKeyRing(keys: [key])) }

    func token(header: String, payload: String) throws -> String {
        let input = Base64URL.encode(header) + "." + Base64URL.encode(payload)
        let signature = try Array(input.utf8).withUnsafeBytes { try key.sign($0) }
        return input + "." + Base64URL.encode(signature)
    }

    func token(payload: String) throws -> String {
        try token(header: #"{"alg":"\#(key.algorithm.name)","kid":"\#(key.kid)","typ":"JWT"}"#, payload: payload)
    }

    static let validPayload = #"{"sub":"alice","exp":2000000000}"#
    static let now: Int64 = 1_800_000_000
}
