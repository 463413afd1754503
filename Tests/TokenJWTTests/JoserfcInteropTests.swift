import Foundation
import TestSupport
import Testing
import TokenCrypto
import TokenJWT

/// Interop both ways with Python's joserfc: tokens we sign verify there, tokens it signs
/// verify here. Needs python3 with joserfc (`.ci/run` installs it).
@Suite struct JoserfcInteropTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/joserfc_interop.py").path
    static let now = Int64(Date().timeIntervalSince1970)

    static func python(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        try runProcess("/usr/bin/env", ["python3", script] + arguments)
    }

    func makeKey(_ algorithm: JWSAlgorithm) throws -> (JWTKey, fileContents: [UInt8]) {
        if algorithm.isHMAC {
            let secret = SecureRandom.bytes(32)
            return (try JWTKey(hmacSecret: secret, algorithm: algorithm), secret)
        }
        let kind: AsymmetricKey.Kind = algorithm == .es256 ? .p256 : algorithm == .rs256 ? .rsa(bits: 2048) : .ed25519
        let key = try AsymmetricKey.generate(kind)
        return (try JWTKey(asymmetric: key, algorithm: algorithm), Array(try key.publicKeyPEM().utf8))
    }

    @Test(arguments: [JWSAlgorithm.hs256, .es256, .eddsa, .ed25519, .rs256])
    func oursVerifyInJoserfc(_ algorithm: JWSAlgorithm) throws {
        let (key, contents) = try makeKey(algorithm)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("interop-\(UUID()).key")
        try Data(contents).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let claims = JWTClaims(subject: "alice", audience: ["api"], issuedAt: Self.now, expiration: Self.now + 600,
                               extra: [.init(name: "roles", value: .array([.string("a")]))])
        let token = try JWTSigner.sign(claims, with: key)
        let result = try Self.python(["verify", algorithm.name, file.path, token])
        #expect(result.status == 0, "joserfc refused our \(algorithm.name) token: \(result.output) \(result.error)")
        let parsed = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        let decodedClaims = parsed?["claims"] as? [String: Any]
        #expect(decodedClaims?["sub"] as? String == "alice")
        #expect(decodedClaims?["roles"] as? [String] == ["a"])
        #expect((parsed?["header"] as? [String: Any])?["kid"] as? String == key.kid)

        // And a tampered token is refused there too: the check above could fail.
        var tampered = Array(token.utf8)
        tampered[tampered.count / 2] = tampered[tampered.count / 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let refused = try Self.python(["verify", algorithm.name, file.path, String(decoding: tampered, as: UTF8.self)])
        #expect(refused.status == 1, "joserfc accepted a tampered token")
    }

    @Test(arguments: [JWSAlgorithm.hs256, .es256, .eddsa, .ed25519, .rs256])
    func theirsVerifyHere(_ algorithm: JWSAlgorithm) throws {
        let result = try Self.python(["sign", algorithm.name, #"{"sub":"bob","exp":\#(Self.now + 600),"n":1}"#])
        try #require(result.status == 0, "joserfc could not sign: \(result.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: String], "joserfc_interop.py printed \(result.output)")
        let key = algorithm.isHMAC
            ? try JWTKey(hmacSecret: Base64URL.decode(object["key"]!)!, algorithm: algorithm)
            : try JWTKey(asymmetric: AsymmetricKey(pem: object["key"]!), algorithm: algorithm)
        let verified = try JWTVerifier(keyRing: JWTKeyRing(keys: [key])).verify(object["token"]!, now: Self.now)
        #expect(verified.claims.subject == "bob")
        #expect(verified.claims.extraJSON == #"{"n":1}"#)
        #expect(verified.header.algorithmName == algorithm.name)
    }
}
