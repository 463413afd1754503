internal import COpenSSL

/// AES-256-GCM authenticated encryption (NIST SP 800-38D) on OpenSSL's EVP layer.
///
/// A sealed box carries its own random nonce in front and the full 16-byte tag at the end:
///
/// ```
/// +-------------+----------------------------+-------------+
/// | nonce (12)  | ciphertext (= plaintext)   | tag (16)    |
/// +-------------+----------------------------+-------------+
/// ```
///
/// The associated data is authenticated but not stored; `open` must be given the same bytes.
/// With random 96-bit nonces one key must not seal more than about 2^32 messages (SP 800-38D
/// §8.3).
public enum AESGCM {
    public static let keyByteCount = 32, nonceByteCount = 12, tagByteCount = 16

    /// Encrypts and authenticates `plaintext` (which may be empty) under a fresh nonce of 12
    /// bytes from `RAND_bytes`, returning nonce || ciphertext || tag.
    ///
    /// Throws `.invalidKey` unless `key` has 32 bytes, `.openSSL` if OpenSSL fails.
    public static func seal(_ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8] = []) throws -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: nonceByteCount)
        guard nonce.withUnsafeMutableBufferPointer({ RAND_bytes($0.baseAddress, Int32($0.count)) }) == 1 else {
            throw CryptoError.openSSL("RAND_bytes")
        }
        return try seal(plaintext, key: key, nonce: nonce, associatedData: associatedData)
    }

    /// `seal` with a caller-chosen nonce, for known-answer tests. A nonce must never be used
    /// twice with one key: that reveals the XOR of the plaintexts and the authentication key.
    static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8], associatedData: [UInt8] = []) throws -> [UInt8] {
        try checkKey(key)
        precondition(nonce.count == nonceByteCount, "AES-GCM nonces here are \(nonceByteCount) bytes")
        guard let context = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(context) }
        // The default IV length of EVP_aes_256_gcm is the 12 bytes used here.
        guard EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1 else {
            throw CryptoError.openSSL("EVP_EncryptInit_ex")
        }
        try update(context, input: associatedData, output: nil)

        var sealed = [UInt8](repeating: 0, count: nonceByteCount + plaintext.count + tagByteCount)
        try sealed.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            base.update(from: nonce, count: nonceByteCount)
            let ciphertext = base + nonceByteCount
            try update(context, input: plaintext, output: ciphertext)
            // GCM is a stream mode: Final writes nothing, it only completes the tag.
            var written: Int32 = 0
            guard EVP_EncryptFinal_ex(context, ciphertext + plaintext.count, &written) == 1, written == 0 else {
                throw CryptoError.openSSL("EVP_EncryptFinal_ex")
            }
            guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(tagByteCount), ciphertext + plaintext.count) == 1 else {
                throw CryptoError.openSSL("EVP_CIPHER_CTX_ctrl(GET_TAG)")
            }
        }
        return sealed
    }

    /// Checks and decrypts nonce || ciphertext || tag as made by `seal`, returning the plaintext.
    ///
    /// Throws `.authenticationFailure` when the box does not authenticate: a wrong key, a
    /// changed byte anywhere, other associated data, or input shorter than nonce + tag. No
    /// plaintext is returned (or left in memory) from a box that fails. Throws `.invalidKey`
    /// unless `key` has 32 bytes, `.openSSL` if OpenSSL fails otherwise.
    public static func open(_ sealed: [UInt8], key: [UInt8], associatedData: [UInt8] = []) throws -> [UInt8] {
        try checkKey(key)
        guard sealed.count >= nonceByteCount + tagByteCount else {
            throw CryptoError(.authenticationFailure, "a sealed box has at least \(nonceByteCount + tagByteCount) bytes, this one has \(sealed.count)")
        }
        guard let context = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(context) }
        let ciphertextCount = sealed.count - nonceByteCount - tagByteCount
        var plaintext = [UInt8](repeating: 0, count: ciphertextCount)
        var authenticated = false
        // Unauthenticated plaintext is wiped on every way out but success.
        defer { if !authenticated { for index in plaintext.indices { plaintext[index] = 0 } } }
        let authentic = try sealed.withUnsafeBufferPointer { input -> Bool in
            let nonce = input.baseAddress!
            let ciphertext = UnsafeBufferPointer(rebasing: input[nonceByteCount..<(nonceByteCount + ciphertextCount)])
            guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1 else {
                throw CryptoError.openSSL("EVP_DecryptInit_ex")
            }
            try update(context, input: associatedData, output: nil)
            try plaintext.withUnsafeMutableBufferPointer { out in
                try update(context, input: ciphertext, output: out.baseAddress)
            }
            // SET_TAG takes a non-const pointer but only copies from it.
            let tag = UnsafeMutableRawPointer(mutating: nonce + nonceByteCount + ciphertextCount)
            guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(tagByteCount), tag) == 1 else {
                throw CryptoError.openSSL("EVP_CIPHER_CTX_ctrl(SET_TAG)")
            }
            var written: Int32 = 0
            return plaintext.withUnsafeMutableBufferPointer { out in
                EVP_DecryptFinal_ex(context, out.baseAddress.map { $0 + ciphertextCount }, &written) == 1 && written == 0
            }
        }
        guard authentic else {
            OpenSSLErrorQueue.clear()
            throw CryptoError(.authenticationFailure, "the sealed box does not authenticate under this key and associated data")
        }
        authenticated = true
        return plaintext
    }

    private static func checkKey(_ key: [UInt8]) throws {
        guard key.count == keyByteCount else {
            throw CryptoError(.invalidKey, "an AES-256-GCM key has \(keyByteCount) bytes, this one has \(key.count)")
        }
    }

    /// Feeds `input` to the cipher, as associated data when `output` is nil, else writing as
    /// many bytes to `output`. Split into pieces because EVP counts in `int`.
    private static func update(_ context: OpaquePointer, input: UnsafeBufferPointer<UInt8>, output: UnsafeMutablePointer<UInt8>?) throws {
        let maximumPiece = 1 << 30
        var offset = 0
        while offset < input.count {
            let count = min(maximumPiece, input.count - offset)
            var written: Int32 = 0
            guard EVP_CipherUpdate(context, output.map { $0 + offset }, &written, input.baseAddress! + offset, Int32(count)) == 1,
                  written == Int32(count)
            else { throw CryptoError.openSSL("EVP_CipherUpdate") }
            offset += count
        }
    }

    private static func update(_ context: OpaquePointer, input: [UInt8], output: UnsafeMutablePointer<UInt8>?) throws {
        try input.withUnsafeBufferPointer { try update(context, input: $0, output: output) }
    }
}
