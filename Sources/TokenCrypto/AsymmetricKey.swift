internal import COpenSSL

/// An asymmetric key pair or public key held by OpenSSL (`EVP_PKEY`): ECDSA P-256, Ed25519,
/// or RSA of 2048 bits or more.
///
/// Immutable once made, so safe to share between threads: every operation makes its own
/// OpenSSL contexts.
public final class AsymmetricKey: @unchecked Sendable {
    public enum Kind: Sendable, Hashable {
        case p256
        case ed25519
        case rsa(bits: Int)
    }

    /// Smallest RSA modulus accepted anywhere (NIST SP 800-131A, RFC 7518 §3.3).
    public static let minimumRSABits = 2048

    public let kind: Kind
    /// Whether this key holds private material and so can sign.
    public let isPrivate: Bool
    let pkey: OpaquePointer
    /// Verification contexts for ECDSA and RSA, prepared on first use and reused.
    let verifyContexts: ContextPool

    /// Takes ownership of `pkey`, checking that it is a kind tokend supports.
    init(taking pkey: OpaquePointer, isPrivate: Bool) throws {
        let id = EVP_PKEY_get_base_id(pkey)
        let kind: Kind
        if id == tokend_pkey_id_ec() {
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_utf8_string_param(pkey, "group", &name, name.count, &length) == 1,
                  String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "prime256v1"
            else {
                OpenSSLErrorQueue.clear()
                EVP_PKEY_free(pkey)
                throw CryptoError(.invalidKey, "only the P-256 curve is supported for EC keys")
            }
            kind = .p256
        } else if id == tokend_pkey_id_ed25519() {
            kind = .ed25519
        } else if id == tokend_pkey_id_rsa() {
            let bits = Int(EVP_PKEY_get_bits(pkey))
            guard bits >= Self.minimumRSABits else {
                EVP_PKEY_free(pkey)
                throw CryptoError(.invalidKey, "RSA keys need at least \(Self.minimumRSABits) bits, this one has \(bits)")
            }
            kind = .rsa(bits: bits)
        } else {
            EVP_PKEY_free(pkey)
            throw CryptoError(.invalidKey, "unsupported key type (OpenSSL id \(id)); expected EC P-256, Ed25519 or RSA")
        }
        self.kind = kind
        self.isPrivate = isPrivate
        self.pkey = pkey
        // The EVP_PKEY outlives the pool (deinit drains the pool first) and is only read.
        nonisolated(unsafe) let key = pkey
        self.verifyContexts = ContextPool { [kind] in
            guard let context = EVP_PKEY_CTX_new(key, nil) else { return nil }
            var ok = EVP_PKEY_verify_init(context) == 1 && EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) == 1
            if case .rsa = kind { ok = ok && EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1 }
            guard ok else {
                EVP_PKEY_CTX_free(context)
                return nil
            }
            return context
        }
    }

    deinit {
        verifyContexts.drain()
        EVP_PKEY_free(pkey)
    }

    /// A fresh key pair. RSA keys default to 2048 bits.
    public static func generate(_ kind: Kind) throws -> AsymmetricKey {
        let generated: OpaquePointer?
        switch kind {
        case .p256: generated = tokend_generate_ec_p256()
        case .ed25519: generated = tokend_generate_ed25519()
        case .rsa(let bits):
            guard bits >= minimumRSABits else {
                throw CryptoError(.invalidKey, "RSA keys need at least \(minimumRSABits) bits")
            }
            generated = tokend_generate_rsa(UInt32(bits))
        }
        guard let generated else { throw CryptoError.openSSL("key generation") }
        return try AsymmetricKey(taking: generated, isPrivate: true)
    }

    /// The public half of this key.
    public func publicKey() throws -> AsymmetricKey {
        guard isPrivate else { return self }
        return try AsymmetricKey(spkiDER: spkiDER())
    }
}

// MARK: - PEM and DER

extension AsymmetricKey {
    /// Loads a PEM private key (PKCS#8, or the traditional EC/RSA forms) or SPKI public key.
    /// Encrypted PEM is refused rather than prompting for a passphrase.
    public convenience init(pem: String) throws {
        let bytes = Array(pem.utf8)
        if let pkey = Self.readPEM(bytes, private: true) {
            try self.init(taking: pkey, isPrivate: true)
        } else if let pkey = Self.readPEM(bytes, private: false) {
            try self.init(taking: pkey, isPrivate: false)
        } else {
            throw CryptoError(.invalidKey, "not a PEM private or public key")
        }
    }

    /// Loads a DER SubjectPublicKeyInfo.
    public convenience init(spkiDER der: [UInt8]) throws {
        let pkey: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_PUBKEY(nil, &cursor, buffer.count)
        }
        guard let pkey else { throw CryptoError(.invalidKey, "not a DER public key (\(OpenSSLErrorQueue.drain()))") }
        try self.init(taking: pkey, isPrivate: false)
    }

    private static func readPEM(_ bytes: [UInt8], private isPrivate: Bool) -> OpaquePointer? {
        bytes.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            // A callback that supplies no passphrase: encrypted keys fail instead of prompting.
            let noPassphrase: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, _, _, _ in 0 }
            let pkey = isPrivate
                ? PEM_read_bio_PrivateKey(bio, nil, noPassphrase, nil)
                : PEM_read_bio_PUBKEY(bio, nil, noPassphrase, nil)
            if pkey == nil { OpenSSLErrorQueue.clear() }
            return pkey
        }
    }

    /// The private key as unencrypted PKCS#8 PEM.
    public func privateKeyPEM() throws -> String {
        guard isPrivate else { throw CryptoError(.unsupportedOperation, "a public key has no private PEM") }
        return try Self.writeBIO("PEM_write_bio_PrivateKey") { PEM_write_bio_PrivateKey($0, pkey, nil, nil, 0, nil, nil) }
    }

    /// The public key as SPKI PEM.
    public func publicKeyPEM() throws -> String {
        try Self.writeBIO("PEM_write_bio_PUBKEY") { PEM_write_bio_PUBKEY($0, pkey) }
    }

    /// The public key as DER SubjectPublicKeyInfo.
    public func spkiDER() throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_PUBKEY(pkey, &out)
        guard length > 0, let out else { throw CryptoError.openSSL("i2d_PUBKEY") }
        defer { tokend_openssl_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    private static func writeBIO(_ operation: String, _ body: (OpaquePointer) -> Int32) throws -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.openSSL("BIO_new") }
        defer { BIO_free(bio) }
        guard body(bio) == 1 else { throw CryptoError.openSSL(operation) }
        var data: UnsafeMutablePointer<CChar>? = nil
        let length = tokend_bio_get_mem_data(bio, &data)
        guard length > 0, let data else { throw CryptoError.openSSL(operation) }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }
}
