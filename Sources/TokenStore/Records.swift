/// The renewal scheme of a login, as the store sees it.
public enum LoginKind: UInt8, Sendable, Hashable {
    /// Scheme 1: a sliding session whose token never changes.
    case session = 1
    /// Scheme 2: an access + refresh family, rotated on refresh.
    case family = 2
}

/// One login: a sliding session (scheme 1) or a refresh family (scheme 2).
///
/// The record lives until `maxExpiresAt`, whatever happens before: after an idle timeout or
/// a revocation it stays as a tombstone, so that the daemon can say *why* a token no longer
/// works. Expiry therefore needs only this one fixed time.
public struct LoginRecord: Sendable, Hashable {
    public var kind: LoginKind
    public var subject: String
    /// Keyed digest of the client fingerprint; nil when the login is not bound to a client.
    public var fingerprint: Digest128?
    public var createdAt: Int64
    /// Session: idle TTL in seconds. Family: access-token TTL.
    public var ttl: Int64
    /// Session: when it goes idle (moved by renewal). Family: the current refresh token's `exp`.
    public var expiresAt: Int64
    /// The absolute end of the login: no renewal or rotation passes it.
    public var maxExpiresAt: Int64
    /// Family: refresh-token TTL.
    public var refreshTTL: Int64
    /// Family: the `jti` of the one refresh token that may rotate next.
    public var currentRefreshID: SessionKey?
    /// Family: the current pair's generation (its tokens' `tokend_gen` claim): 0 at issue, one more
    /// with each rotation. The rotation rules compare generations, never issue times.
    public var generation: Int64
    /// Family: whether the current pair has been used (its access token verified). Until then a
    /// lost-response retry of the refresh that made it gets it again, within the grace.
    public var generationUsed: Bool
    public var revoked: Bool

    public init(kind: LoginKind, subject: String, fingerprint: Digest128?, createdAt: Int64, ttl: Int64, expiresAt: Int64,
                maxExpiresAt: Int64, refreshTTL: Int64 = 0, currentRefreshID: SessionKey? = nil, generation: Int64 = 0,
                generationUsed: Bool = false, revoked: Bool = false) {
        self.kind = kind
        self.subject = subject
        self.fingerprint = fingerprint
        self.createdAt = createdAt
        self.ttl = ttl
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt
        self.refreshTTL = refreshTTL
        self.currentRefreshID = currentRefreshID
        self.generation = generation
        self.generationUsed = generationUsed
        self.revoked = revoked
    }

    /// Whether `presented` may use this login: always when unbound, else on an exact match.
    func accepts(_ presented: Digest128?) -> Bool {
        guard let fingerprint else { return true }
        guard let presented else { return false }
        return fingerprint.constantTimeEquals(presented)
    }
}

/// A dedup-map entry: what a refresh (or an idempotent issue) produced, and for whom.
///
/// The tokens are sealed (AES-256-GCM) under a key derived from what the repeating caller
/// presents again: the old refresh token, or the subject and idempotency key. The store, the
/// snapshot and the journal hold only the sealed bytes, never a usable token.
///
/// Times are Unix milliseconds: a window of 1500 ms is 1500 ms.
public struct DedupEntry: Sendable, Hashable {
    public var sealed: [UInt8]
    public var fingerprint: Digest128?
    /// Idempotent issue only: a digest of the request, to refuse a key reused for another one.
    public var requestDigest: Digest128?
    /// Until then a repeat gets the same result whatever happened since (the dedup window).
    public var windowEndsAt: Int64
    /// Until then it is kept at all: a rotation's entry, past its window, still answers a
    /// lost-response retry while the pair it holds is unused (the rotation grace).
    public var expiresAt: Int64
    /// A rotation's entry: the generation of the pair it holds.
    public var generation: Int64

    public init(sealed: [UInt8], fingerprint: Digest128?, requestDigest: Digest128?, windowEndsAt: Int64, expiresAt: Int64? = nil,
                generation: Int64 = 0) {
        self.sealed = sealed
        self.fingerprint = fingerprint
        self.requestDigest = requestDigest
        self.windowEndsAt = windowEndsAt
        self.expiresAt = max(expiresAt ?? windowEndsAt, windowEndsAt)
        self.generation = generation
    }
}

/// What presenting a refresh token to its family comes to (`LoginRecord.presentation`).
public enum Presentation: Sendable, Hashable {
    /// The family's current refresh token: rotate it.
    case rotate
    /// A token already rotated whose successor pair goes back to it again (the same bytes):
    /// within the dedup window (concurrent refreshes), or later within the grace while the
    /// successor is unused (a lost response).
    case `repeat`
    /// A spent token otherwise: RFC 9700 §4.14.2 takes it for a stolen one.
    case reuse
}

extension LoginRecord {
    /// Where a verify (or, `explicit`, a renew) moves a live session's idle expiry: a renew to
    /// a whole idle TTL from now; a verify, once less than `renewBelow` remains, by `renewBy`;
    /// never past now plus the login's own idle TTL, nor past its maximum lifetime. At most the
    /// current expiry means no renewal. `RedisScripts.touch` keeps the same rule.
    func renewalTarget(now: Int64, explicit: Bool, policy: RenewalPolicy) -> Int64 {
        if explicit { return min(now + ttl, maxExpiresAt) }
        guard expiresAt - now < policy.renewBelow else { return expiresAt }
        return min(expiresAt + policy.renewBy, now + ttl, maxExpiresAt)
    }

    /// A session's checks, in their order (`RedisScripts.touch` keeps the same): nil when a
    /// verify or renew may go on.
    func sessionRefusal(fingerprint: Digest128?, subject: String?, now: Int64) -> SessionOutcome? {
        guard kind == .session else { return .wrongKind }
        guard !revoked else { return .revoked }
        guard now < maxExpiresAt else { return .maxLifetimeReached }
        guard accepts(fingerprint) else { return .fingerprintMismatch }
        if let subject, !subject.utf8.elementsEqual(self.subject.utf8) { return .subjectMismatch }
        guard now < expiresAt else { return .idleExpired }
        return nil
    }

    /// A family's checks, in their order (`RedisScripts.familyChecks` and `rotate`): nil when
    /// its access token may verify or its refresh token be presented.
    func familyRefusal(fingerprint: Digest128?, now: Int64) -> FamilyOutcome? {
        guard kind == .family else { return .wrongKind }
        guard !revoked else { return .revoked }
        guard now < maxExpiresAt else { return .maxLifetimeReached }
        guard accepts(fingerprint) else { return .fingerprintMismatch }
        return nil
    }

    /// The rotation rule, the one both stores keep (`RedisScripts.presentation` is its Lua):
    /// `kept` is the entry of the presented token's own rotation, if it was rotated and the
    /// entry is still kept at `milliseconds`; `generation` is the token's generation claim
    /// (absent from tokens issued before generations). A repeat goes only to the fingerprint
    /// the kept pair was made for, which the caller checks; a reuse is one whoever presents it.
    public func presentation(of refreshID: SessionKey, generation presented: Int64?, kept: DedupEntry?, at milliseconds: Int64) -> Presentation {
        if let kept, milliseconds < kept.expiresAt {
            if milliseconds < kept.windowEndsAt { return .repeat }
            return kept.generation == generation && !generationUsed ? .repeat : .reuse
        }
        guard currentRefreshID == refreshID, presented.map({ $0 == generation }) ?? true else { return .reuse }
        return .rotate
    }

    /// Whether verifying an access token of `presented` generation marks the current pair used.
    public func marksUsed(_ presented: Int64?) -> Bool {
        kind == .family && !generationUsed && presented == generation
    }

    /// When the store forgets the login: its maximum lifetime plus as long again as it could
    /// live, at most `tombstoneGrace`, so that a late token is told `max_lifetime_reached` or
    /// `revoked` rather than `session_unknown`. Both stores keep it (Redis as the key's expiry).
    public func forgetAt(policy: RenewalPolicy) -> Int64 {
        maxExpiresAt + min(policy.tombstoneGrace, max(0, maxExpiresAt - createdAt))
    }
}
