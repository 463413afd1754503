import NIOCore

/// The fields of a message: a sequence of tag-length-value entries.
///
///     ┌────────┬──────────────────┬─────────────────┐
///     │ tag u8 │ length u32 (BE)  │ value (length)  │  ... repeated to the end of the body
///     └────────┴──────────────────┴─────────────────┘
///
/// Unknown tags are skipped by readers, so new optional fields never break old peers. A tag
/// that is not repeatable may appear once; a second copy is a `bad_request`.
public struct Fields: Sendable, Hashable {
    /// Every value lives in one buffer (the received body, or one built up by `append`);
    /// entries locate them. Parsing copies nothing and building allocates one buffer, not one
    /// per field: the response path runs for every request.
    private var storage = ByteBuffer()
    private var entries: [Entry] = []

    private struct Entry: Sendable, Hashable {
        var tag: FieldTag
        var offset: Int
        var length: Int
    }

    public init() {}

    /// Bytes of framing per field.
    public static let overhead = 5

    /// Parses every field in `buffer`, which must end exactly at the last field.
    public init(parsing buffer: ByteBuffer) throws(ProtocolError) {
        storage = buffer
        var cursor = buffer
        while cursor.readableBytes > 0 {
            guard let tag = cursor.readInteger(as: UInt8.self), let length = cursor.readInteger(as: UInt32.self) else {
                throw .badRequest("truncated field header")
            }
            guard Int(length) <= cursor.readableBytes else {
                throw .badRequest("field \(tag) claims \(length) bytes but only \(cursor.readableBytes) remain")
            }
            entries.append(Entry(tag: FieldTag(tag), offset: cursor.readerIndex, length: Int(length)))
            cursor.moveReaderIndex(forwardBy: Int(length))
        }
    }

    private func slice(_ entry: Entry) -> ByteBuffer {
        storage.getSlice(at: entry.offset, length: entry.length)!
    }

    /// The tags present, in order (repeats included).
    public var tags: [FieldTag] { entries.map(\.tag) }

    public static func == (a: Fields, b: Fields) -> Bool {
        a.entries.count == b.entries.count
            && zip(a.entries, b.entries).allSatisfy { $0.tag == $1.tag && a.slice($0) == b.slice($1) }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.tag)
            hasher.combine(slice(entry))
        }
    }

    // MARK: Reading

    /// The value of a non-repeatable field, or nil when absent.
    public func value(_ tag: FieldTag) throws(ProtocolError) -> ByteBuffer? {
        var found: Entry?
        for entry in entries where entry.tag == tag {
            guard found == nil else { throw .badRequest("field \(tag.rawValue) appears more than once") }
            found = entry
        }
        return found.map(slice)
    }

    public func contains(_ tag: FieldTag) -> Bool { entries.contains { $0.tag == tag } }

    /// A UTF-8 string field; invalid UTF-8 or a NUL character is a `bad_request`.
    public func string(_ tag: FieldTag, maximumLength: Int = .max) throws(ProtocolError) -> String? {
        guard let value = try value(tag) else { return nil }
        guard value.readableBytes <= maximumLength else {
            throw .badRequest("field \(tag.rawValue) is longer than \(maximumLength) bytes")
        }
        let bytes = value.readableBytesView
        guard !bytes.contains(0), let string = String(validating: bytes, as: UTF8.self) else {
            throw .badRequest("field \(tag.rawValue) is not valid UTF-8 text")
        }
        return string
    }

    public func requiredString(_ tag: FieldTag, _ name: String, maximumLength: Int = .max) throws(ProtocolError) -> String {
        guard let string = try string(tag, maximumLength: maximumLength) else { throw .badRequest("missing field \(name) (\(tag.rawValue))") }
        return string
    }

    public func bytes(_ tag: FieldTag, maximumLength: Int = .max) throws(ProtocolError) -> [UInt8]? {
        guard let value = try value(tag) else { return nil }
        guard value.readableBytes <= maximumLength else {
            throw .badRequest("field \(tag.rawValue) is longer than \(maximumLength) bytes")
        }
        return Array(value.readableBytesView)
    }

    /// A u64 field: exactly 8 bytes, big-endian.
    public func uint64(_ tag: FieldTag) throws(ProtocolError) -> UInt64? {
        guard var value = try value(tag) else { return nil }
        guard value.readableBytes == 8, let number = value.readInteger(as: UInt64.self) else {
            throw .badRequest("field \(tag.rawValue) must be a u64 (8 bytes)")
        }
        return number
    }

    /// A u8 field: exactly 1 byte.
    public func uint8(_ tag: FieldTag) throws(ProtocolError) -> UInt8? {
        guard var value = try value(tag) else { return nil }
        guard value.readableBytes == 1, let number = value.readInteger(as: UInt8.self) else {
            throw .badRequest("field \(tag.rawValue) must be a u8 (1 byte)")
        }
        return number
    }

    /// A bool field: one byte, 0 or 1.
    public func bool(_ tag: FieldTag) throws(ProtocolError) -> Bool? {
        guard let number = try uint8(tag) else { return nil }
        guard number <= 1 else { throw .badRequest("field \(tag.rawValue) must be a bool (0 or 1)") }
        return number == 1
    }

    /// Every record of a repeatable record field, in order.
    public func records(_ tag: FieldTag) throws(ProtocolError) -> [Fields] {
        var records: [Fields] = []
        for entry in entries where entry.tag == tag {
            records.append(try Fields(parsing: slice(entry)))
        }
        return records
    }

    /// Every value of a repeatable field, in order.
    public func values(_ tag: FieldTag) -> [ByteBuffer] {
        entries.filter { $0.tag == tag }.map(slice)
    }

    // MARK: Writing

    /// Appends a value written by `write` into the shared storage.
    private mutating func append(_ tag: FieldTag, _ write: (inout ByteBuffer) -> Int) {
        let offset = storage.writerIndex
        let length = write(&storage)
        entries.append(Entry(tag: tag, offset: offset, length: length))
    }

    public mutating func append(_ tag: FieldTag, buffer: ByteBuffer) {
        var buffer = buffer
        append(tag) { $0.writeBuffer(&buffer) }
    }

    public mutating func append(_ tag: FieldTag, string: String) {
        append(tag) { $0.writeString(string) }
    }

    public mutating func append(_ tag: FieldTag, bytes: some Collection<UInt8>) {
        append(tag) { $0.writeBytes(bytes) }
    }

    public mutating func append(_ tag: FieldTag, uint64: UInt64) {
        append(tag) { $0.writeInteger(uint64) }
    }

    public mutating func append(_ tag: FieldTag, uint8: UInt8) {
        append(tag) { $0.writeInteger(uint8) }
    }

    public mutating func append(_ tag: FieldTag, bool: Bool) {
        append(tag, uint8: bool ? 1 : 0)
    }

    public mutating func append(_ tag: FieldTag, record: Fields) {
        var buffer = ByteBuffer()
        record.write(to: &buffer)
        append(tag, buffer: buffer)
    }

    /// The encoded size in bytes.
    public var encodedLength: Int { entries.reduce(0) { $0 + Self.overhead + $1.length } }

    public func write(to buffer: inout ByteBuffer) {
        for entry in entries {
            buffer.writeInteger(entry.tag.rawValue)
            buffer.writeInteger(UInt32(entry.length))
            storage.withUnsafeReadableBytes { bytes in
                let start = entry.offset - storage.readerIndex
                _ = buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<start + entry.length]))
            }
        }
    }
}
