import Foundation
import NIOCore

/// The snapshot: a header, one record per login and per live dedup entry, and an end record
/// holding the record count and the CRC-32C of every byte before it.
///
/// Written to `snapshot.tks.tmp`, fsynced, renamed over `snapshot.tks`, and the directory
/// fsynced: a crash leaves the old snapshot or the new one, never half of one.
public enum SnapshotFile {
    public static let name = "snapshot.tks"
    public static let temporaryName = "snapshot.tks.tmp"

    public struct Written: Sendable {
        public var records: Int
        public var bytes: Int
    }

    /// Writes `state` as the snapshot covering every journal before `sequence`.
    static func write(_ state: EmbeddedState, directory: String, sequence: UInt64, now: Int64) throws -> Written {
        let temporary = directory + "/" + temporaryName
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PersistenceError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            // A failed write leaves no half snapshot behind to fill the disk further.
            if !renamed { unlink(temporary) }
        }
        var crc: UInt32 = 0
        var total = 0
        var buffer = ByteBuffer()
        buffer.reserveCapacity(1 << 20)
        func flush() throws {
            try buffer.withUnsafeReadableBytes { bytes in
                crc = CRC32C.checksum(bytes, seed: crc)
                var offset = 0
                while offset < bytes.count {
                    let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw PersistenceError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
                    offset += n
                }
            }
            total += buffer.readableBytes
            buffer.clear()
        }
        buffer.writeBytes(FileHeader(kind: .snapshot, createdAt: now, sequence: sequence).bytes)
        var count: UInt64 = 0
        for (key, record) in state.logins {
            RecordCodec.append(.putLogin(key, record, dedup: nil), to: &buffer)
            count += 1
            if buffer.readableBytes > 1 << 20 { try flush() }
        }
        for (digest, entry) in state.dedup where entry.expiresAt > now * 1000 {
            RecordCodec.append(.putDedup(JournalRecord.DedupPut(digest: digest, entry: entry)), to: &buffer)
            count += 1
        }
        try flush()
        var end = ByteBuffer()
        end.writeInteger(count)
        end.writeInteger(crc)
        RecordCodec.appendFrame(kind: .snapshotEnd, payload: end, to: &buffer)
        try flush()
        guard fsync(fd) == 0 else { throw PersistenceError("cannot sync \(temporary): \(String(cString: strerror(errno)))") }
        close(fd)
        closed = true
        guard rename(temporary, directory + "/" + name) == 0 else {
            throw PersistenceError("cannot rename \(temporary): \(String(cString: strerror(errno)))")
        }
        renamed = true
        syncDirectory(directory)
        return Written(records: Int(count), bytes: total)
    }
}
