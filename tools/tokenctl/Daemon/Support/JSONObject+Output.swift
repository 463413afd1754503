import TokenJWT

extension JSONObject {
    /// An object with these members, in this order.
    init(_ members: KeyValuePairs<String, JSONValue>) {
        self.init(members: members.map { JSONObject.Member(name: $0.key, value: $0.value) })
    }

    /// Adds a member at the end.
    mutating func append(_ name: String, _ value: JSONValue) {
        members.append(Member(name: name, value: value))
    }
}

extension JSONValue {
    static func integer(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }

    static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    /// JSON text from the daemon, embedded as a value; text that does not parse stays a string.
    static func embedded(json text: String) -> JSONValue {
        let bytes = Array(text.utf8)
        let parsed: JSONValue? = bytes.withUnsafeBytes { raw in
            try? StrictJSONParser(maximumDepth: 64).parseValue(raw)
        }
        return parsed ?? .string(text)
    }
}

/// Prints `object` as one line of compact JSON on stdout.
func printJSON(_ object: JSONObject) {
    print(JSONValue.object(object).json)
}
