import NIOCore

/// Encodes and decodes journal and snapshot records; the layout is in docs/state-format.md.
///
///     ┌──────────────────┬─────────┬──────────────────────────────┬─────────┐
///     │ length u32 (BE)  │ type u8 │ crc32c u32 (type + payload)  │ payload │
///     └──────────────────┴─────────┴──────────────────────────────┴─────────┘
public enum RecordCodec {
    /// Bytes before the payload.
    public static let headerLength = 9
    /// No record is larger; a length above it is damage, not a record.
    public static let maximumPayload = 1 << 20

    /// Appends `record` framed and checksummed.
    public static func append(_ record: JournalRecord, to buffer: inout ByteBuffer) {
        var payload = ByteBuffer()
        writePayload(record, to: &payload)
        appendFrame(kind: record.kind, payload: payload, to: &buffer)
    }

    static func appendFrame(kind: JournalRecord.Kind, payload: ByteBuffer, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(payload.readableBytes))
        buffer.writeInteger(kind.rawValue)
        var crc = CRC32C.checksum([kind.rawValue])
        payload.withUnsafeReadableBytes { crc = CRC32C.checksum($0, seed: crc) }
        buffer.writeInteger(crc)
        var payload = payload
        buffer.writeBuffer(&payload)
    }

    // MARK: Payloads

    private static func writePayload(_ record: JournalRecord, to buffer: inout ByteBuffer) {
        switch record {
        case .putLogin(let key, let login, let dedup):
            write(key, to: &buffer)
            write(login, to: &buffer)
            buffer.writeInteger(UInt8(dedup == nil ? 0 : 1))
            if let dedup { write(dedup, to: &buffer) }
        case .setExpiry(let key, let expiresAt):
            write(key, to: &buffer)
            buffer.writeInteger(expiresAt)
        case .rotate(let key, let refreshID, let expiresAt, let generation, let dedup):
            write(key, to: &buffer)
            write(refreshID, to: &buffer)
            buffer.writeInteger(expiresAt)
            buffer.writeInteger(generation)
            write(dedup, to: &buffer)
        case .markUsed(let key, let generation):
            write(key, to: &buffer)
            buffer.writeInteger(generation)
        case .revoke(let key):
            write(key, to: &buffer)
        case .putDedup(let dedup):
            write(dedup, to: &buffer)
        }
    }

    private static func write(_ key: SessionKey, to buffer: inout ByteBuffer) {
        buffer.writeInteger(key.high)
        buffer.writeInteger(key.low)
    }

    private static func write(_ digest: Digest128?, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(digest == nil ? 0 : 1))
        if let digest {
            buffer.writeInteger(digest.high)
            buffer.writeInteger(digest.low)
        }
    }

    private static func write(_ login: LoginRecord, to buffer: inout ByteBuffer) {
        buffer.writeInteger(login.kind.rawValue)
        buffer.writeInteger(UInt8(login.revoked ? 1 : 0))
        buffer.writeInteger(login.createdAt)
        buffer.writeInteger(login.ttl)
        buffer.writeInteger(login.expiresAt)
        buffer.writeInteger(login.maxExpiresAt)
        buffer.writeInteger(login.refreshTTL)
        write(login.fingerprint, to: &buffer)
        buffer.writeInteger(UInt8(login.currentRefreshID == nil ? 0 : 1))
        if let id = login.currentRefreshID { write(id, to: &buffer) }
        buffer.writeInteger(login.generation)
        buffer.writeInteger(UInt8(login.generationUsed ? 1 : 0))
        let subject = Array(login.subject.utf8)
        buffer.writeInteger(UInt16(subject.count))
        buffer.writeBytes(subject)
    }

    private static func write(_ dedup: JournalRecord.DedupPut, to buffer: inout ByteBuffer) {
        buffer.writeInteger(dedup.digest.high)
        buffer.writeInteger(dedup.digest.low)
        buffer.writeInteger(dedup.entry.windowEndsAt)
        buffer.writeInteger(dedup.entry.expiresAt)
        buffer.writeInteger(dedup.entry.generation)
        write(dedup.entry.fingerprint, to: &buffer)
        write(dedup.entry.requestDigest, to: &buffer)
        buffer.writeInteger(UInt32(dedup.entry.sealed.count))
        buffer.writeBytes(dedup.entry.sealed)
    }

    // MARK: Decoding

    /// Decodes a record's payload, laid out as format `version` has it (the file header's);
    /// throws `RecordError` when it does not parse exactly.
    ///
    /// Version 1 had no generations and kept dedup times in seconds: its logins read as
    /// generation 0, unused; its dedup entries as windows ending when they expire.
    public static func decode(kind: JournalRecord.Kind, payload: ByteBuffer, version: UInt16 = FileHeader.currentVersion) throws(RecordError) -> JournalRecord {
        var buffer = payload
        let layout = Layout(version: version)
        let record: JournalRecord
        switch kind {
        case .putLogin:
            let key = try readKey(&buffer)
            let login = try readLogin(&buffer, layout)
            let hasDedup = try readByte(&buffer)
            guard hasDedup <= 1 else { throw RecordError("bad flag") }
            record = .putLogin(key, login, dedup: hasDedup == 1 ? try readDedup(&buffer, layout) : nil)
        case .setExpiry:
            record = .setExpiry(try readKey(&buffer), try readInt(&buffer))
        case .rotate:
            let key = try readKey(&buffer)
            let refreshID = try readKey(&buffer)
            let expiresAt = try readInt(&buffer)
            let generation = layout.hasGenerations ? try readGeneration(&buffer) : 0
            record = .rotate(key, refreshID: refreshID, expiresAt: expiresAt, generation: generation, dedup: try readDedup(&buffer, layout))
        case .revoke:
            record = .revoke(try readKey(&buffer))
        case .putDedup:
            record = .putDedup(try readDedup(&buffer, layout))
        case .markUsed:
            guard layout.hasGenerations else { throw RecordError("mark_used record in a version \(version) file") }
            record = .markUsed(try readKey(&buffer), generation: try readGeneration(&buffer))
        case .snapshotEnd:
            throw RecordError("snapshot end record where a state record belongs")
        }
        guard buffer.readableBytes == 0 else { throw RecordError("\(buffer.readableBytes) bytes after the \(kind.name) payload") }
        return record
    }

    /// What a format version's payloads hold.
    private struct Layout {
        /// Version 2: logins carry generation and used flag, rotations the generation, dedup
        /// entries window end, expiry (milliseconds) and generation.
        let hasGenerations: Bool
        init(version: UInt16) { hasGenerations = version >= 2 }
    }

    private static func readByte(_ buffer: inout ByteBuffer) throws(RecordError) -> UInt8 {
        guard let byte = buffer.readInteger(as: UInt8.self) else { throw RecordError("truncated payload") }
        return byte
    }

    private static func readInt(_ buffer: inout ByteBuffer) throws(RecordError) -> Int64 {
        guard let value = buffer.readInteger(as: Int64.self) else { throw RecordError("truncated payload") }
        return value
    }

    /// A generation: 0 to 2³²−1, what the login table holds; anything else is damage.
    private static func readGeneration(_ buffer: inout ByteBuffer) throws(RecordError) -> Int64 {
        let value = try readInt(&buffer)
        guard value >= 0, value <= Int64(UInt32.max) else { throw RecordError("generation \(value) out of range") }
        return value
    }

    private static func readKey(_ buffer: inout ByteBuffer) throws(RecordError) -> SessionKey {
        guard let high = buffer.readInteger(as: UInt64.self), let low = buffer.readInteger(as: UInt64.self) else {
            throw RecordError("truncated payload")
        }
        return SessionKey(high: high, low: low)
    }

    private static func readDigest(_ buffer: inout ByteBuffer) throws(RecordError) -> Digest128? {
        switch try readByte(&buffer) {
        case 0: return nil
        case 1:
            let key = try readKey(&buffer)
            return Digest128(high: key.high, low: key.low)
        default: throw RecordError("bad flag")
        }
    }

    private static func readLogin(_ buffer: inout ByteBuffer, _ layout: Layout) throws(RecordError) -> LoginRecord {
        guard let kind = LoginKind(rawValue: try readByte(&buffer)) else { throw RecordError("unknown login kind") }
        let revoked = try readByte(&buffer)
        guard revoked <= 1 else { throw RecordError("bad flag") }
        let createdAt = try readInt(&buffer), ttl = try readInt(&buffer), expiresAt = try readInt(&buffer)
        let maxExpiresAt = try readInt(&buffer), refreshTTL = try readInt(&buffer)
        let fingerprint = try readDigest(&buffer)
        let hasRefresh = try readByte(&buffer)
        guard hasRefresh <= 1 else { throw RecordError("bad flag") }
        let refreshID = hasRefresh == 1 ? try readKey(&buffer) : nil
        var generation: Int64 = 0
        var used: UInt8 = 0
        if layout.hasGenerations {
            generation = try readGeneration(&buffer)
            used = try readByte(&buffer)
            guard used <= 1 else { throw RecordError("bad flag") }
        }
        guard let length = buffer.readInteger(as: UInt16.self), let bytes = buffer.readBytes(length: Int(length)),
              let subject = String(validating: bytes, as: UTF8.self)
        else { throw RecordError("bad subject") }
        return LoginRecord(kind: kind, subject: subject, fingerprint: fingerprint, createdAt: createdAt, ttl: ttl, expiresAt: expiresAt,
                           maxExpiresAt: maxExpiresAt, refreshTTL: refreshTTL, currentRefreshID: refreshID, generation: generation,
                           generationUsed: used == 1, revoked: revoked == 1)
    }

    private static func readDedup(_ buffer: inout ByteBuffer, _ layout: Layout) throws(RecordError) -> JournalRecord.DedupPut {
        let key = try readKey(&buffer)
        let windowEndsAt: Int64, expiresAt: Int64, generation: Int64
        if layout.hasGenerations {
            windowEndsAt = try readInt(&buffer)
            expiresAt = try readInt(&buffer)
            generation = try readGeneration(&buffer)
        } else {
            // Seconds then; hostile values saturate rather than overflow.
            let seconds = try readInt(&buffer)
            windowEndsAt = seconds.multipliedReportingOverflow(by: 1000).overflow ? (seconds < 0 ? .min : .max) : seconds * 1000
            expiresAt = windowEndsAt
            generation = 0
        }
        let fingerprint = try readDigest(&buffer)
        let requestDigest = try readDigest(&buffer)
        guard let length = buffer.readInteger(as: UInt32.self), length <= maximumPayload, let sealed = buffer.readBytes(length: Int(length)) else {
            throw RecordError("bad sealed tokens")
        }
        return JournalRecord.DedupPut(digest: Digest128(high: key.high, low: key.low),
                                      entry: DedupEntry(sealed: sealed, fingerprint: fingerprint, requestDigest: requestDigest,
                                                        windowEndsAt: windowEndsAt, expiresAt: expiresAt, generation: generation))
    }
}

/// A record payload that does not parse.
public struct RecordError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
