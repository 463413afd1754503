import Testing
import TokenStore

@Suite struct CRC32CTests {
    @Test func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// RFC 3720 Appendix B.4.
    @Test func rfc3720Vectors() {
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func empty() {
        #expect(CRC32C.checksum([]) == 0)
        #expect(CRC32C.checksum(UnsafeRawBufferPointer(start: nil, count: 0)) == 0)
        // An empty continuation leaves the checksum unchanged.
        let crc = CRC32C.checksum(Array("abc".utf8))
        #expect([UInt8]().withUnsafeBytes { CRC32C.checksum($0, seed: crc) } == crc)
    }

    /// The 8-byte path and the byte-at-a-time tail agree with a bitwise reference at every
    /// length and alignment.
    @Test func matchesBitwiseReference() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<300).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        for start in 0..<9 {
            for end in start...bytes.count {
                let slice = Array(bytes[start..<end])
                #expect(CRC32C.checksum(slice) == Self.bitwise(slice), "bytes \(start)..<\(end)")
            }
        }
    }

    @Test func incrementalEqualsWhole() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let count = Int.random(in: 0...200, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            let whole = CRC32C.checksum(bytes)
            // Split into a random number of random pieces.
            var cuts = (0..<Int.random(in: 1...5, using: &generator)).map { _ in Int.random(in: 0...count, using: &generator) }
            cuts = [0] + cuts.sorted() + [count]
            var crc: UInt32 = 0
            for (from, to) in zip(cuts, cuts.dropFirst()) {
                crc = bytes[from..<to].withUnsafeBytes { CRC32C.checksum($0, seed: crc) }
            }
            #expect(crc == whole, "\(count) bytes cut at \(cuts)")
        }
    }

    static func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
