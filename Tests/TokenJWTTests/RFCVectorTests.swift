import Foundation
import TestSupport
import Testing
import TokenCrypto
import TokenJWT

/// RFC 7515 A.1-A.3 and RFC 8037 A.4, read from Tests/Vectors/rfc-jose.json.
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

    /// The vectors, or why they could not be read: `vectorsLoad` reports that, naming the file,
    /// and the parameterized tests then have no arguments.
    static let loaded: Result<[Vector], any Error> = Result {
        try TestVectors.json("rfc-jose.json").objects("vectors").map { v in
            let alg = try v.string("alg")
            guard let algorithm = JWSAlgorithm(name: alg) else {
                throw FixtureError(path: v.path, problem: "unknown alg \(alg)")
            }
            return Vector(
                name: try v.string("name"),
                algorithm: algorithm,
                deterministic: try v.bool("deterministic"),
                now: try v.optionalInt64("now"),
                jwk: try v.strings("jwk"),
                token: try v.string("token")
            )
        }
    }
    static let vectors: [Vector] = (try? loaded.get()) ?? []

    @Test func vectorsLoad() throws {
        let vectors = try Self.loaded.get()
        #expect(vectors.map(\.algorithm) == [.hs256, .rs256, .es256, .eddsa])
    }

    static func key(_ vector: Vector) throws -> JWTKey {
        if vector.algorithm.isHMAC {
            guard let k = vector.jwk["k"], let secret = Base64URL.decode(k) else {
                throw FixtureError(path: TestVectors.directory.appendingPathComponent("rfc-jose.json").path, problem: "\(vector.name): no base64url k")
            }
            return try JWTKey(hmacSecret: secret, algorithm: vector.algorithm)
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

    /// One changed signature byte fails every vector's signature check, and only that: the
    /// untampered token passes the same check (RFC 8037's payload is no JWT, so its signature
    /// is checked on its own rather than through `verify`).
    @Test(arguments: vectors)
    func tamperedVectorsFail(_ vector: Vector) throws {
        let verifier = JWTVerifier(keyRing: JWTKeyRing(keys: [try Self.key(vector)]))
        var bytes = Array(vector.token.utf8)
        let signatureStart = try #require(bytes.lastIndex(of: UInt8(ascii: "."))) + 1
        bytes[signatureStart + 2] = bytes[signatureStart + 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tampered = String(decoding: bytes, as: UTF8.self)
        if let now = vector.now {
            _ = try verifier.verify(vector.token, now: now)
            #expect(throws: JWTError(.badSignature, "")) { try verifier.verify(tampered, now: now) }
        } else {
            var original = vector.token
            _ = try original.withUTF8 { try verifier.verifySignature(bytes: UnsafeRawBufferPointer($0)) }
            #expect(throws: JWTError(.badSignature, "")) {
                _ = try bytes.withUnsafeBytes { try verifier.verifySignature(bytes: $0) }
            }
        }
    }
}
