import NIOCore

/// The 32-byte header that starts every snapshot and journal file.
///
///     ┌──────────────┬─────────────┬───────────┬─────────────────┬───────────────┬──────────────┐
///     │ magic (8)    │ version u16 │ flags u16 │ created_at i64  │ sequence u64  │ crc32c u32   │
///     └──────────────┴─────────────┴───────────┴─────────────────┴───────────────┴──────────────┘
///
/// A reader refuses a version above its own: a new version is made only for changes old
/// readers cannot follow.
public struct FileHeader: Sendable, Hashable {
    public enum Kind: Sendable {
        case snapshot, journal

        var magic: [UInt8] { Array((self == .snapshot ? "TOKENDSN" : "TOKENDJL").utf8) }
        public var name: String { self == .snapshot ? "snapshot" : "journal" }
    }

    public static let length = 32
    /// 2: generations, and dedup times in milliseconds (docs/state-format.md). Version 1
    /// files are still read.
    public static let currentVersion: UInt16 = 2

    public var kind: Kind
    public var version: UInt16 = currentVersion
    public var createdAt: Int64
    /// Journal: its sequence number. Snapshot: the first journal sequence it does NOT cover.
    public var sequence: UInt64

    public init(kind: Kind, createdAt: Int64, sequence: UInt64) {
        self.kind = kind
        self.createdAt = createdAt
        self.sequence = sequence
    }

    public var bytes: [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeBytes(kind.magic)
        buffer.writeInteger(version)
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(createdAt)
        buffer.writeInteger(sequence)
        buffer.writeInteger(buffer.withUnsafeReadableBytes { CRC32C.checksum($0) })
        return Array(buffer.readableBytesView)
    }

    /// Parses and checks a header of `kind`; the error says what is wrong.
    public init(parsing bytes: some Collection<UInt8>, kind: Kind) throws(RecordError) {
        let bytes = Array(bytes)
        guard bytes.count >= Self.length else { throw RecordError("the \(kind.name) header is truncated (\(bytes.count) of 32 bytes)") }
        guard Array(bytes[0..<8]) == kind.magic else { throw RecordError("not a tokend \(kind.name) file (bad magic)") }
        var buffer = ByteBuffer(bytes: bytes[8..<32])
        let version = buffer.readInteger(as: UInt16.self)!
        let flags = buffer.readInteger(as: UInt16.self)!
        let createdAt = buffer.readInteger(as: Int64.self)!
        let sequence = buffer.readInteger(as: UInt64.self)!
        let crc = buffer.readInteger(as: UInt32.self)!
        guard CRC32C.checksum(Array(bytes[0..<28])) == crc else {
            throw RecordError("the \(kind.name) header checksum does not match")
        }
        guard version >= 1 else { throw RecordError("\(kind.name) format version 0 does not exist (damage?)") }
        guard version <= Self.currentVersion else {
            throw RecordError("\(kind.name) format version \(version) is newer than this tokend (\(Self.currentVersion)); upgrade tokend")
        }
        guard flags == 0 else { throw RecordError("unknown \(kind.name) header flags \(flags)") }
        self.kind = kind
        self.version = version
        self.createdAt = createdAt
        self.sequence = sequence
    }
}
