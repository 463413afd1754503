import Foundation
import Testing
import TestSupport
@testable import TokenCrypto

@Suite struct AESGCMTests {
    let key = SecureRandom.bytes(AESGCM.keyByteCount)
    let associatedData = Array("session.v1".utf8)

    @Test(arguments: [0, 1, 15, 16, 17, 64, 1000, 65_537])
    func roundTrip(size: Int) throws {
        let plaintext = SecureRandom.bytes(size)
        let sealed = try AESGCM.seal(plaintext, key: key, associatedData: associatedData)
        #expect(sealed.count == AESGCM.nonceByteCount + size + AESGCM.tagByteCount)
        #expect(try AESGCM.open(sealed, key: key, associatedData: associatedData) == plaintext)
        if size >= 16 { #expect(sealed[AESGCM.nonceByteCount..<(AESGCM.nonceByteCount + size)] != plaintext[...], "encrypted") }
    }

    @Test func withoutAssociatedData() throws {
        let sealed = try AESGCM.seal(Array("hello".utf8), key: key)
        #expect(try AESGCM.open(sealed, key: key) == Array("hello".utf8))
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(sealed, key: key, associatedData: [0]) }
    }

    @Test func eachSealUsesAFreshNonce() throws {
        let first = try AESGCM.seal([1, 2, 3], key: key)
        let second = try AESGCM.seal([1, 2, 3], key: key)
        #expect(first.prefix(AESGCM.nonceByteCount) != second.prefix(AESGCM.nonceByteCount))
        #expect(first != second)
    }

    /// Flipping one bit in any byte of nonce, ciphertext or tag is refused.
    @Test(arguments: [0, 5], [0, 1, 33])
    func tamperingAnywhereIsRefused(plaintextSize: Int, associatedDataSize: Int) throws {
        let aad = SecureRandom.bytes(associatedDataSize)
        let sealed = try AESGCM.seal(SecureRandom.bytes(plaintextSize), key: key, associatedData: aad)
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(throws: CryptoError(.authenticationFailure, ""), "byte \(index) of \(sealed.count)") {
                try AESGCM.open(tampered, key: key, associatedData: aad)
            }
        }
    }

    @Test func eachRegionTamperedIsRefused() throws {
        let plaintext = Array("the quick brown fox".utf8)
        let sealed = try AESGCM.seal(plaintext, key: key, associatedData: associatedData)
        let regions: [(String, Int)] = [
            ("nonce", 3),
            ("ciphertext", AESGCM.nonceByteCount + 4),
            ("tag", sealed.count - 1),
        ]
        for (name, index) in regions {
            var tampered = sealed
            tampered[index] ^= 0x80
            #expect(throws: CryptoError(.authenticationFailure, ""), "\(name)") {
                try AESGCM.open(tampered, key: key, associatedData: associatedData)
            }
        }
        // Swapping in another box's tag, truncating or extending fails too.
        let other = try AESGCM.seal(plaintext, key: key, associatedData: associatedData)
        let spliced = Array(sealed.dropLast(AESGCM.tagByteCount) + other.suffix(AESGCM.tagByteCount))
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(spliced, key: key, associatedData: associatedData) }
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(Array(sealed.dropLast()), key: key, associatedData: associatedData) }
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(sealed + [0], key: key, associatedData: associatedData) }
        // The untouched box still opens.
        #expect(try AESGCM.open(sealed, key: key, associatedData: associatedData) == plaintext)
    }

    @Test func wrongKeyOrAssociatedDataIsRefused() throws {
        let sealed = try AESGCM.seal(Array("secret".utf8), key: key, associatedData: associatedData)
        var otherKey = key
        otherKey[31] ^= 1
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(sealed, key: otherKey, associatedData: associatedData) }
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(sealed, key: SecureRandom.bytes(32), associatedData: associatedData) }
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(sealed, key: key, associatedData: Array("session.v2".utf8)) }
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(sealed, key: key) }
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(sealed, key: key, associatedData: associatedData + [0]) }
    }

    @Test func shortInputIsRefused() throws {
        for count in [0, 1, AESGCM.nonceByteCount, AESGCM.nonceByteCount + AESGCM.tagByteCount - 1] {
            #expect(throws: CryptoError(.authenticationFailure, ""), "\(count) bytes") {
                try AESGCM.open([UInt8](repeating: 0, count: count), key: key)
            }
        }
        // Exactly nonce + tag is an empty plaintext's box: well-formed, and still must authenticate.
        #expect(throws: CryptoError(.authenticationFailure, "")) {
            try AESGCM.open([UInt8](repeating: 0, count: AESGCM.nonceByteCount + AESGCM.tagByteCount), key: key)
        }
    }

    @Test func keysOfTheWrongLengthAreRefused() throws {
        let sealed = try AESGCM.seal([1], key: key)
        for count in [0, 16, 24, 31, 33, 64] {
            let wrong = [UInt8](repeating: 7, count: count)
            #expect(throws: CryptoError(.invalidKey, ""), "\(count)-byte key") { try AESGCM.seal([1], key: wrong) }
            #expect(throws: CryptoError(.invalidKey, ""), "\(count)-byte key") { try AESGCM.open(sealed, key: wrong) }
        }
    }

    struct KnownAnswer: Sendable, CustomTestStringConvertible {
        let name, key, nonce, plaintext, associatedData, ciphertext, tag: String
        var testDescription: String { name }
    }

    /// The AES-256 test cases 13-16 of McGrew & Viega, "The Galois/Counter Mode of Operation
    /// (GCM)" (the vectors NIST's GCM page published with the spec).
    static let knownAnswers = [
        KnownAnswer(name: "test case 13", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
                    plaintext: "", associatedData: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        KnownAnswer(name: "test case 14", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
                    plaintext: String(repeating: "00", count: 16), associatedData: "",
                    ciphertext: "cea7403d4d606b6e074ec5d3baf39d18", tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        KnownAnswer(name: "test case 15", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                    nonce: "cafebabefacedbaddecaf888",
                    plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                        + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
                    associatedData: "",
                    ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                        + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
                    tag: "b094dac5d93471bdec1a502270e3cc6c"),
        KnownAnswer(name: "test case 16", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                    nonce: "cafebabefacedbaddecaf888",
                    plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                        + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                    associatedData: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
                    ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                        + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                    tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test(arguments: knownAnswers)
    func knownAnswer(_ vector: KnownAnswer) throws {
        let key = [UInt8](hex: vector.key), aad = [UInt8](hex: vector.associatedData)
        let sealed = try AESGCM.seal([UInt8](hex: vector.plaintext), key: key, nonce: [UInt8](hex: vector.nonce), associatedData: aad)
        #expect(sealed.hex == vector.nonce + vector.ciphertext + vector.tag)
        #expect(try AESGCM.open(sealed, key: key, associatedData: aad) == [UInt8](hex: vector.plaintext))
    }

    /// Interop both ways with Python's `cryptography` (needs python3 with it; joserfc, which
    /// tools/test installs, depends on it).
    @Test func interopWithPythonCryptography() throws {
        let script = """
            import sys
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            op, key, aad, data = sys.argv[1], *(bytes.fromhex(a) for a in sys.argv[2:5])
            if op == "open":
                print(AESGCM(key).decrypt(data[:12], data[12:], aad).hex())
            else:
                import os
                nonce = os.urandom(12)
                print((nonce + AESGCM(key).encrypt(nonce, data, aad)).hex())
            """
        func python(_ operation: String, _ data: [UInt8]) throws -> String {
            let result = try runProcess("/usr/bin/env", ["python3", "-c", script, operation, key.hex, associatedData.hex, data.hex])
            try #require(result.status == 0, "python3 \(operation): \(result.error)")
            return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        for size in [0, 37] {
            let plaintext = SecureRandom.bytes(size)
            // Ours opens there.
            let ours = try AESGCM.seal(plaintext, key: key, associatedData: associatedData)
            #expect(try python("open", ours) == plaintext.hex)
            // Theirs opens here, and not with other associated data.
            let theirs = [UInt8](hex: try python("seal", plaintext))
            #expect(theirs.count == AESGCM.nonceByteCount + size + AESGCM.tagByteCount)
            #expect(try AESGCM.open(theirs, key: key, associatedData: associatedData) == plaintext)
            #expect(throws: CryptoError(.authenticationFailure, "")) { try AESGCM.open(theirs, key: key) }
        }
    }
}
