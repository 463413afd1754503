/// A JSON Web Key with string-valued members only, which is every member tokend writes
/// (RFC 7517, RFC 7518 §6, RFC 8037).
public struct JWK: Sendable, Hashable {
    public private(set) var members: [String: String]

    public init(members: [String: String]) { self.members = members }

    public subscript(name: String) -> String? {
        get { members[name] }
        set { members[name] = newValue }
    }

    public var keyType: String? { members["kty"] }

    /// The members that RFC 7638 hashes for each key type.
    private var requiredMembers: [String]? {
        switch members["kty"] {
        case "EC": ["crv", "kty", "x", "y"]
        case "RSA": ["e", "kty", "n"]
        case "OKP": ["crv", "kty", "x"]
        case "oct": ["k", "kty"]
        default: nil
        }
    }

    /// The RFC 7638 thumbprint: SHA-256 over the required members, sorted, without
    /// whitespace, base64url encoded. Nil when a required member is missing.
    public func thumbprint() -> String? {
        guard let names = requiredMembers else { return nil }
        var json = "{"
        for (index, name) in names.enumerated() {
            guard let value = members[name] else { return nil }
            if index > 0 { json += "," }
            json += JSONString.quote(name) + ":" + JSONString.quote(value)
        }
        json += "}"
        return Base64URL.encode(HashFunction.sha256.hash(Array(json.utf8)))
    }

    /// Compact JSON with members in lexicographic order.
    public var json: String {
        "{" + members.sorted { $0.key < $1.key }.map { JSONString.quote($0.key) + ":" + JSONString.quote($0.value) }.joined(separator: ",") + "}"
    }
}

/// JSON string quoting (RFC 8259 §7) with the minimal escapes.
public enum JSONString {
    public static func quote(_ string: String) -> String {
        var out = "\""
        out.reserveCapacity(string.utf8.count + 2)
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
