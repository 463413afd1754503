#if canImport(Glibc)
import Glibc
#endif
import TokenCrypto

/// The three segments of a compact JWS: `header.payload.signature`.
///
///     ┌──────────── signing input ────────────┐
///     BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature)
///
/// Splitting finds the two dots in place, without copying or allocating.
struct CompactJWS {
    let header: Range<Int>
    let payload: Range<Int>
    let signature: Range<Int>

    /// The bytes the signature covers, exactly as received.
    var signingInput: Range<Int> { header.lowerBound..<payload.upperBound }

    init(splitting bytes: UnsafeRawBufferPointer) throws(JWTError) {
        guard let first = Self.index(of: UInt8(ascii: "."), in: bytes, from: 0),
              let second = Self.index(of: UInt8(ascii: "."), in: bytes, from: first + 1),
              Self.index(of: UInt8(ascii: "."), in: bytes, from: second + 1) == nil
        else { throw JWTError(.malformed, "a compact JWS has exactly three segments") }
        header = 0..<first
        payload = (first + 1)..<second
        signature = (second + 1)..<bytes.count
        guard !header.isEmpty, !payload.isEmpty else { throw JWTError(.malformed, "empty header or payload segment") }
    }


    /// `memchr`: the dot search is the only full scan of the token before decoding.
    private static func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + start, Int32(byte), bytes.count - start) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }
}

extension UnsafeRawBufferPointer {
    /// Decodes the strict base64url segment at `range` into a temporary buffer and calls `body`.
    func withDecodedSegment<R>(
        _ range: Range<Int>, name: String,
        _ body: (UnsafeRawBufferPointer) throws(JWTError) -> R
    ) throws(JWTError) -> R {
        let encoded = UnsafeRawBufferPointer(rebasing: self[range])
        guard let length = Base64URL.decodedLength(encoded.count) else {
            throw JWTError(.malformed, "the \(name) is not base64url")
        }
        let result: Result<R, JWTError> = withUnsafeTemporaryAllocation(byteCount: Swift.max(length, 1), alignment: 1) { out in
            guard Base64URL.decode(encoded, into: out) != nil else {
                return .failure(JWTError(.malformed, "the \(name) is not canonical base64url"))
            }
            do throws(JWTError) {
                return .success(try body(UnsafeRawBufferPointer(rebasing: out[0..<length])))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
