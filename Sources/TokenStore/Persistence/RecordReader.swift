import Foundation
import NIOCore

/// Reads the records of a snapshot or journal file, checking every frame and checksum.
///
/// Stops at the first problem and reports it with its byte offset; the caller decides whether
/// it is a torn tail (cut off) or damage (stop the start, or `--repair`).
public struct RecordReader {
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let file: String
        public let offset: Int
        public let reason: String
        /// Whether everything from `offset` on looks like an interrupted last write: a frame
        /// running past the end of the file, a bad checksum on the very last record, or zeros.
        public let looksTorn: Bool
        public var description: String { "\(file): \(reason) at byte offset \(offset)" }
    }

    public let path: String
    public let bytes: [UInt8]

    /// Bytes already in memory (`path` only names them in problems).
    public init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = bytes
    }

    public init(path: String) throws {
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
            throw PersistenceError("\(path) is readable by other users (mode \(String(info.st_mode & 0o777, radix: 8))); run: chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PersistenceError("cannot read \(path)")
        }
        self.path = path
        self.bytes = Array(data)
    }

    public func header(_ kind: FileHeader.Kind) throws(Problem) -> FileHeader {
        do {
            return try FileHeader(parsing: bytes.prefix(FileHeader.length), kind: kind)
        } catch {
            let torn = bytes.count < FileHeader.length || bytes.allSatisfy { $0 == 0 }
            throw Problem(file: path, offset: 0, reason: error.description, looksTorn: torn)
        }
    }

    /// Calls `body` with each record after the header and its offset; returns the offset
    /// after the last good record. A snapshot's end record is checked and not passed on.
    @discardableResult
    public func forEachRecord(snapshot: Bool, _ body: (JournalRecord, Int) throws -> Void) throws -> Int {
        var offset = FileHeader.length
        // Records are laid out as the header's format version has them (`header` reports a
        // header that does not parse).
        let version = (try? header(snapshot ? .snapshot : .journal))?.version ?? FileHeader.currentVersion
        var count: UInt64 = 0
        while offset < bytes.count {
            let remaining = bytes.count - offset
            // Torn: nothing but zeros from the record on, or a record that reaches the end of the
            // file (or is followed by nothing but zeros: space a file system allocated in whole
            // blocks but never wrote, as a power cut can leave mid-record).
            func problem(_ reason: String, lastRecordEnds end: Int? = nil) -> Problem {
                let zeros = bytes[offset...].allSatisfy { $0 == 0 }
                let endsTheFile = end.map { $0 >= bytes.count || bytes[$0...].allSatisfy { $0 == 0 } } ?? false
                return Problem(file: path, offset: offset, reason: reason, looksTorn: zeros || endsTheFile)
            }
            guard remaining >= RecordCodec.headerLength else {
                throw problem("truncated record header", lastRecordEnds: bytes.count)
            }
            let length = Int(bytes[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            let typeByte = bytes[offset + 4]
            let crc = bytes[offset + 5..<offset + 9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard length <= RecordCodec.maximumPayload else { throw problem("record length \(length) is implausible") }
            let end = offset + RecordCodec.headerLength + length
            guard end <= bytes.count else { throw problem("record runs past the end of the file", lastRecordEnds: bytes.count) }
            let payload = bytes[(offset + RecordCodec.headerLength)..<end]
            let actual = payload.withUnsafeBytes { CRC32C.checksum($0, seed: CRC32C.checksum([typeByte])) }
            guard actual == crc else { throw problem("record checksum mismatch", lastRecordEnds: end) }
            guard let kind = JournalRecord.Kind(rawValue: typeByte) else { throw problem("unknown record type \(typeByte)") }
            if kind == .snapshotEnd {
                guard snapshot else { throw problem("snapshot end record in a journal") }
                var trailer = ByteBuffer(bytes: payload)
                guard payload.count == 12, let recorded = trailer.readInteger(as: UInt64.self), let fileCRC = trailer.readInteger(as: UInt32.self) else {
                    throw problem("malformed snapshot end record (\(payload.count) bytes, not 12)")
                }
                guard recorded == count else { throw problem("snapshot holds \(count) records, its end record says \(recorded)") }
                guard CRC32C.checksum(Array(bytes[0..<offset])) == fileCRC else { throw problem("snapshot file checksum mismatch") }
                guard end == bytes.count else { throw Problem(file: path, offset: end, reason: "data after the snapshot end record", looksTorn: false) }
                return end
            }
            let record: JournalRecord
            do {
                record = try RecordCodec.decode(kind: kind, payload: ByteBuffer(bytes: payload), version: version)
            } catch {
                throw problem("malformed \(kind.name) record: \(error)")
            }
            try body(record, offset)
            count += 1
            offset = end
        }
        if snapshot { throw Problem(file: path, offset: offset, reason: "the snapshot has no end record (truncated)", looksTorn: false) }
        return offset
    }
}
