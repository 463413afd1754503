import TokenProtocol

/// One counter or gauge from `stats`: a `stat` record (55) of `name` (56) and `value` (57).
public struct Statistic: Sendable, Hashable {
    public var name: String
    public var value: UInt64

    public init(name: String, value: UInt64) {
        self.name = name
        self.value = value
    }

    public init(fields: Fields) throws(ProtocolError) {
        name = try fields.requiredString(.name, "name")
        guard let value = try fields.uint64(.value) else { throw .badRequest("missing value in stat \(name)") }
        self.value = value
    }
}
