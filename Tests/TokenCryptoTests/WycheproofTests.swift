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
    func run(_ file: String, check: ([String: Any], [String: Any]) throws -> Bool) throws -> Tally {
        var tally = Tally()
        for group in try TestVectors.wycheproofGroups(file) {
            for test in group["tests"] as! [[String: Any]] {
                let id = test["tcId"] as! Int
                let accepted = (try? check(group, test)) ?? false
                switch test["result"] as! String {
                case "valid":
                    tally.valid += 1
                    #expect(accepted, "\(file) tcId \(id) (\(test["comment"] ?? "")) should verify")
                case "invalid":
                    tally.invalid += 1
                    #expect(!accepted, "\(file) tcId \(id) (\(test["comment"] ?? "")) should be refused")
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
            let tagBits = group["tagSize"] as! Int
            let key = try HMACKey(unrestrictedSecret: [UInt8](hex: test["key"] as! String), hash: hash)
            let tag = [UInt8](hex: test["tag"] as! String)
            let full = key.authenticationCode(for: [UInt8](hex: test["msg"] as! String))
            // Wycheproof also tests truncated tags: compare the prefix the group specifies.
            return tag.count == tagBits / 8 && ConstantTime.equals(full.prefix(tag.count), tag)
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }

    @Test func ecdsaP256P1363() throws {
        let tally = try run("ecdsa_secp256r1_sha256_p1363_test.json") { group, test in
            let key = try AsymmetricKey(spkiDER: [UInt8](hex: group["publicKeyDer"] as! String))
            return key.isValidSignature([UInt8](hex: test["sig"] as! String), for: [UInt8](hex: test["msg"] as! String))
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }

    @Test func ed25519() throws {
        let tally = try run("ed25519_test.json") { group, test in
            let key = try AsymmetricKey(spkiDER: [UInt8](hex: group["publicKeyDer"] as! String))
            return key.isValidSignature([UInt8](hex: test["sig"] as! String), for: [UInt8](hex: test["msg"] as! String))
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }

    @Test func rsa2048PKCS1SHA256() throws {
        let tally = try run("rsa_signature_2048_sha256_test.json") { group, test in
            let key = try AsymmetricKey(spkiDER: [UInt8](hex: group["publicKeyDer"] as! String))
            return key.isValidSignature([UInt8](hex: test["sig"] as! String), for: [UInt8](hex: test["msg"] as! String))
        }
        #expect(tally.valid > 0 && tally.invalid > 0, "\(tally)")
    }
}
