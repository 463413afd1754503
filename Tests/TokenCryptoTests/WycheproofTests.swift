import Testing
import TokenCrypto
import TestSupport

/// Project Wycheproof: every `valid` vector verifies, every `invalid` one is refused.
/// `acceptable` vectors (legacy encodings) are counted but either outcome is allowed.
@Suite struct WycheproofTests {
    struct Tally: CustomStringConvertible {
        var valid = 0, invalid = 0, acceptable = 0
        var description: String { "\(valid) valid, \(invalid) invalid, \(acceptable) acceptable" }
    }

    /// Runs every test of a file through `check`, expecting its result.
    /// A vector whose bytes cannot be read counts as refused (`check` throws); one whose
    /// structure is not Wycheproof's (no `tcId`, `result`) fails the test, naming the file.
    func run(_ file: String, check: (Fixture, Fixture) throws -> Bool) throws -> Tally {
        var tally = Tally()
        for group in try TestVectors.wycheproofGroups(file) {
            for test in try group.objects("tests") {
                let id = try test.int("tcId")
                let accepted = (try? check(group, test)) ?? false
                let comment = (try? test.string("comment")) ?? ""
                switch try test.string("result") {
                case "valid":
                    tally.valid += 1
                    #expect(accepted, "\(file) tcId \(id) (\(comment)) should verify")
                case "invalid":
                    tally.invalid += 1
                    #expect(!accepted, "\(file) tcId \(id) (\(comment)) should be refused")
                default:
                    tally.acceptable += 1
                }
            }
        }
        return tally
    }

    @Test(arguments: [
        ("hmac_sha256_test.json", HashFunction.sha256),
        ("hmac_sha384_test.json", HashFunction.sha384),
        ("hmac_sha512_test.json", HashFunction.sha512),
    ])
    func hmac(file: String, hash: HashFunction) throws {
        let tally = try run(file) { group, test in
            let tagBits = try group.int("tagSize")
            let key = try HMACKey(unrestrictedSecret: try test.hex("key"), hash: hash)
            let tag = try test.hex("tag")
            let full = key.authenticationCode(for: try test.hex("msg"))
            // Wycheproof also tests truncated tags: compare the prefix the group specifies.
            return tag.count == tagBits / 8 && ConstantTime.equals(full.prefix(tag.count), tag)
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }

    @Test func ecdsaP256P1363() throws {
        let tally = try run("ecdsa_secp256r1_sha256_p1363_test.json") { group, test in
            let key = try AsymmetricKey(spkiDER: try group.hex("publicKeyDer"))
            return key.isValidSignature(try test.hex("sig"), for: try test.hex("msg"))
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }

    @Test func ed25519() throws {
        let tally = try run("ed25519_test.json") { group, test in
            let key = try AsymmetricKey(spkiDER: try group.hex("publicKeyDer"))
            return key.isValidSignature(try test.hex("sig"), for: try test.hex("msg"))
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }

    @Test func rsa2048PKCS1SHA256() throws {
        let tally = try run("rsa_signature_2048_sha256_test.json") { group, test in
            let key = try AsymmetricKey(spkiDER: try group.hex("publicKeyDer"))
            return key.isValidSignature(try test.hex("sig"), for: try test.hex("msg"))
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }
}
