/// How sliding sessions renew (seconds) and how long the dedup map remembers (milliseconds).
public struct RenewalPolicy: Sendable, Hashable {
    /// A verify renews a session when less than this remains before it goes idle.
    public var renewBelow: Int64
    /// ...and pushes its idle expiry this much further (never past the maximum lifetime).
    public var renewBy: Int64
    /// How long a rotation's result (or an idempotent issue's) is handed out again to any
    /// repeat, in milliseconds.
    public var dedupWindowMilliseconds: Int64
    /// How long after a rotation its pair still goes back to a retry of the spent refresh
    /// token while that pair is unused (a lost response), in milliseconds; nil: the family's
    /// access-token TTL; 0 turns it off. A grace shorter than the dedup window is the window.
    public var rotationGraceMilliseconds: Int64?
    /// How long at most a login is remembered after its maximum lifetime (as long again as it
    /// could live, up to this), to answer `max_lifetime_reached` (or `revoked`) rather than
    /// `session_unknown`.
    public var tombstoneGrace: Int64

    public init(renewBelow: Int64 = 3600, renewBy: Int64 = 3600, dedupWindowMilliseconds: Int64 = 5000, rotationGraceMilliseconds: Int64? = nil,
                tombstoneGrace: Int64 = 3600) {
        self.renewBelow = renewBelow
        self.renewBy = renewBy
        self.dedupWindowMilliseconds = dedupWindowMilliseconds
        self.rotationGraceMilliseconds = rotationGraceMilliseconds
        self.tombstoneGrace = tombstoneGrace
    }
}

extension RenewalPolicy {
    /// How long a rotation's dedup entry is kept for a family whose access tokens live
    /// `accessTTL` seconds: the grace, and at least the dedup window. `RedisScripts.rotate`
    /// keeps the same rule, with the family's TTL read where the script runs.
    func keptMilliseconds(accessTTL: Int64) -> Int64 {
        max(rotationGraceMilliseconds ?? accessTTL * 1000, dedupWindowMilliseconds)
    }

    /// The dedup entry of a rotation of `family` at `milliseconds`, holding the pair of
    /// `generation`: a repeat gets it for the window, a lost-response retry for the grace.
    func rotationEntry(sealed: [UInt8], fingerprint: Digest128?, family: LoginRecord, generation: Int64, at milliseconds: Int64) -> DedupEntry {
        DedupEntry(sealed: sealed, fingerprint: fingerprint, requestDigest: nil, windowEndsAt: milliseconds + dedupWindowMilliseconds,
                   expiresAt: milliseconds + keptMilliseconds(accessTTL: family.ttl), generation: generation)
    }
}
