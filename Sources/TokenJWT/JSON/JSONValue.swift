import TokenCrypto

/// A parsed JSON value. Numbers keep their source text so that nothing is lost to floating
/// point; objects keep their members in source order.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// Compact JSON text for this value.
    public var json: String {
        var out = ""
        write(to: &out)
        return out
    }

    func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .number(let text): out += text
        case .string(let value): out += JSONString.quote(value)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(to: &out)
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (index, member) in object.members.enumerated() {
                if index > 0 { out += "," }
                out += JSONString.quote(member.name) + ":"
                member.value.write(to: &out)
            }
            out += "}"
        }
    }
}

/// A JSON object: members in source order, names unique (the parser refuses duplicates).
public struct JSONObject: Sendable, Hashable {
    public struct Member: Sendable, Hashable {
        public var name: String
        public var value: JSONValue

        public init(name: String, value: JSONValue) {
            self.name = name
            self.value = value
        }
    }

    public var members: [Member]

    public init(members: [Member] = []) { self.members = members }

    public subscript(name: String) -> JSONValue? {
        members.first { $0.name == name }?.value
    }
}
