/// How sliding sessions renew and how long the dedup map remembers (seconds).
public struct RenewalPolicy: Sendable, Hashable {
    /// A verify renews a session when less than this remains before it goes idle.
    public var renewBelow: Int64
    /// ...and pushes its idle expiry this much further (never past the maximum lifetime).
    public var renewBy: Int64
    /// How long a rotation's result (or an idempotent issue's) is handed out again.
    public var dedupWindow: Int64
    /// How long at most a login is remembered after its maximum lifetime (as long again as it
    /// could live, up to this), to answer `max_lifetime_reached` (or `revoked`) rather than
    /// `session_unknown`.
    public var tombstoneGrace: Int64

    public init(renewBelow: Int64 = 3600, renewBy: Int64 = 3600, dedupWindow: Int64 = 5, tombstoneGrace: Int64 = 3600) {
        self.renewBelow = renewBelow
        self.renewBy = renewBy
        self.dedupWindow = dedupWindow
        self.tombstoneGrace = tombstoneGrace
    }
}
