import Testing
import TokenCrypto
import TokenJWT

@Suite struct ClaimsTests {
    let factory = try! TokenFactory.hs256()

    @Test func signedClaimsRoundTrip() throws {
        let claims = JWTClaims(
            issuer: "tokend", subject: "alice", audience: ["api", "web"], issuedAt: 1_700_000_000,
            notBefore: 1_700_000_000, expiration: 1_700_003_600, jwtID: "j1", sessionID: "s1",
            extra: [.init(name: "role", value: .string("admin")), .init(name: "n", value: .number("1.50"))]
        )
        let token = try JWTSigner.sign(claims, with: factory.key)
        let verified = try factory.verifier.verify(token, now: 1_700_000_100)
        #expect(verified.claims == claims)
        #expect(verified.claims.extraJSON == #"{"role":"admin","n":1.50}"#)
        #expect(verified.header.type == "JWT")
        #expect(verified.kid == "k1")
    }

    @Test func timeBoundariesAndLeeway() throws {
        let token = try factory.token(payload: #"{"sub":"a","nbf":1000,"exp":2000}"#)
        var verifier = factory.verifier
        #expect(throws: JWTError(.notYetValid, "")) { try verifier.verify(token, now: 999) }
        _ = try verifier.verify(token, now: 1000)
        _ = try verifier.verify(token, now: 1999)
        #expect(throws: JWTError(.expired, "")) { try verifier.verify(token, now: 2000) }
        verifier.policy.leeway = 30
        _ = try verifier.verify(token, now: 970)
        _ = try verifier.verify(token, now: 2029)
        #expect(throws: JWTError(.expired, "")) { try verifier.verify(token, now: 2030) }
    }

    @Test func issuerAndAudiencePolicy() throws {
        let token = try factory.token(payload: #"{"iss":"tokend","aud":["api","web"],"exp":2000000000}"#)
        var verifier = factory.verifier
        verifier.policy.issuer = "tokend"
        verifier.policy.audience = "web"
        _ = try verifier.verify(token, now: TokenFactory.now)
        verifier.policy.audience = "admin"
        #expect(throws: JWTError(.invalidAudience, "")) { try verifier.verify(token, now: TokenFactory.now) }
        verifier.policy.audience = nil
        verifier.policy.issuer = "other"
        #expect(throws: JWTError(.invalidIssuer, "")) { try verifier.verify(token, now: TokenFactory.now) }
        let single = try factory.token(payload: #"{"aud":"api","exp":2000000000}"#)
        #expect(try factory.verifier.verify(single, now: TokenFactory.now).claims.audience == ["api"])
    }

    @Test func registeredClaimsOfTheWrongType() throws {
        for payload in [#"{"sub":1,"exp":2000000000}"#, #"{"aud":[1],"exp":2000000000}"#, #"{"iss":null,"exp":2000000000}"#, #"{"sid":{},"exp":2000000000}"#] {
            #expect(throws: JWTError(.malformed, "")) { try factory.verifier.verify(try factory.token(payload: payload), now: TokenFactory.now) }
        }
    }

    @Test func allAlgorithmsSignAndVerify() throws {
        let keys: [JWTKey] = [
            try JWTKey(hmacSecret: SecureRandom.bytes(32), algorithm: .hs256),
            try JWTKey(hmacSecret: SecureRandom.bytes(48), algorithm: .hs384),
            try JWTKey(hmacSecret: SecureRandom.bytes(64), algorithm: .hs512),
            try JWTKey(asymmetric: .generate(.p256), algorithm: .es256),
            try JWTKey(asymmetric: .generate(.ed25519), algorithm: .ed25519),
            try JWTKey(asymmetric: .generate(.ed25519), algorithm: .eddsa),
            try JWTKey(asymmetric: .generate(.rsa(bits: 2048)), algorithm: .rs256),
        ]
        let ring = JWTKeyRing(keys: keys)
        for key in keys {
            let token = try JWTSigner.sign(JWTClaims(subject: "s", expiration: 2_000_000_000), with: key)
            #expect(try JWTVerifier(keyRing: ring).verify(token, now: 0).kid == key.kid)
        }
        #expect(throws: CryptoError(.invalidKey, "")) { try JWTKey(asymmetric: .generate(.p256), algorithm: .rs256) }
        #expect(throws: CryptoError(.invalidKey, "")) { try JWTKey(hmacSecret: SecureRandom.bytes(32), algorithm: .hs512) }
    }

    @Test func ed25519NamesAreInterchangeableForAnEd25519Key() throws {
        let key = try JWTKey(asymmetric: .generate(.ed25519), algorithm: .ed25519, kid: "ed")
        let legacy = try TokenFactory(key: key).token(header: #"{"alg":"EdDSA","kid":"ed"}"#, payload: TokenFactory.validPayload)
        _ = try TokenFactory(key: key).verifier.verify(legacy, now: TokenFactory.now)
    }
}
