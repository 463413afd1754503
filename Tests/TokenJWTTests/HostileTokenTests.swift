import Testing
import TokenCrypto
import TokenJWT

/// Every known way to forge or confuse a JWT verifier is refused, each for its own reason.
@Suite struct HostileTokenTests {
    let factory = try! TokenFactory.hs256()
    let now = TokenFactory.now

    func expectRefused(_ token: String, _ code: JWTError.Code, verifier: JWTVerifier? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try (verifier ?? factory.verifier).verify(token, now: now)
            Issue.record("accepted a hostile token", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func theBaselineTokenVerifies() throws {
        let verified = try factory.verifier.verify(try factory.token(payload: TokenFactory.validPayload), now: now)
        #expect(verified.claims.subject == "alice")
    }

    @Test(arguments: ["none", "None", "NONE", "nOnE", "none ", ""])
    func algNoneInAnySpelling(_ alg: String) throws {
        let input = Base64URL.encode(#"{"alg":"\#(alg)","kid":"k1"}"#) + "." + Base64URL.encode(TokenFactory.validPayload)
        expectRefused(input + ".", .algorithmMismatch)
        expectRefused(input + "." + Base64URL.encode([UInt8](repeating: 0, count: 32)), .algorithmMismatch)
    }

    @Test(arguments: [AsymmetricKey.Kind.rsa(bits: 2048), .p256])
    func hs256SignedWithThePublicKeyAsSecret(kind: AsymmetricKey.Kind) throws {
        let key = try AsymmetricKey.generate(kind).publicKey()
        let algorithm: JWSAlgorithm = kind == .p256 ? .es256 : .rs256
        let verifier = JWTVerifier(keyRing: JWTKeyRing(keys: [try JWTKey(asymmetric: key, algorithm: algorithm, kid: "pub")]))
        for secret in [Array(try key.publicKeyPEM().utf8), try key.spkiDER()] {
            let forger = TokenFactory(key: try JWTKey(hmacSecret: secret, algorithm: .hs256, kid: "pub"))
            expectRefused(try forger.token(payload: TokenFactory.validPayload), .algorithmMismatch, verifier: verifier)
        }
    }

    @Test func headerAlgDifferentFromTheKeys() throws {
        // HS512 and HS384 with an HS256 key, and an asymmetric name.
        for alg in ["HS384", "HS512", "RS256", "ES256", "hs256"] {
            let token = try factory.token(header: #"{"alg":"\#(alg)","kid":"k1"}"#, payload: TokenFactory.validPayload)
            expectRefused(token, .algorithmMismatch)
        }
    }

    @Test func ecdsaZeroScalarsAndDERSignatures() throws {
        let key = try JWTKey(asymmetric: AsymmetricKey.generate(.p256), algorithm: .es256, kid: "ec")
        let ec = TokenFactory(key: key)
        let valid = try ec.token(payload: TokenFactory.validPayload)
        _ = try ec.verifier.verify(valid, now: now)
        let input = valid[..<valid.lastIndex(of: ".")!]
        let raw = Base64URL.decode(String(valid[valid.index(after: valid.lastIndex(of: ".")!)...]))!
        let der = raw.withUnsafeBytes { ECDSASignature.der(fromRaw: $0) }!
        let zero = [UInt8](repeating: 0, count: 32)
        let forged: [[UInt8]] = [
            zero + zero, zero + raw.suffix(32), raw.prefix(32) + zero,
            [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00], // DER r = s = 0
            der, // DER where raw is required
        ]
        for signature in forged {
            expectRefused(input + "." + Base64URL.encode(signature), .badSignature, verifier: ec.verifier)
        }
    }

    @Test func truncatedExtendedAndEmptySignatures() throws {
        let valid = try factory.token(payload: TokenFactory.validPayload)
        let input = valid[..<valid.lastIndex(of: ".")!]
        let signature = Base64URL.decode(String(valid[valid.index(after: valid.lastIndex(of: ".")!)...]))!
        for forged in [Array(signature.dropLast()), signature + [0], [], Array(signature.prefix(16))] {
            expectRefused(input + "." + Base64URL.encode(forged), .badSignature)
        }
    }

    @Test func nonCanonicalBase64URL() throws {
        let valid = try factory.token(payload: TokenFactory.validPayload)
        let parts = valid.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        // The HS256 signature is 32 bytes: 43 characters whose last carries 2 unused bits.
        let last = parts[2].last!
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let sibling = alphabet[alphabet.firstIndex(of: last)! + 1]
        let variants = [
            parts[0] + "." + parts[1] + "." + parts[2].dropLast() + String(sibling), // non-zero trailing bits
            parts[0] + "." + parts[1] + "." + parts[2] + "=", // padding
            parts[0] + "=." + parts[1] + "." + parts[2],
            parts[0] + "." + parts[1] + "." + parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "+",
            parts[0] + "." + parts[1] + " ." + parts[2], // whitespace
            parts[0] + "." + parts[1] + "." + parts[2] + "\n",
        ]
        for token in variants { expectRefused(token, .malformed) }
    }

    @Test func duplicateMembers() throws {
        expectRefused(try factory.token(header: #"{"alg":"HS256","kid":"k1","alg":"HS256"}"#, payload: TokenFactory.validPayload), .malformed)
        expectRefused(try factory.token(payload: #"{"sub":"alice","exp":2000000000,"sub":"mallory"}"#), .malformed)
        expectRefused(try factory.token(payload: #"{"sub":"alice","exp":2000000000,"exp":2100000000}"#), .malformed)
    }

    /// A header may hold 16 members, not 17; duplicates are found among the most members an
    /// object may hold (the set that replaces the pairwise scan past eight names), wherever
    /// they stand.
    @Test func memberLimitsAndDuplicatesAtTheLargestAllowedSize() throws {
        func header(_ count: Int, duplicateOf: Int? = nil) -> String {
            var members = [#""alg":"HS256""#, #""kid":"k1""#]
            members += (members.count..<count).map { #""x\#($0)":0"# }
            if let duplicateOf { members[count - 1] = #""x\#(duplicateOf)":1"# }
            return "{" + members.joined(separator: ",") + "}"
        }
        let payload = TokenFactory.validPayload
        _ = try factory.verifier.verify(try factory.token(header: header(16), payload: payload), now: now)
        expectRefused(try factory.token(header: header(17), payload: payload), .malformed)
        expectRefused(try factory.token(header: header(16, duplicateOf: 3), payload: payload), .malformed)
        expectRefused(try factory.token(header: header(16, duplicateOf: 14), payload: payload), .malformed)

        func claims(_ count: Int, duplicateOf: Int? = nil) -> String {
            var members = [#""sub":"alice""#, #""exp":2000000000"#]
            members += (members.count..<count).map { #""c\#($0)":0"# }
            if let duplicateOf { members[count - 1] = #""c\#(duplicateOf)":1"# }
            return "{" + members.joined(separator: ",") + "}"
        }
        let wide = JWTVerifier(keyRing: factory.verifier.keyRing, policy: { var p = JWTValidationPolicy(); p.maximumTokenSize = 1 << 20; return p }())
        _ = try wide.verify(try factory.token(payload: claims(1024)), now: now)
        expectRefused(try factory.token(payload: claims(1025)), .malformed, verifier: wide)
        expectRefused(try factory.token(payload: claims(1024, duplicateOf: 2)), .malformed, verifier: wide)
        expectRefused(try factory.token(payload: claims(1024, duplicateOf: 1000)), .malformed, verifier: wide)
        // Names equal as Swift strings but not as bytes are two names, not a duplicate.
        _ = try factory.verifier.verify(try factory.token(payload: #"{"sub":"alice","exp":2000000000,"Jos\u00e9":1,"Jose\u0301":2}"#), now: now)
    }

    @Test func expirationOfTheWrongShape() throws {
        for exp in [#""2000000000""#, "2000000000.0", "2e9", "true", "-1", "99999999999999999999", "9223372036854775808", "null"] {
            expectRefused(try factory.token(payload: #"{"sub":"alice","exp":\#(exp)}"#), .malformed)
        }
        expectRefused(try factory.token(payload: #"{"sub":"alice"}"#), .missingClaim)
        expectRefused(try factory.token(payload: #"{"sub":"alice","exp":1700000000}"#), .expired)
    }

    @Test func wrongNumberOfSegments() throws {
        let valid = try factory.token(payload: TokenFactory.validPayload)
        let parts = valid.split(separator: ".").map(String.init)
        expectRefused(parts[0] + "." + parts[1], .malformed)
        expectRefused(valid + "." + parts[2], .malformed)
        expectRefused(parts[0] + ".." + parts[2], .malformed)
        expectRefused("", .malformed)
        expectRefused("..", .malformed)
    }

    @Test func criticalAndUnencodedPayloadHeaders() throws {
        expectRefused(try factory.token(header: #"{"alg":"HS256","kid":"k1","crit":["exp"],"exp":1}"#, payload: TokenFactory.validPayload), .unsupportedHeader)
        expectRefused(try factory.token(header: #"{"alg":"HS256","kid":"k1","crit":["b64"],"b64":false}"#, payload: TokenFactory.validPayload), .unsupportedHeader)
        expectRefused(try factory.token(header: #"{"alg":"HS256","kid":"k1","b64":false}"#, payload: TokenFactory.validPayload), .unsupportedHeader)
        expectRefused(try factory.token(header: #"{"alg":"HS256","kid":"k1","crit":[]}"#, payload: TokenFactory.validPayload), .malformed)
    }

    @Test func nulBytes() throws {
        let valid = try factory.token(payload: TokenFactory.validPayload)
        expectRefused(valid.replacingOccurrences(of: ".", with: "\0."), .malformed)
        expectRefused(valid + "\0", .malformed)
        expectRefused(try factory.token(payload: "{\"sub\":\"alice\u{0}\",\"exp\":2000000000}"), .malformed)
        expectRefused(try factory.token(payload: #"{"sub":"alice\u0000admin","exp":2000000000}"#), .malformed)
        expectRefused(try factory.token(payload: TokenFactory.validPayload + "\0"), .malformed)
    }

    @Test func deepNesting() throws {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        expectRefused(try factory.token(payload: #"{"sub":"alice","exp":2000000000,"x":\#(deep)}"#), .malformed)
        let shallow = String(repeating: "[", count: 5) + String(repeating: "]", count: 5)
        _ = try factory.verifier.verify(try factory.token(payload: #"{"sub":"alice","exp":2000000000,"x":\#(shallow)}"#), now: now)
    }

    @Test func oversizedTokensAreRefusedBeforeDecoding() throws {
        let big = try factory.token(payload: #"{"sub":"alice","exp":2000000000,"pad":"\#(String(repeating: "x", count: 9000))"}"#)
        expectRefused(big, .tooLarge)
        // Refused by size even when it is not a JWT at all.
        expectRefused(String(repeating: "!", count: 8193), .tooLarge)
    }

    @Test func unknownOrMissingKid() throws {
        expectRefused(try factory.token(header: #"{"alg":"HS256","kid":"k2"}"#, payload: TokenFactory.validPayload), .unknownKey)
        // No kid with several keys: no guessing.
        let second = try JWTKey(hmacSecret: [UInt8](repeating: 9, count: 32), algorithm: .hs256, kid: "k2")
        let ring = JWTVerifier(keyRing: JWTKeyRing(keys: [factory.key, second]))
        expectRefused(try factory.token(header: #"{"alg":"HS256"}"#, payload: TokenFactory.validPayload), .unknownKey, verifier: ring)
        // The right kid in a two-key ring verifies.
        _ = try ring.verify(try factory.token(payload: TokenFactory.validPayload), now: now)
    }

    @Test func wrongType() throws {
        var verifier = factory.verifier
        verifier.policy.type = "at+jwt"
        expectRefused(try factory.token(payload: TokenFactory.validPayload), .wrongType, verifier: verifier)
        expectRefused(try factory.token(header: #"{"alg":"HS256","kid":"k1"}"#, payload: TokenFactory.validPayload), .wrongType, verifier: verifier)
        _ = try verifier.verify(try factory.token(header: #"{"alg":"HS256","kid":"k1","typ":"application/AT+JWT"}"#, payload: TokenFactory.validPayload), now: now)
    }

    @Test func nonObjectPayloadsAndInvalidUTF8() throws {
        for payload in ["[]", "\"alice\"", "42", "null", "{", "{\"sub\":\"\u{FFFD}\"", "{}x"] {
            expectRefused(try factory.token(payload: payload), .malformed)
        }
        let input = Base64URL.encode(#"{"alg":"HS256","kid":"k1"}"#) + "." + Base64URL.encode([0x7B, 0x22, 0x73, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D])
        let signature = try Array(input.utf8).withUnsafeBytes { try factory.key.sign($0) }
        expectRefused(input + "." + Base64URL.encode(signature), .malformed)
    }

    @Test func keyHeadersAreIgnored() throws {
        // A jwk/jku/x5u/x5c header must not introduce a key: the token still needs our key.
        let attacker = try AsymmetricKey.generate(.p256)
        let jwk = try attacker.publicJWK().json
        let header = #"{"alg":"HS256","kid":"k1","jwk":\#(jwk),"jku":"https://evil.example/jwks","x5u":"https://evil.example/c","x5c":["AAAA"]}"#
        _ = try factory.verifier.verify(try factory.token(header: header, payload: TokenFactory.validPayload), now: now)
        let forged = TokenFactory(key: try JWTKey(asymmetric: attacker, algorithm: .es256, kid: "k1"))
        expectRefused(try forged.token(header: #"{"alg":"ES256","kid":"k1","jwk":\#(jwk)}"#, payload: TokenFactory.validPayload), .algorithmMismatch)
    }
}
