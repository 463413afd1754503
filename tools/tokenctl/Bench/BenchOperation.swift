import ArgumentParser

/// `tokenctl bench --op`: what each request asks of the daemon.
enum BenchOperation: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// `ping`: the protocol and transport alone.
    case ping
    /// `verify` of one sliding-session token issued during setup.
    case verify
    /// `issue` of a new sliding session per request.
    case issue
    /// `refresh` along a chain of pairs, one family per lane.
    case refresh
    /// 80% verify, 10% issue, 10% refresh.
    case mix

    /// Whether setup issues the shared session token that verifies present.
    var verifies: Bool { self == .verify || self == .mix }
    /// Whether setup issues a pair per lane for refreshes to rotate.
    var refreshes: Bool { self == .refresh || self == .mix }
    /// Whether requests issue new sessions.
    var issues: Bool { self == .issue || self == .mix }
}
