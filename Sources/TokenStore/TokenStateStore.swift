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
    /// `subject` is the token's `sub`: a session issued for another subject is
    /// `subjectMismatch`, found before anything is renewed.
    func touchSession(_ key: SessionKey, fingerprint: Digest128?, subject: String, explicit: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<SessionOutcome>

    /// Checks a refresh family for an access-token verify. An access token of the family's
    /// current `generation` marks the pair used (`LoginRecord.marksUsed`) before the answer.
    func checkFamily(_ key: SessionKey, fingerprint: Digest128?, generation: Int64?, on eventLoop: any EventLoop) -> EventLoopFuture<FamilyOutcome>

    /// Before a rotation is signed: the family's check and, when the presented refresh token
    /// was rotated already and `LoginRecord.presentation` hands its pair back (a repeat within
    /// the dedup window, or a lost-response retry within the grace), that pair, so that a
    /// repeat signs nothing. The rotation itself checks everything again.
    func prepareRotation(_ key: SessionKey, presented: PresentedRefresh, fingerprint: Digest128?, on eventLoop: any EventLoop) -> EventLoopFuture<RotationCheck>

    /// Rotates a family with a pair already signed, unless the presented refresh token was
    /// rotated already (a repeat, or reuse).
    func rotate(_ rotation: Rotation, on eventLoop: any EventLoop) -> EventLoopFuture<RotationOutcome>

    /// Revokes one login or every login of a subject; returns how many were newly revoked,
    /// or nil when a single session key is unknown.
    func revoke(_ target: RevokeTarget, on eventLoop: any EventLoop) -> EventLoopFuture<Int?>

    /// Lists logins.
    func list(_ query: ListQuery, on eventLoop: any EventLoop) -> EventLoopFuture<ListPage>

    /// Counts for `stats`.
    func statistics(on eventLoop: any EventLoop) -> EventLoopFuture<StoreStatistics>

    /// Whether the store can serve every operation now (a shared store that answers; an
    /// embedded store whose state directory takes writes): what `ping` and `hello` report.
    func health(on eventLoop: any EventLoop) -> EventLoopFuture<Bool>

    /// The immediate forms (`StoreAnswer.swift`): requirements, so that a store's own
    /// implementation is the one called through `any TokenStateStore`.
    func touchSessionAnswer(_ key: SessionKey, fingerprint: Digest128?, subject: String, explicit: Bool,
                            on eventLoop: any EventLoop) -> StoreAnswer<SessionOutcome>
    func checkFamilyAnswer(_ key: SessionKey, fingerprint: Digest128?, generation: Int64?, on eventLoop: any EventLoop) -> StoreAnswer<FamilyOutcome>
    func healthAnswer(on eventLoop: any EventLoop) -> StoreAnswer<Bool>
}

/// A login to record.
public struct NewLogin: Sendable {
    public var key: SessionKey
    public var record: LoginRecord
    /// Present when the caller gave an idempotency key.
    public var idempotency: Idempotency?

    public struct Idempotency: Sendable {
        /// Digest of subject and idempotency key: the dedup map's key.
        public var key: Digest128
        /// Digest of the request's parameters, to detect a key reused for another request.
        public var requestDigest: Digest128
        /// The issued tokens, sealed, for repeats.
        public var sealed: [UInt8]

        public init(key: Digest128, requestDigest: Digest128, sealed: [UInt8]) {
            self.key = key
            self.requestDigest = requestDigest
            self.sealed = sealed
        }
    }

    public init(key: SessionKey, record: LoginRecord, idempotency: Idempotency? = nil) {
        self.key = key
        self.record = record
        self.idempotency = idempotency
    }
}

public enum CreateOutcome: Sendable, Hashable {
    case created
    /// An idempotent repeat: the sealed tokens of the first request.
    case existing([UInt8])
    /// The idempotency key was used for a different request.
    case conflict
}

/// What the store knows of a live login, for a verify reply.
public struct LoginInfo: Sendable, Hashable {
    public var subject: String
    public var expiresAt: Int64
    public var maxExpiresAt: Int64

    public init(subject: String, expiresAt: Int64, maxExpiresAt: Int64) {
        self.subject = subject
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt
    }
}

public enum SessionOutcome: Sendable, Hashable {
    case active(LoginInfo, renewed: Bool)
    case idleExpired
    case revoked
    case maxLifetimeReached
    case unknown
    case fingerprintMismatch
    /// The token's `sub` is not the session's subject: a token signed outside the daemon.
    case subjectMismatch
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

/// What `prepareRotation` found.
public enum RotationCheck: Sendable, Hashable {
    /// The family as `checkFamily` sees it: active (a rotation may be signed) or a refusal.
    case family(FamilyOutcome)
    /// A repeat (`Presentation.repeat`): the sealed pair of the rotation it repeats.
    case repeated([UInt8])
}

/// A refresh token presented for rotation, as the store's rules see it.
public struct PresentedRefresh: Sendable, Hashable {
    /// Its `jti`.
    public var id: SessionKey
    /// Digest of the whole token: the dedup map's key.
    public var digest: Digest128
    /// Its `tokend_gen` claim; absent from tokens issued before generations.
    public var generation: Int64?

    public init(id: SessionKey, digest: Digest128, generation: Int64?) {
        self.id = id
        self.digest = digest
        self.generation = generation
    }
}

/// A rotation request: the presented refresh token and the pair signed to replace it (whose
/// generation is the family's next).
public struct Rotation: Sendable {
    public var family: SessionKey
    public var presented: PresentedRefresh
    public var fingerprint: Digest128?
    public var newRefreshID: SessionKey
    public var newRefreshExpiresAt: Int64
    /// The new pair, sealed, kept for repeats (the dedup window, the rotation grace).
    public var sealedCandidate: [UInt8]

    public init(family: SessionKey, presented: PresentedRefresh, fingerprint: Digest128?,
                newRefreshID: SessionKey, newRefreshExpiresAt: Int64, sealedCandidate: [UInt8]) {
        self.family = family
        self.presented = presented
        self.fingerprint = fingerprint
        self.newRefreshID = newRefreshID
        self.newRefreshExpiresAt = newRefreshExpiresAt
        self.sealedCandidate = sealedCandidate
    }
}

public enum RotationOutcome: Sendable, Hashable {
    /// The candidate pair is now the family's.
    case rotated
    /// A repeat (within the dedup window, or a lost-response retry within the grace): the
    /// sealed pair the first rotation produced.
    case deduplicated([UInt8])
    /// A spent refresh token otherwise: the family has been revoked.
    case reuseDetected
    case revoked
    case maxLifetimeReached
    case unknown
    case fingerprintMismatch
}

extension RotationOutcome {
    /// A family's refusal, as a rotation reports it (the family's `wrongKind` is `unknown` to a
    /// rotation, which names a family by its refresh token).
    init(_ refusal: FamilyOutcome) {
        switch refusal {
        case .revoked: self = .revoked
        case .maxLifetimeReached: self = .maxLifetimeReached
        case .fingerprintMismatch: self = .fingerprintMismatch
        case .unknown, .wrongKind, .active: self = .unknown
        }
    }
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

    public init(key: SessionKey, record: LoginRecord, idleExpired: Bool) {
        self.key = key
        self.record = record
        self.idleExpired = idleExpired
    }
}

public struct ListPage: Sendable, Hashable {
    public var logins: [ListedLogin]
    /// Pass as `after` for the next page; nil on the last.
    public var next: SessionKey?

    public init(logins: [ListedLogin], next: SessionKey?) {
        self.logins = logins
        self.next = next
    }
}

public struct StoreStatistics: Sendable, Hashable {
    /// Sessions held and not revoked (idle ones included until they are forgotten); nil when
    /// the store cannot count cheaply (a shared store).
    public var sessionsActive: Int?
    /// Families held and not revoked.
    public var familiesActive: Int?
    public var revoked: Int?
    public var dedupEntries: Int?
    public var records: Int?
    /// Further rows for `stats`, by name (a shared store's health).
    public var extra: [String: UInt64]

    public init(sessionsActive: Int? = nil, familiesActive: Int? = nil, revoked: Int? = nil, dedupEntries: Int? = nil, records: Int? = nil,
                extra: [String: UInt64] = [:]) {
        self.sessionsActive = sessionsActive
        self.familiesActive = familiesActive
        self.revoked = revoked
        self.dedupEntries = dedupEntries
        self.records = records
        self.extra = extra
    }
}

/// The store could not answer in time (a shared store that is unreachable or refusing), or
/// cannot make a change durable (the embedded store's journal after a write failure): nothing
/// may be assumed, and the request fails closed with `store_unavailable`.
public struct StoreUnavailable: Error, Sendable, CustomStringConvertible {
    /// The detail, for the daemon's log: it may name the store's address or its error.
    public let description: String
    /// What a peer is told: never the store's internals.
    public let reason: String

    public static let sharedStoreReason = "the shared state store is unavailable; try again shortly"
    public static let persistenceReason = "changes cannot be made durable now (the state directory does not take writes); verifies go on; try again shortly"

    public init(_ description: String, reason: String = StoreUnavailable.sharedStoreReason) {
        self.description = description
        self.reason = reason
    }
}
