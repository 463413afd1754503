/// A strict RFC 8259 parser for the small objects JOSE carries.
///
/// Beyond the grammar it refuses: duplicate member names (compared as UTF-8 bytes, found in
/// linear time), objects of more than `maximumMembers` members, nesting deeper than
/// `maximumDepth`, invalid UTF-8, lone surrogate escapes, the NUL character (raw or escaped),
/// and anything after the top-level value but whitespace.
public struct StrictJSONParser {
    public struct Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        public let reason: String
        public let offset: Int
        public var description: String { "\(reason) at byte \(offset)" }
    }

    public var maximumDepth: Int
    /// The most members any one object may have: the parse stops at the first one past it.
    public var maximumMembers: Int

    public init(maximumDepth: Int = 16, maximumMembers: Int = 1024) {
        self.maximumDepth = maximumDepth
        self.maximumMembers = maximumMembers
    }

    /// Parses a document whose top-level value must be an object.
    public func parseObject(_ bytes: UnsafeRawBufferPointer) throws(Error) -> JSONObject {
        var cursor = JSONCursor(bytes: bytes, maximumDepth: maximumDepth, maximumMembers: maximumMembers)
        cursor.skipWhitespace()
        guard cursor.peek() == UInt8(ascii: "{") else { throw cursor.error("expected a JSON object") }
        let object = try cursor.parseObject(depth: 1)
        cursor.skipWhitespace()
        guard cursor.atEnd else { throw cursor.error("unexpected data after the JSON value") }
        return object
    }

    public func parseObject<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(Error) -> JSONObject {
        let array = Array(bytes)
        let result: Result<JSONObject, Error> = array.withUnsafeBytes { raw in
            do throws(Error) { return .success(try parseObject(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Parses a document holding any JSON value.
    public func parseValue(_ bytes: UnsafeRawBufferPointer) throws(Error) -> JSONValue {
        var cursor = JSONCursor(bytes: bytes, maximumDepth: maximumDepth, maximumMembers: maximumMembers)
        cursor.skipWhitespace()
        let value = try cursor.parseValue(depth: 0)
        cursor.skipWhitespace()
        guard cursor.atEnd else { throw cursor.error("unexpected data after the JSON value") }
        return value
    }
}

/// The parser's position in its input; TokenJWT's claim reader drives it member by member.
struct JSONCursor {
    let bytes: UnsafeRawBufferPointer
    let maximumDepth: Int
    let maximumMembers: Int
    var index = 0

    init(bytes: UnsafeRawBufferPointer, maximumDepth: Int, maximumMembers: Int = 1024) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
        self.maximumMembers = maximumMembers
    }

    var atEnd: Bool { index >= bytes.count }

    func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    func error(_ reason: String) -> StrictJSONParser.Error { .init(reason: reason, offset: index) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(StrictJSONParser.Error) {
        guard peek() == byte else { throw error("expected \(what)") }
        index += 1
    }

    mutating func parseValue(depth: Int) throws(StrictJSONParser.Error) -> JSONValue {
        guard let byte = peek() else { throw error("unexpected end of JSON") }
        switch byte {
        case UInt8(ascii: "{"): return .object(try parseObject(depth: depth + 1))
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws(StrictJSONParser.Error) {
        let count = word.utf8CodeUnitCount
        let expected = UnsafeRawBufferPointer(start: word.utf8Start, count: count)
        guard index + count <= bytes.count, bytes[index..<index + count].elementsEqual(expected) else {
            throw error("invalid literal")
        }
        index += count
    }

    mutating func parseObject(depth: Int) throws(StrictJSONParser.Error) -> JSONObject {
        guard depth <= maximumDepth else { throw error("JSON nested deeper than \(maximumDepth) levels") }
        index += 1 // {
        var members: [JSONObject.Member] = []
        members.reserveCapacity(8)
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return JSONObject(members: members)
        }
        var names = MemberNames()
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let nameOffset = index
            let name = try parseString()
            try names.insert(name, at: nameOffset, maximum: maximumMembers)
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':'")
            skipWhitespace()
            members.append(.init(name: name, value: try parseValue(depth: depth)))
            skipWhitespace()
            guard let next = peek() else { throw error("unterminated object") }
            index += 1
            if next == UInt8(ascii: "}") { return JSONObject(members: members) }
            guard next == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
        }
    }

    /// Reads a top-level object member by member: `visit` gets each name (duplicates already
    /// refused) and must consume the value, through `parseValue` or a typed read.
    mutating func forEachMember(_ visit: (String, inout JSONCursor) throws(StrictJSONParser.Error) -> Void) throws(StrictJSONParser.Error) {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else { throw error("expected a JSON object") }
        index += 1
        var names = MemberNames()
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let nameOffset = index
                let name = try parseString()
                try names.insert(name, at: nameOffset, maximum: maximumMembers)
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':'")
                skipWhitespace()
                try visit(name, &self)
                skipWhitespace()
                guard let next = peek() else { throw error("unterminated object") }
                index += 1
                if next == UInt8(ascii: "}") { break }
                guard next == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
            }
        }
        skipWhitespace()
        guard atEnd else { throw error("unexpected data after the JSON value") }
    }

    mutating func parseArray(depth: Int) throws(StrictJSONParser.Error) -> JSONValue {
        guard depth <= maximumDepth else { throw error("JSON nested deeper than \(maximumDepth) levels") }
        index += 1 // [
        var values: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return .array(values)
        }
        while true {
            skipWhitespace()
            values.append(try parseValue(depth: depth))
            skipWhitespace()
            guard let next = peek() else { throw error("unterminated array") }
            index += 1
            if next == UInt8(ascii: "]") { return .array(values) }
            guard next == UInt8(ascii: ",") else { throw error("expected ',' or ']'") }
        }
    }

    /// A JSON number that must be a non-negative integer (no sign, fraction or exponent),
    /// read without making a string; nil when it is a number of another shape or too large.
    mutating func parseNumericDate() throws(StrictJSONParser.Error) -> Int64? {
        guard let first = peek(), isDigit(first) else {
            // Not an integer: still parse it, so that errors name the right problem.
            _ = try parseValue(depth: maximumDepth)
            return nil
        }
        var value: Int64 = 0
        var overflow = false
        let start = index
        while let byte = peek(), isDigit(byte) {
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (added, o2) = shifted.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            overflow = overflow || o1 || o2
            value = added
            index += 1
        }
        if first == UInt8(ascii: "0"), index - start > 1 { throw error("invalid number") }
        if let next = peek(), next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            index = start
            _ = try parseNumber()
            return nil
        }
        return overflow ? nil : value
    }

    mutating func parseNumber() throws(StrictJSONParser.Error) -> String {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw error("invalid number") }
        index += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let digit = peek(), isDigit(digit) else { throw error("invalid number") }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), isDigit(digit) else { throw error("invalid number") }
            skipDigits()
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    mutating func skipDigits() {
        while let byte = peek(), isDigit(byte) { index += 1 }
    }

    mutating func parseString() throws(StrictJSONParser.Error) -> String {
        index += 1 // "
        let start = index
        // Fast path: printable ASCII without escapes.
        if let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) {
            let end = bytes.count
            while index < end {
                let byte = base[index]
                if byte == UInt8(ascii: "\"") {
                    let string = String(decoding: UnsafeBufferPointer(start: base + start, count: index - start), as: UTF8.self)
                    index += 1
                    return string
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { break }
                index += 1
            }
        }
        var scalars = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while true {
            guard let byte = peek() else { throw error("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let string = String(validating: scalars, as: UTF8.self) else {
                    throw StrictJSONParser.Error(reason: "invalid UTF-8 in string", offset: start)
                }
                return string
            case UInt8(ascii: "\\"):
                index += 1
                guard let escape = peek() else { throw error("unterminated escape") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append(0x22)
                case UInt8(ascii: "\\"): scalars.append(0x5C)
                case UInt8(ascii: "/"): scalars.append(0x2F)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800...0xDBFF).contains(code) {
                        guard peek() == UInt8(ascii: "\\") else { throw error("lone surrogate") }
                        index += 1
                        guard peek() == UInt8(ascii: "u") else { throw error("lone surrogate") }
                        index += 1
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("lone surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(code) {
                        throw error("lone surrogate")
                    }
                    guard code != 0 else { throw error("NUL character in string") }
                    scalars.append(contentsOf: String(Unicode.Scalar(code)!).utf8)
                default: throw error("invalid escape")
                }
            default:
                guard byte >= 0x20 else { throw error("control character in string") }
                scalars.append(byte)
                index += 1
            }
        }
    }

    mutating func hex4() throws(StrictJSONParser.Error) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }
}

/// The member names of one object so far, to refuse a duplicate and a member past the limit.
/// A few names are compared one by one; past that they go in a set, so that finding duplicates
/// among many members costs linear time, not quadratic. Names compare as UTF-8 bytes (Swift's
/// `String` equality would take canonically equivalent names for one).
struct MemberNames {
    private var few: [String] = []
    private var many: Set<[UInt8]>?
    private(set) var count = 0

    mutating func insert(_ name: String, at offset: Int, maximum: Int) throws(StrictJSONParser.Error) {
        guard count < maximum else {
            throw StrictJSONParser.Error(reason: "more than \(maximum) members in one object", offset: offset)
        }
        count += 1
        if many == nil, few.count < 8 {
            guard !few.contains(where: { $0.utf8.elementsEqual(name.utf8) }) else {
                throw StrictJSONParser.Error(reason: "duplicate member name", offset: offset)
            }
            few.append(name)
            return
        }
        if many == nil { many = Set(few.map { Array($0.utf8) }) }
        guard many!.insert(Array(name.utf8)).inserted else {
            throw StrictJSONParser.Error(reason: "duplicate member name", offset: offset)
        }
    }
}
