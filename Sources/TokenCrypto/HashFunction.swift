internal import COpenSSL

/// The SHA-2 functions JOSE uses.
public enum HashFunction: Sendable, Hashable {
    case sha256, sha384, sha512

    /// Output size in bytes.
    public var byteCount: Int {
        switch self {
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    var evpMD: OpaquePointer {
        switch self {
        case .sha256: EVP_sha256()
        case .sha384: EVP_sha384()
        case .sha512: EVP_sha512()
        }
    }

    /// The digest of `data`.
    public func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer {
            EVP_Digest(data.baseAddress, data.count, $0.baseAddress, &length, evpMD, nil)
        }
        precondition(ok == 1 && Int(length) == byteCount, "EVP_Digest failed: \(OpenSSLErrorQueue.drain())")
        return out
    }

    /// The digest of `data`, written to the start of `out` (at least `byteCount` bytes): no
    /// array allocated.
    public func hash(_ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= byteCount)
        var length: UInt32 = 0
        let ok = EVP_Digest(data.baseAddress, data.count, out.baseAddress, &length, evpMD, nil)
        precondition(ok == 1 && Int(length) == byteCount, "EVP_Digest failed: \(OpenSSLErrorQueue.drain())")
    }

    public func hash<Bytes: ContiguousBytes>(_ data: Bytes) -> [UInt8] {
        data.withUnsafeBytes { hash($0) }
    }
}

/// Byte sequences that expose contiguous storage (`[UInt8]`, `ArraySlice<UInt8>`, `String.UTF8View` via Array).
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}
