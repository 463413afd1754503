import NIOCore

/// Where tokend keeps its state: logins (sessions and families), revocations, and the dedup
/// map. The interface is narrow and asynchronous so that a shared store (Redis) can stand
/// behind it as well as the embedded one; every method is one atomic step.
///
/// The store never sees a raw token, key or fingerprint except the issued tokens it keeps for
/// the dedup window; it works on session keys and keyed digests.
public protocol TokenStateStore: Sendable {
    /// Records a new login. With an idempotency digest that is already recorded (within the
    /// dedup window), records nothing and returns the earlier tokens.
    func create(_ login: NewLogin, on eventLoop: any EventLoop) -> EventLoopFuture<CreateOutcome>

    /// Checks a sliding session for a verify (renewing it below the threshold) or an explicit
    /// renew.
    func touchSession(_ key: SessionKey, fingerprint: Digest128?, explicit: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<SessionOutcome>

    /// Checks a refresh family for an access-token verify or before a rotation.
    func checkFamily(_ key: SessionKey, fingerprint: Digest128?, on eventLoop: any EventLoop) -> EventLoopFuture<FamilyOutcome>

    /// Rotates a family with a pair already signed, unless the presented refresh token was
    /// rotated already (dedup hit or reuse).
    func rotate(_ rotation: Rotation, on eventLoop: any EventLoop) -> EventLoopFuture<RotationOutcome>

    /// Revokes one login or every login of a subject; returns how many were newly revoked,
    /// or nil when a single session key is unknown.
    func revoke(_ target: RevokeTarget, on eventLoop: any EventLoop) -> EventLoopFuture<Int?>

    /// Lists logins.
    func list(_ query: ListQuery, on eventLoop: any EventLoop) -> EventLoopFuture<ListPage>

    /// Counts for `stats`.
    func statistics(on eventLoop: any EventLoop) -> EventLoopFuture<StoreStatistics>
}

/// A login to record.
public struct NewLogin: Sendable {
    public var key: SessionKey
    public var record: LoginRecord
    /// The tokens issued for it, kept for idempotent repeats.
    public var issued: IssuedTokens
    /// Digest of subject and idempotency key, when the caller gave one.
    public var idempotencyKey: Digest128?
    /// Digest of the request's parameters, to detect a key reused for another request.
    public var requestDigest: Digest128?

    public init(key: SessionKey, record: LoginRecord, issued: IssuedTokens, idempotencyKey: Digest128? = nil, requestDigest: Digest128? = nil) {
        self.key = key
        self.record = record
        self.issued = issued
        self.idempotencyKey = idempotencyKey
        self.requestDigest = requestDigest
    }
}

public enum CreateOutcome: Sendable, Hashable {
    case created
    /// An idempotent repeat: the tokens of the first request.
    case existing(IssuedTokens)
    /// The idempotency key was used for a different request.
    case conflict
}

/// What the store knows of a live login, for a verify reply.
public struct LoginInfo: Sendable, Hashable {
    public var subject: String
    public var expiresAt: Int64
    public var maxExpiresAt: Int64
}

public enum SessionOutcome: Sendable, Hashable {
    case active(LoginInfo, renewed: Bool)
    case idleExpired
    case revoked
    case maxLifetimeReached
    case unknown
    case fingerprintMismatch
    /// The key names a family, not a sliding session.
    case wrongKind
}

public enum FamilyOutcome: Sendable, Hashable {
    case active(LoginRecord)
    case revoked
    case maxLifetimeReached
    case unknown
    case fingerprintMismatch
    case wrongKind
}

/// A rotation request: the presented refresh token (by its `jti` and digest) and the pair
/// signed to replace it.
public struct Rotation: Sendable {
    public var family: SessionKey
    public var presentedRefreshID: SessionKey
    /// Digest of the whole presented refresh token: the dedup map's key.
    public var presentedDigest: Digest128
    public var fingerprint: Digest128?
    public var newRefreshID: SessionKey
    public var newRefreshExpiresAt: Int64
    public var candidate: IssuedTokens

    public init(family: SessionKey, presentedRefreshID: SessionKey, presentedDigest: Digest128, fingerprint: Digest128?,
                newRefreshID: SessionKey, newRefreshExpiresAt: Int64, candidate: IssuedTokens) {
        self.family = family
        self.presentedRefreshID = presentedRefreshID
        self.presentedDigest = presentedDigest
        self.fingerprint = fingerprint
        self.newRefreshID = newRefreshID
        self.newRefreshExpiresAt = newRefreshExpiresAt
        self.candidate = candidate
    }
}

public enum RotationOutcome: Sendable, Hashable {
    /// The candidate pair is now the family's.
    case rotated(IssuedTokens)
    /// A repeat within the dedup window: the pair the first rotation produced.
    case deduplicated(IssuedTokens)
    /// A spent refresh token after the window: the family has been revoked.
    case reuseDetected
    case revoked
    case maxLifetimeReached
    case unknown
    case fingerprintMismatch
}

public enum RevokeTarget: Sendable, Hashable {
    case login(SessionKey)
    case subject(String)
}

public struct ListQuery: Sendable, Hashable {
    public var subject: String?
    /// List keys after this one (paging through all).
    public var after: SessionKey?
    public var limit: Int

    public init(subject: String? = nil, after: SessionKey? = nil, limit: Int = 100) {
        self.subject = subject
        self.after = after
        self.limit = limit
    }
}

public struct ListedLogin: Sendable, Hashable {
    public var key: SessionKey
    public var record: LoginRecord
    /// Whether a session has gone idle, or a family's current refresh token has expired.
    public var idleExpired: Bool
}

public struct ListPage: Sendable, Hashable {
    public var logins: [ListedLogin]
    /// Pass as `after` for the next page; nil on the last.
    public var next: SessionKey?
}

public struct StoreStatistics: Sendable, Hashable {
    /// Sessions held and not revoked (idle ones included until they are forgotten).
    public var sessionsActive: Int
    /// Families held and not revoked.
    public var familiesActive: Int
    public var revoked: Int
    public var dedupEntries: Int
    public var records: Int
}
