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
    /// The encoded fields themselves, tag-length-value after tag-length-value: the received
    /// body, or one built up by `append`. Reading walks it (a message has a handful of fields);
    /// writing copies it whole. Nothing else is allocated, in parsing or in building: the
    /// request path runs this for every request.
    private var storage = ByteBuffer()

    public init() {}

    /// Empty, with room for `capacity` encoded bytes: a message built in one allocation.
    public init(capacity: Int) {
        storage = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Bytes of framing per field.
    public static let overhead = 5

    /// Parses every field in `buffer`, which must end exactly at the last field.
    public init(parsing buffer: ByteBuffer) throws(ProtocolError) {
        var cursor = buffer
        while cursor.readableBytes > 0 {
            guard let tag = cursor.readInteger(as: UInt8.self), let length = cursor.readInteger(as: UInt32.self) else {
                throw .badRequest("truncated field header")
            }
            guard Int(length) <= cursor.readableBytes else {
                throw .badRequest("field \(tag) claims \(length) bytes but only \(cursor.readableBytes) remain")
            }
            cursor.moveReaderIndex(forwardBy: Int(length))
        }
        storage = buffer
    }

    /// Calls `body` with each field's tag and the offset and length of its value in `storage`,
    /// in order, until it returns false.
    private func forEachEntry(_ body: (FieldTag, Int, Int) throws(ProtocolError) -> Bool) throws(ProtocolError) {
        var offset = storage.readerIndex
        let end = storage.writerIndex
        while offset < end {
            // Checked when parsed, and written whole by `append`.
            let tag = storage.getInteger(at: offset, as: UInt8.self)!
            let length = Int(storage.getInteger(at: offset + 1, as: UInt32.self)!)
            guard try body(FieldTag(tag), offset + Self.overhead, length) else { return }
            offset += Self.overhead + length
        }
    }

    /// `forEachEntry` for bodies that cannot fail.
    private func eachEntry(_ body: (FieldTag, Int, Int) -> Bool) {
        try! forEachEntry { tag, offset, length throws(ProtocolError) in body(tag, offset, length) }
    }

    private func slice(_ offset: Int, _ length: Int) -> ByteBuffer {
        storage.getSlice(at: offset, length: length)!
    }

    /// The tags present, in order (repeats included).
    public var tags: [FieldTag] {
        var tags: [FieldTag] = []
        eachEntry { tag, _, _ in
            tags.append(tag)
            return true
        }
        return tags
    }

    public static func == (a: Fields, b: Fields) -> Bool {
        a.storage == b.storage
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage)
    }

    // MARK: Reading

    /// The value of a non-repeatable field, or nil when absent.
    public func value(_ tag: FieldTag) throws(ProtocolError) -> ByteBuffer? {
        var found: (offset: Int, length: Int)?
        try forEachEntry { entryTag, offset, length throws(ProtocolError) in
            guard entryTag == tag else { return true }
            guard found == nil else { throw .badRequest("field \(tag.rawValue) appears more than once") }
            found = (offset, length)
            return true
        }
        return found.map { slice($0.offset, $0.length) }
    }

    public func contains(_ tag: FieldTag) -> Bool {
        var present = false
        eachEntry { entryTag, _, _ in
            present = entryTag == tag
            return !present
        }
        return present
    }

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
        for value in values(tag) {
            records.append(try Fields(parsing: value))
        }
        return records
    }

    /// Every value of a repeatable field, in order.
    public func values(_ tag: FieldTag) -> [ByteBuffer] {
        var values: [ByteBuffer] = []
        eachEntry { entryTag, offset, length in
            if entryTag == tag { values.append(slice(offset, length)) }
            return true
        }
        return values
    }

    // MARK: Writing

    /// Appends a field's header: its tag and the length of the value that follows.
    private mutating func header(_ tag: FieldTag, _ length: Int) {
        storage.writeMultipleIntegers(tag.rawValue, UInt32(length))
    }

    public mutating func append(_ tag: FieldTag, buffer: ByteBuffer) {
        header(tag, buffer.readableBytes)
        storage.writeImmutableBuffer(buffer)
    }

    public mutating func append(_ tag: FieldTag, string: String) {
        header(tag, string.utf8.count)
        storage.writeString(string)
    }

    public mutating func append(_ tag: FieldTag, bytes: some Collection<UInt8>) {
        header(tag, bytes.count)
        storage.writeBytes(bytes)
    }

    public mutating func append(_ tag: FieldTag, uint64: UInt64) {
        storage.writeMultipleIntegers(tag.rawValue, UInt32(8), uint64)
    }

    public mutating func append(_ tag: FieldTag, uint8: UInt8) {
        storage.writeMultipleIntegers(tag.rawValue, UInt32(1), uint8)
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
    public var encodedLength: Int { storage.readableBytes }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeImmutableBuffer(storage)
    }
}
