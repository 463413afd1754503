/// Redis Cluster's key-to-slot mapping: CRC16 (XMODEM) of the key, or of its hash tag, mod 16384.
public enum HashSlot {
    public static let count = 16384

    public static func of<Bytes: Collection<UInt8>>(_ key: Bytes) -> Int where Bytes.Index == Int {
        Int(crc16(tag(of: key)) % UInt16(count))
    }

    /// The part of the key that is hashed: the bytes between the first `{` and the next `}`
    /// when that is not empty, else the whole key.
    static func tag<Bytes: Collection<UInt8>>(of key: Bytes) -> Bytes.SubSequence where Bytes.Index == Int {
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
           let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            return key[(open + 1)..<close]
        }
        return key[...]
    }

    static func crc16<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}
