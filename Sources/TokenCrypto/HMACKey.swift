internal import COpenSSL

/// A secret key for HMAC-SHA-256/384/512 (RFC 2104).
///
/// The inner and outer hash states (the key XOR ipad/opad, hashed once) are computed when the
/// key is made and kept as plain values; each computation copies them, so an `HMACKey` is
/// immutable, shareable between threads, and allocates nothing per message.
public final class HMACKey: @unchecked Sendable {
    public let hash: HashFunction
    private let state: State

    private enum State {
        case sha256(inner: SHA256_CTX, outer: SHA256_CTX)
        /// SHA-384 and SHA-512 share SHA-512's context.
        case sha512(inner: SHA512_CTX, outer: SHA512_CTX)
    }

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
        let blockSize = hash == .sha256 ? 64 : 128
        // Keys longer than a block are hashed first (RFC 2104 §2).
        var block = secret.withUnsafeBytes { $0.count > blockSize ? hash.hash($0) : Array($0) }
        defer { for index in block.indices { block[index] = 0 } }
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        var innerPad = block.map { $0 ^ 0x36 }
        var outerPad = block.map { $0 ^ 0x5C }
        defer {
            for index in innerPad.indices { innerPad[index] = 0 }
            for index in outerPad.indices { outerPad[index] = 0 }
        }
        switch hash {
        case .sha256:
            var inner = SHA256_CTX(), outer = SHA256_CTX()
            guard SHA256_Init(&inner) == 1, SHA256_Update(&inner, innerPad, blockSize) == 1,
                  SHA256_Init(&outer) == 1, SHA256_Update(&outer, outerPad, blockSize) == 1
            else { throw CryptoError.openSSL("SHA256_Init") }
            state = .sha256(inner: inner, outer: outer)
        case .sha384, .sha512:
            var inner = SHA512_CTX(), outer = SHA512_CTX()
            let initialize = hash == .sha384 ? SHA384_Init : SHA512_Init
            guard initialize(&inner) == 1, SHA512_Update(&inner, innerPad, blockSize) == 1,
                  initialize(&outer) == 1, SHA512_Update(&outer, outerPad, blockSize) == 1
            else { throw CryptoError.openSSL("SHA512_Init") }
            state = .sha512(inner: inner, outer: outer)
        }
    }

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
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { computed in
            let code = UnsafeMutableRawBufferPointer(rebasing: computed[0..<hash.byteCount])
            write(into: code, message: message)
            return ConstantTime.equals(UnsafeRawBufferPointer(code), tag)
        }
    }

    /// HMAC = H(outer || H(inner || message)), from the precomputed states.
    private func write(into out: UnsafeMutableRawBufferPointer, message: UnsafeRawBufferPointer) {
        let output = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        switch state {
        case .sha256(var inner, var outer):
            SHA256_Update(&inner, message.baseAddress, message.count)
            SHA256_Final(output, &inner)
            SHA256_Update(&outer, output, 32)
            SHA256_Final(output, &outer)
        case .sha512(var inner, var outer):
            let length = hash.byteCount
            let final = hash == .sha384 ? SHA384_Final : SHA512_Final
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { digest in
                SHA512_Update(&inner, message.baseAddress, message.count)
                _ = final(digest.baseAddress, &inner)
                SHA512_Update(&outer, digest.baseAddress, length)
                _ = final(output, &outer)
            }
        }
    }
}
