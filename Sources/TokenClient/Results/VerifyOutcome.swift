import TokenProtocol

/// An accepted `verify` or `renew`: the status (`ok`; `renewed` when the call extended the
/// sliding session; `refreshed` when a verify with a refresh token rotated the pair) and what
/// the daemon knows of the token.
public struct VerifyOutcome: Sendable, Hashable {
    /// `ok`, `renewed` or `refreshed`.
    public var status: Status
    /// The token's subject, session, claims and expiry times (after `refreshed`: the new access
    /// token's).
    public var result: VerifyResult
    /// After `refreshed`: the new pair, which the caller hands to its client.
    public var refreshed: IssueResult?
    /// Answered by the client's near cache, not by the daemon.
    public var local: Bool

    public init(status: Status, result: VerifyResult, refreshed: IssueResult? = nil, local: Bool = false) {
        self.status = status
        self.result = result
        self.refreshed = refreshed
        self.local = local
    }

    /// Whether this call extended the session.
    public var renewed: Bool { status == .renewed || result.renewed }
}
