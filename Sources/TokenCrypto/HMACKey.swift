internal import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// A secret key for HMAC-SHA-256/384/512.
///
/// The key is loaded into a keyed OpenSSL MAC context once; each computation duplicates that
/// context, so an `HMACKey` is immutable and safe to share between threads.
public final class HMACKey: @unchecked Sendable {
    public let hash: HashFunction
    /// Keyed `EVP_MAC_CTX`; never updated, only duplicated.
    private let template: OpaquePointer

    /// A key for JOSE use. Secrets shorter than the hash output are refused (RFC 7518 §3.2).
    public convenience init<Secret: ContiguousBytes>(secret: Secret, hash: HashFunction) throws {
        let count = secret.withUnsafeBytes { $0.count }
        guard count >= hash.byteCount else {
            throw CryptoError(.invalidKey, "an HMAC-SHA-\(hash.byteCount * 8) key needs at least \(hash.byteCount) bytes, this one has \(count)")
        }
        try self.init(unrestrictedSecret: secret, hash: hash)
    }

    /// A key of any length, for test vectors that exercise short keys. Not for tokens.
    public init<Secret: ContiguousBytes>(unrestrictedSecret secret: Secret, hash: HashFunction) throws {
        self.hash = hash
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { throw CryptoError.openSSL("EVP_MAC_fetch(HMAC)") }
        defer { EVP_MAC_free(mac) }
        guard let context = EVP_MAC_CTX_new(mac) else { throw CryptoError.openSSL("EVP_MAC_CTX_new") }
        var digestName = Array(hash.openSSLName.utf8CString)
        let ok = digestName.withUnsafeMutableBufferPointer { name in
            var params = [
                OSSL_PARAM_construct_utf8_string(digestParameterName, name.baseAddress, 0),
                OSSL_PARAM_construct_end(),
            ]
            return secret.withUnsafeBytes { key in
                // OpenSSL wants a non-null pointer even for an empty key.
                var empty: UInt8 = 0
                let pointer = key.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? withUnsafeMutablePointer(to: &empty) { UnsafePointer($0) }
                return EVP_MAC_init(context, pointer, key.count, &params)
            }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(context)
            throw CryptoError.openSSL("EVP_MAC_init")
        }
        self.template = context
    }

    deinit { EVP_MAC_CTX_free(template) }

    /// The full-length authentication tag of `message`.
    public func authenticationCode(for message: UnsafeRawBufferPointer) -> [UInt8] {
        var tag = [UInt8](repeating: 0, count: hash.byteCount)
        tag.withUnsafeMutableBytes { write(into: $0, message: message) }
        return tag
    }

    public func authenticationCode<Message: ContiguousBytes>(for message: Message) -> [UInt8] {
        message.withUnsafeBytes { authenticationCode(for: $0) }
    }

    /// Whether `tag` is the full-length tag of `message`, compared in constant time.
    public func isValidAuthenticationCode(_ tag: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == hash.byteCount else { return false }
        return withUnsafeTemporaryAllocation(byteCount: hash.byteCount, alignment: 8) { computed in
            write(into: computed, message: message)
            return ConstantTime.equals(UnsafeRawBufferPointer(computed), tag)
        }
    }

    private func write(into out: UnsafeMutableRawBufferPointer, message: UnsafeRawBufferPointer) {
        guard let context = EVP_MAC_CTX_dup(template) else {
            preconditionFailure("EVP_MAC_CTX_dup failed: \(OpenSSLErrorQueue.drain())")
        }
        defer { EVP_MAC_CTX_free(context) }
        var length = 0
        let ok = EVP_MAC_update(context, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1
            && EVP_MAC_final(context, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, out.count) == 1
        // A keyed context failing to hash means memory exhaustion or a broken library.
        precondition(ok && length == out.count, "HMAC computation failed: \(OpenSSLErrorQueue.drain())")
    }
}

/// OSSL_PARAM keeps the name pointer, so it must be stable storage, not a temporary.
private nonisolated(unsafe) let digestParameterName: UnsafeMutablePointer<CChar> = strdup("digest")!
