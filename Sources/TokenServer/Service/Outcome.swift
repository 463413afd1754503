import TokenProtocol

/// What an operation came to, as typed results. `status` and `fields` are the one edge where
/// results become the wire's fields; the HTTP face reads the results themselves.
enum Outcome: Sendable {
    /// verify or renew: `ok`, or `renewed` when this call extended the session.
    case verified(VerifyResult)
    /// verify-or-refresh rotated the pair.
    case refreshed(RefreshedResult)
    /// issue and refresh.
    case issued(IssueResult)
    case revoked(count: Int)
    case pong(storeHealthy: Bool)
    /// `track`: the connection now receives invalidations.
    case tracking
    case hello(HelloInfo)
    case statistics([Statistic])
    case sessions(SessionPage)
    case keys([KeyInfo])
    case jwks(String)
    case metrics(String)
    case snapshotWritten(records: Int, summary: String)
    case refused(Refusal)

    var status: Status {
        switch self {
        case .verified(let result): result.renewed ? .renewed : .ok
        case .refreshed: .refreshed
        case .refused(let refusal): refusal.status
        default: .ok
        }
    }

    var fields: Fields {
        switch self {
        case .verified(let result): return result.fields
        case .refreshed(let result): return result.fields
        case .issued(let result): return result.fields
        case .revoked(let count):
            var fields = Fields()
            fields.append(.count, uint64: UInt64(count))
            return fields
        case .tracking:
            return Fields()
        case .pong(let healthy):
            var fields = Fields()
            fields.append(.storeHealthy, bool: healthy)
            return fields
        case .hello(let info): return info.fields
        case .statistics(let statistics): return Statistic.fields(statistics)
        case .sessions(let page): return page.fields
        case .keys(let keys): return KeyInfo.fields(keys)
        case .jwks(let text):
            var fields = Fields()
            fields.append(.jwks, string: text)
            return fields
        case .metrics(let text):
            var fields = Fields()
            fields.append(.metricsText, string: text)
            return fields
        case .snapshotWritten(let records, let summary):
            var fields = Fields()
            fields.append(.count, uint64: UInt64(records))
            fields.append(.message, string: summary)
            return fields
        case .refused(let refusal):
            var fields = Fields()
            fields.append(.message, string: refusal.message)
            return fields
        }
    }
}
