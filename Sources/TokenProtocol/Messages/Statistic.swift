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

    public var fields: Fields {
        var fields = Fields()
        fields.append(.name, string: name)
        fields.append(.value, uint64: value)
        return fields
    }

    /// A `stats` reply: one `stat` record per statistic, in order.
    public static func fields(_ statistics: [Statistic]) -> Fields {
        var fields = Fields()
        for statistic in statistics { fields.append(.stat, record: statistic.fields) }
        return fields
    }

    /// The statistics of a `stats` reply, in the daemon's order.
    public static func list(_ fields: Fields) throws(ProtocolError) -> [Statistic] {
        var statistics: [Statistic] = []
        for record in try fields.records(.stat) {
            statistics.append(try Statistic(fields: record))
        }
        return statistics
    }
}
