/// Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).
///
/// Decoding refuses padding, `+` and `/`, whitespace, any byte outside the alphabet, a length
/// that leaves a single dangling character, and non-zero bits after the last whole byte, so
/// that every byte string has exactly one accepted encoding.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0xFF marks a byte outside the alphabet.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    public static func encodedLength(_ byteCount: Int) -> Int { (byteCount * 4 + 2) / 3 }

    public static func encode<Bytes: ContiguousBytes>(_ bytes: Bytes) -> String {
        bytes.withUnsafeBytes { input in
            String(unsafeUninitializedCapacity: encodedLength(input.count)) { out in
                encode(input, into: UnsafeMutableRawBufferPointer(out))
            }
        }
    }

    public static func encode(_ string: String) -> String { encode(Array(string.utf8)) }

    /// Writes the encoding of `input` into `out`, which must hold `encodedLength(input.count)`
    /// bytes; returns the number written.
    @discardableResult
    public static func encode(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(out.count >= encodedLength(input.count))
        var o = 0
        var i = 0
        alphabet.withUnsafeBufferPointer { a in
            while i + 3 <= input.count {
                let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                out[o] = a[Int(n >> 18 & 63)]; out[o + 1] = a[Int(n >> 12 & 63)]
                out[o + 2] = a[Int(n >> 6 & 63)]; out[o + 3] = a[Int(n & 63)]
                i += 3; o += 4
            }
            switch input.count - i {
            case 1:
                let n = UInt32(input[i]) << 16
                out[o] = a[Int(n >> 18 & 63)]; out[o + 1] = a[Int(n >> 12 & 63)]
                o += 2
            case 2:
                let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                out[o] = a[Int(n >> 18 & 63)]; out[o + 1] = a[Int(n >> 12 & 63)]; out[o + 2] = a[Int(n >> 6 & 63)]
                o += 3
            default: break
            }
        }
        return o
    }

    /// The decoded length of `count` encoded characters, or nil when no valid encoding has
    /// that length.
    public static func decodedLength(_ count: Int) -> Int? {
        count % 4 == 1 ? nil : count * 3 / 4
    }

    /// Decodes strictly; nil when `input` is not the canonical unpadded base64url of some bytes.
    public static func decode<Bytes: ContiguousBytes>(_ input: Bytes) -> [UInt8]? {
        input.withUnsafeBytes { raw in
            guard let length = decodedLength(raw.count) else { return nil }
            var failed = false
            let bytes = [UInt8](unsafeUninitializedCapacity: length) { out, written in
                if decode(raw, into: UnsafeMutableRawBufferPointer(out)) == nil { failed = true }
                written = failed ? 0 : length
            }
            return failed ? nil : bytes
        }
    }

    public static func decode(_ string: String) -> [UInt8]? {
        var string = string
        return string.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }

    /// Decodes `input` into `out` (which must hold `decodedLength(input.count)` bytes);
    /// returns the number of bytes written, or nil when the input is not canonical.
    public static func decode(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let count = input.count
        guard let length = decodedLength(count), out.count >= length else { return nil }
        guard length > 0 else { return 0 }
        let input = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        return decodeTable.withUnsafeBufferPointer { table -> Int? in
            let table = table.baseAddress!
            let whole = count / 4 * 4
            var i = 0
            var o = 0
            while i < whole {
                let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                let c = table[Int(input[i + 2])], d = table[Int(input[i + 3])]
                guard (a | b | c | d) & 0xC0 == 0 else { return nil }
                let n = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                out[o] = UInt8(truncatingIfNeeded: n >> 16)
                out[o + 1] = UInt8(truncatingIfNeeded: n >> 8)
                out[o + 2] = UInt8(truncatingIfNeeded: n)
                i += 4; o += 3
            }
            switch count - i {
            case 2:
                let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                guard (a | b) & 0xC0 == 0, b & 0x0F == 0 else { return nil }
                out[o] = a << 2 | b >> 4
                o += 1
            case 3:
                let a = table[Int(input[i])], b = table[Int(input[i + 1])], c = table[Int(input[i + 2])]
                guard (a | b | c) & 0xC0 == 0, c & 0x03 == 0 else { return nil }
                out[o] = a << 2 | b >> 4
                out[o + 1] = (b & 0x0F) << 4 | c >> 2
                o += 2
            default: break
            }
            return o
        }
    }
}
