import TokenCrypto

/// The claims of a JWT: the registered ones tokend uses as typed fields, every other claim
/// preserved as its raw JSON.
public struct JWTClaims: Sendable, Hashable {
    public var issuer: String?
    public var subject: String?
    /// `aud`, whether written as one string or an array.
    public var audience: [String]?
    public var issuedAt: Int64?
    public var notBefore: Int64?
    public var expiration: Int64?
    public var jwtID: String?
    /// `sid`: the session (scheme 1) or refresh family (scheme 2) the token belongs to.
    public var sessionID: String?
    /// `tokend_gen`: which generation of its refresh family an access or refresh token belongs to
    /// (0 at issue, one more with each rotation).
    public var generation: Int64?
    /// Every other claim, in order, as JSON (numbers keep their source text).
    public var extra: [JSONObject.Member]

    public static let registeredNames: Set<String> = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "sid", "tokend_gen"]

    /// The largest NumericDate accepted: 9999-12-31T23:59:59Z.
    public static let maximumNumericDate: Int64 = 253_402_300_799

    public init(
        issuer: String? = nil, subject: String? = nil, audience: [String]? = nil,
        issuedAt: Int64? = nil, notBefore: Int64? = nil, expiration: Int64? = nil,
        jwtID: String? = nil, sessionID: String? = nil, generation: Int64? = nil, extra: [JSONObject.Member] = []
    ) {
        self.issuer = issuer
        self.subject = subject
        self.audience = audience
        self.issuedAt = issuedAt
        self.notBefore = notBefore
        self.expiration = expiration
        self.jwtID = jwtID
        self.sessionID = sessionID
        self.generation = generation
        self.extra = extra
    }

    /// Reads claims from a parsed payload, refusing registered claims of the wrong type.
    public init(object: JSONObject) throws(JWTError) {
        self.init()
        for member in object.members { try set(member) }
    }

    /// Reads claims straight from payload JSON, without building a tree for the registered
    /// ones: the hot path of every verification.
    init(parsing payload: UnsafeRawBufferPointer, maximumDepth: Int, maximumMembers: Int) throws(JWTError) {
        self.init()
        var cursor = JSONCursor(bytes: payload, maximumDepth: maximumDepth, maximumMembers: maximumMembers)
        var claims = self
        do {
            try cursor.forEachMember { name, cursor throws(StrictJSONParser.Error) in
                // The hot claims are read straight from the bytes, without a JSONValue.
                switch name {
                case "iss", "sub", "jti", "sid":
                    guard cursor.peek() == UInt8(ascii: "\"") else { throw cursor.error("\"\(name)\" must be a string") }
                    let value = try cursor.parseString()
                    switch name {
                    case "iss": claims.issuer = value
                    case "sub": claims.subject = value
                    case "jti": claims.jwtID = value
                    default: claims.sessionID = value
                    }
                    return
                case "tokend_gen":
                    // In every pair token: read here, like the times, rather than built as a value.
                    guard let value = try cursor.parseNumericDate() else { throw cursor.error(Self.generationRule) }
                    claims.generation = value
                    return
                case "iat", "nbf", "exp":
                    guard let value = try cursor.parseNumericDate(), value <= Self.maximumNumericDate else {
                        throw cursor.error("\"\(name)\" must be a non-negative integer NumericDate no later than year 9999")
                    }
                    switch name {
                    case "iat": claims.issuedAt = value
                    case "nbf": claims.notBefore = value
                    default: claims.expiration = value
                    }
                    return
                default:
                    break
                }
                let value = try cursor.parseValue(depth: 1)
                do throws(JWTError) {
                    try claims.set(JSONObject.Member(name: name, value: value))
                } catch {
                    throw StrictJSONParser.Error(reason: error.reason, offset: cursor.index)
                }
            }
        } catch {
            throw JWTError(.malformed, "the payload is not a valid claims set: \(error)")
        }
        self = claims
    }

    private mutating func set(_ member: JSONObject.Member) throws(JWTError) {
        switch member.name {
        case "iss": issuer = try Self.string(member)
        case "sub": subject = try Self.string(member)
        case "jti": jwtID = try Self.string(member)
        case "sid": sessionID = try Self.string(member)
        case "aud":
            switch member.value {
            case .string(let value): audience = [value]
            case .array(let values):
                var audiences: [String] = []
                for value in values {
                    guard let string = value.stringValue else { throw JWTError(.malformed, "\"aud\" must hold strings") }
                    audiences.append(string)
                }
                audience = audiences
            default: throw JWTError(.malformed, "\"aud\" must be a string or an array of strings")
            }
        case "iat": issuedAt = try Self.numericDate(member)
        case "nbf": notBefore = try Self.numericDate(member)
        case "exp": expiration = try Self.numericDate(member)
        case "tokend_gen": generation = try Self.generation(member)
        default: extra.append(member)
        }
    }

    private static func string(_ member: JSONObject.Member) throws(JWTError) -> String {
        guard case .string(let value) = member.value else { throw JWTError(.malformed, "\"\(member.name)\" must be a string") }
        return value
    }

    static let generationRule = "\"tokend_gen\" must be a non-negative integer"

    /// A generation: a non-negative JSON integer written without fraction or exponent.
    static func generation(_ member: JSONObject.Member) throws(JWTError) -> Int64 {
        guard let value = nonNegativeInteger(member) else { throw JWTError(.malformed, generationRule) }
        return value
    }

    /// A non-negative JSON integer written without fraction or exponent that fits in 64 bits.
    private static func nonNegativeInteger(_ member: JSONObject.Member) -> Int64? {
        guard case .number(let text) = member.value, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int64(text)
    }

    /// A NumericDate as tokend accepts it: a non-negative JSON integer written without
    /// fraction or exponent, at most `maximumNumericDate`.
    static func numericDate(_ member: JSONObject.Member) throws(JWTError) -> Int64 {
        guard let value = nonNegativeInteger(member), value <= maximumNumericDate else {
            throw JWTError(.malformed, "\"\(member.name)\" must be a non-negative integer NumericDate no later than year 9999")
        }
        return value
    }

    /// Compact JSON: registered claims first, then the extra claims as they were given.
    public var json: String {
        var out = "{"
        func add(_ name: String, _ value: String) {
            if out.utf8.count > 1 { out += "," }
            out += JSONString.quote(name) + ":" + value
        }
        if let issuer { add("iss", JSONString.quote(issuer)) }
        if let subject { add("sub", JSONString.quote(subject)) }
        if let audience {
            add("aud", audience.count == 1 ? JSONString.quote(audience[0]) : "[" + audience.map(JSONString.quote).joined(separator: ",") + "]")
        }
        if let issuedAt { add("iat", String(issuedAt)) }
        if let notBefore { add("nbf", String(notBefore)) }
        if let expiration { add("exp", String(expiration)) }
        if let jwtID { add("jti", JSONString.quote(jwtID)) }
        if let sessionID { add("sid", JSONString.quote(sessionID)) }
        if let generation { add("tokend_gen", String(generation)) }
        for member in extra { add(member.name, member.value.json) }
        return out + "}"
    }

    /// The extra (non-registered) claims as one JSON object.
    public var extraJSON: String {
        JSONValue.object(JSONObject(members: extra)).json
    }
}
