import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// `--alg ES256`, `Ed25519` (and its older name `EdDSA`) and `RS256` end to end: the daemon
/// signs with a key of that kind, publishes it in a non-empty JWK Set, and an independent
/// verifier (Python's joserfc, which tools/test installs) accepts its tokens with that set.
@Suite struct AlgorithmTests {
    /// Verifies TOKEN with the JWK Set JWKS for ALG in joserfc; prints the header and claims.
    static let verifier = """
        import json, sys, warnings
        warnings.simplefilter("ignore")  # joserfc warns that "EdDSA" is deprecated by RFC 9864
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet
        jwks, token, alg = sys.argv[1:4]
        try:
            decoded = jwt.decode(token, KeySet.import_key_set(json.loads(jwks)), algorithms=[alg])
            jwt.JWTClaimsRegistry(exp={"essential": True}).validate(decoded.claims)
        except (JoseError, ValueError) as error:
            print(f"refused: {error}")
            sys.exit(1)
        print(json.dumps({"header": decoded.header, "claims": decoded.claims}))
        """

    static func joserfc(_ jwks: String, _ token: String, _ algorithm: String) throws -> (status: Int32, output: String, error: String) {
        try runProcess("/usr/bin/env", ["python3", "-c", verifier, jwks, token, algorithm])
    }

    @Test(arguments: ["ES256", "Ed25519", "EdDSA", "RS256"])
    func tokensVerifyHereAndInJoserfcWithThePublishedKeys(_ algorithm: String) async throws {
        let daemon = try DaemonProcess(["--alg", algorithm])
        let client = try await daemon.client()
        let keys = try await client.keysList()
        #expect(keys.count == 1 && keys[0].algorithm == algorithm, "\(keys)")
        let session = try await client.issue(IssueRequest(mode: .session, subject: "alice", claims: #"{"role":"reader"}"#))
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "bob"))
        #expect(try await client.verify(token: session.sessionToken!).status == .ok)
        #expect(try await client.verify(token: pair.accessToken!).status == .ok)
        let rotated = try await client.refresh(token: pair.refreshToken!)
        #expect(try await client.verify(token: rotated.accessToken!).status == .ok)

        let jwks = try await client.keysJWKS()
        let set = try #require(try JSONSerialization.jsonObject(with: Data(jwks.utf8)) as? [String: Any])
        let published = try #require(set["keys"] as? [[String: Any]])
        #expect(published.count == 1, "one public key: \(jwks)")
        let key = try #require(published.first)
        #expect(key["kid"] as? String == keys[0].kid && key["alg"] as? String == algorithm && key["use"] as? String == "sig", "\(key)")
        #expect(key["d"] == nil && key["p"] == nil, "no private part in the JWK Set")
        let kty = algorithm == "ES256" ? "EC" : algorithm == "RS256" ? "RSA" : "OKP"
        #expect(key["kty"] as? String == kty)
        #expect(try ReloadTests.kid(of: session.sessionToken!) == keys[0].kid)

        for (token, subject) in [(session.sessionToken!, "alice"), (rotated.accessToken!, "bob"), (rotated.refreshToken!, "bob")] {
            let result = try Self.joserfc(jwks, token, algorithm)
            #expect(result.status == 0, "joserfc refused the daemon's \(algorithm) token: \(result.output) \(result.error)")
            let decoded = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
            #expect((decoded?["claims"] as? [String: Any])?["sub"] as? String == subject)
        }
        // The control: a token whose signature is altered is refused there too.
        var parts = session.sessionToken!.split(separator: ".").map(String.init)
        var signature = Array(parts[2].utf8)
        signature[signature.count / 2] = signature[signature.count / 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        parts[2] = String(decoding: signature, as: UTF8.self)
        let tampered = parts.joined(separator: ".")
        #expect(try Self.joserfc(jwks, tampered, algorithm).status == 1, "joserfc accepted a tampered token")
        #expect(await refusal { try await client.verify(token: tampered) } == .badSignature)
        await client.close()

        // The key, and its algorithm, survive a restart.
        daemon.stop()
        let restarted = try DaemonProcess(stateDirectory: daemon.stateDirectory)
        let again = try await restarted.client()
        #expect(try await again.verify(token: session.sessionToken!).status == .ok)
        #expect(try await again.keysJWKS() == jwks)
        await again.close()
    }
}
