import TokenProtocol

/// An accepted `verify` or `renew`: the status (`ok`, or `renewed` when the call extended the
/// sliding session) and what the daemon knows of the token.
public struct VerifyOutcome: Sendable, Hashable {
    /// `ok` or `renewed`.
    public var status: Status
    /// The token's subject, session, claims and expiry times.
    public var result: VerifyResult

    public init(status: Status, result: VerifyResult) {
        self.status = status
        self.result = result
    }

    /// Whether this call extended the session.
    public var renewed: Bool { status == .renewed || result.renewed }
}
