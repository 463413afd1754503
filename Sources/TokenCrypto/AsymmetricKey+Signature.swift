internal import COpenSSL

extension AsymmetricKey {
    /// The length of a signature made by this key: 64 for P-256 (raw R||S) and Ed25519, the
    /// modulus size for RSA.
    public var signatureByteCount: Int {
        switch kind {
        case .p256, .ed25519: 64
        case .rsa(let bits): (bits + 7) / 8
        }
    }

    /// The digest OpenSSL hashes with, or nil for Ed25519 (which hashes internally).
    private var digest: OpaquePointer? {
        switch kind {
        case .p256, .rsa: EVP_sha256()
        case .ed25519: nil
        }
    }

    /// Signs `message`: ECDSA P-256 with SHA-256 as JOSE's raw 64-byte R||S, Ed25519, or RSA
    /// PKCS#1 v1.5 with SHA-256.
    public func sign(_ message: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard isPrivate else { throw CryptoError(.unsupportedOperation, "a public key cannot sign") }
        guard let context = EVP_MD_CTX_new() else { throw CryptoError.openSSL("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, digest, nil, pkey) == 1 else { throw CryptoError.openSSL("EVP_DigestSignInit") }
        let base = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var length = 0
        guard EVP_DigestSign(context, nil, &length, base, message.count) == 1 else { throw CryptoError.openSSL("EVP_DigestSign") }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, base, message.count) == 1 else { throw CryptoError.openSSL("EVP_DigestSign") }
        signature.removeSubrange(length...)
        if case .p256 = kind { return try ECDSASignature.raw(fromDER: signature) }
        return signature
    }

    public func sign<Message: ContiguousBytes>(_ message: Message) throws -> [UInt8] {
        try message.withUnsafeBytes { try sign($0) }
    }

    /// Whether `signature` is this key's signature of `message`. For P-256 only the raw
    /// 64-byte R||S form is accepted; DER is refused.
    public func isValidSignature(_ signature: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == signatureByteCount else { return false }
        if case .p256 = kind {
            guard let der = ECDSASignature.der(fromRaw: signature) else { return false }
            return der.withUnsafeBytes { verify($0, message) }
        }
        return verify(signature, message)
    }

    public func isValidSignature<Signature: ContiguousBytes, Message: ContiguousBytes>(_ signature: Signature, for message: Message) -> Bool {
        signature.withUnsafeBytes { s in message.withUnsafeBytes { m in isValidSignature(s, for: m) } }
    }

    private func verify(_ signature: UnsafeRawBufferPointer, _ message: UnsafeRawBufferPointer) -> Bool {
        if case .ed25519 = kind { return verifyUnhashed(signature, message) }
        // ECDSA and RSA verify a SHA-256 digest with a context prepared once per key and
        // reused: setting one up costs about as much as an RSA-2048 verification.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { digest in
            _ = SHA256(message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count, digest.baseAddress)
            let ok = verifyContexts.withContext { context in
                EVP_PKEY_verify(context, signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count, digest.baseAddress, 32)
            }
            if ok != 1 { OpenSSLErrorQueue.clear() }
            return ok == 1
        }
    }

    /// Ed25519 hashes inside the signature scheme, so it goes through EVP_DigestVerify.
    private func verifyUnhashed(_ signature: UnsafeRawBufferPointer, _ message: UnsafeRawBufferPointer) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, digest, nil, pkey) == 1 else {
            OpenSSLErrorQueue.clear()
            return false
        }
        let ok = EVP_DigestVerify(
            context,
            signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count
        )
        if ok != 1 { OpenSSLErrorQueue.clear() }
        return ok == 1
    }
}

/// Conversion between JOSE's raw ECDSA P-256 signatures (R||S, 32 bytes each) and the DER
/// `ECDSA-Sig-Value` OpenSSL speaks.
public enum ECDSASignature {
    static let scalarByteCount = 32

    /// DER for a raw signature, or nil when it has the wrong length or a zero scalar.
    public static func der(fromRaw raw: UnsafeRawBufferPointer) -> [UInt8]? {
        guard raw.count == 2 * scalarByteCount, let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        let rBytes = UnsafeBufferPointer(start: base, count: scalarByteCount)
        let sBytes = UnsafeBufferPointer(start: base + scalarByteCount, count: scalarByteCount)
        // r and s must lie in [1, n-1]; zero is refused here, OpenSSL refuses n and above.
        guard rBytes.contains(where: { $0 != 0 }), sBytes.contains(where: { $0 != 0 }) else { return nil }
        guard let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        guard let r = BN_bin2bn(rBytes.baseAddress, Int32(scalarByteCount), nil) else { return nil }
        guard let s = BN_bin2bn(sBytes.baseAddress, Int32(scalarByteCount), nil) else { BN_free(r); return nil }
        guard ECDSA_SIG_set0(signature, r, s) == 1 else { BN_free(r); BN_free(s); return nil }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_ECDSA_SIG(signature, &out)
        guard length > 0, let out else { OpenSSLErrorQueue.clear(); return nil }
        defer { tokend_openssl_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    /// The raw R||S form of a DER signature.
    public static func raw(fromDER der: [UInt8]) throws -> [UInt8] {
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let parsed else { throw CryptoError(.invalidSignature, "not a DER ECDSA signature (\(OpenSSLErrorQueue.drain()))") }
        defer { ECDSA_SIG_free(parsed) }
        var raw = [UInt8](repeating: 0, count: 2 * scalarByteCount)
        let ok = raw.withUnsafeMutableBufferPointer { out in
            BN_bn2binpad(ECDSA_SIG_get0_r(parsed), out.baseAddress, Int32(scalarByteCount)) == Int32(scalarByteCount)
                && BN_bn2binpad(ECDSA_SIG_get0_s(parsed), out.baseAddress! + scalarByteCount, Int32(scalarByteCount)) == Int32(scalarByteCount)
        }
        guard ok else { throw CryptoError(.invalidSignature, "ECDSA scalar wider than 32 bytes") }
        return raw
    }
}
