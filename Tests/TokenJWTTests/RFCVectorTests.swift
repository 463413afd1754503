import Foundation
import TestSupport
import Testing
import TokenCrypto
import TokenJWT

/// RFC 7515 A.1-A.3 and RFC 8037 A.4, read from ../shared/testvectors/rfc-jose.json.
@Suite struct RFCVectorTests {
    struct Vector: Sendable, CustomStringConvertible {
        let name: String
        let algorithm: JWSAlgorithm
        let deterministic: Bool
        let now: Int64?
        let jwk: [String: String]
        let token: String
        var description: String { name }
    }

    static let vectors: [Vector] = {
        let json = try! TestVectors.json("rfc-jose.json")
        return (json["vectors"] as! [[String: Any]]).map { v in
            Vector(
                name: v["name"] as! String,
                algorithm: JWSAlgorithm(name: v["alg"] as! String)!,
                deterministic: v["deterministic"] as! Bool,
                now: (v["now"] as? NSNumber)?.int64Value,
                jwk: v["jwk"] as! [String: String],
                token: v["token"] as! String
            )
        }
    }()

    static func key(_ vector: Vector) throws -> JWTKey {
        if vector.algorithm.isHMAC {
            return try JWTKey(hmacSecret: Base64URL.decode(vector.jwk["k"]!)!, algorithm: vector.algorithm)
        }
        return try JWTKey(asymmetric: AsymmetricKey(jwk: JWK(members: vector.jwk)), algorithm: vector.algorithm)
    }

    @Test(arguments: vectors)
    func verifies(_ vector: Vector) throws {
        let verifier = JWTVerifier(keyRing: JWTKeyRing(keys: [try Self.key(vector)]))
        if let now = vector.now {
            let verified = try verifier.verify(vector.token, now: now)
            #expect(verified.claims.issuer == "joe")
            #expect(verified.claims.expiration == 1_300_819_380)
            #expect(verified.claims.extra.first?.name == "http://example.com/is_root")
            #expect(verified.claims.extra.first?.value == .bool(true))
            // The same token is expired once its exp has passed.
            #expect(throws: JWTError(.expired, "")) { try verifier.verify(vector.token, now: 1_300_819_380) }
        } else {
            // RFC 8037 A.4: the JWS verifies, but its payload is text, so it is no JWT.
            var token = vector.token
            let payload = try token.withUTF8 { try verifier.verifySignature(bytes: UnsafeRawBufferPointer($0)).2 }
            #expect(String(decoding: payload, as: UTF8.self) == "Example of Ed25519 signing")
            #expect(throws: JWTError(.malformed, "")) { try verifier.verify(vector.token, now: 0) }
        }
    }

    @Test(arguments: vectors.filter(\.deterministic))
    func reSignsToTheSameBytes(_ vector: Vector) throws {
        let key = try Self.key(vector)
        let parts = vector.token.split(separator: ".")
        let signature = try Array("\(parts[0]).\(parts[1])".utf8).withUnsafeBytes { try key.sign($0) }
        #expect(Base64URL.encode(signature) == String(parts[2]))
    }

    @Test func tamperedVectorsFail() throws {
        for vector in Self.vectors {
            let verifier = JWTVerifier(keyRing: JWTKeyRing(keys: [try Self.key(vector)]))
            var bytes = Array(vector.token.utf8)
            let dot = bytes.firstIndex(of: UInt8(ascii: "."))!
            bytes[dot + 2] = bytes[dot + 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(throws: JWTError.self) { try verifier.verify(String(decoding: bytes, as: UTF8.self), now: vector.now ?? 0) }
        }
    }
}
