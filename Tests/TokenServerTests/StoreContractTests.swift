import Foundation
import Logging
import NIOCore
import NIOPosix
import RedisClient
import TestSupport
import Testing
import TokenRedisStore
import TokenStore

/// One contract for `TokenStateStore`, proven twice: the same cases against the embedded store
/// and the Redis store (a `redis-server` the test starts), both on a manual clock.
///
/// The Redis store takes the time from the daemon's clock for every rule, except that Redis
/// itself forgets a dedup entry when its window has passed in real time (`PX`); the cases that
/// wait out a window therefore also wait for it in real time (`Harness.pass`).
@Suite(.serialized, .enabled(if: RedisServer.installed, "redis-server is not installed (tools/test installs it); the contract is proven on both stores or not at all"))
struct StoreContractTests {
    enum Kind: String, CaseIterable, CustomStringConvertible, Sendable {
        case embedded, redis
        var description: String { rawValue }
    }

    /// A dedup window long enough that the repeats inside it come in time on a busy machine
    /// (Redis counts it in real time).
    static let policy = RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindow: 4, tombstoneGrace: 3600)
    static let fingerprint = Digest128(high: 1, low: 2)
    static let other = Digest128(high: 3, low: 4)

    /// A store of either kind, its manual clock (starting at the real time, so that the keys
    /// Redis is told to expire at those times live as long as they should), and a real loop.
    final class Harness: @unchecked Sendable {
        let kind: Kind
        let clock = ManualClock(Int64(Date().timeIntervalSince1970))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let store: any TokenStateStore
        private let server: RedisServer?
        private let redis: RedisStore?

        init(_ kind: Kind) throws {
            self.kind = kind
            switch kind {
            case .embedded:
                store = try EmbeddedStore(policy: StoreContractTests.policy, clock: clock, persistence: nil, logger: Logger(label: "test"))
                server = nil
                redis = nil
            case .redis:
                let server = try RedisServer()
                let settings = try RedisClient.Configuration(endpoint: RedisEndpoint(url: server.unixURL), timeout: .seconds(5))
                let redis = RedisStore(configuration: settings, policy: StoreContractTests.policy, clock: clock, logger: Logger(label: "test"))
                store = redis
                self.server = server
                self.redis = redis
            }
        }

        deinit {
            redis?.close()
            server?.stop()
        }

        /// `seconds` pass: on the manual clock, and for Redis's own expiry of dedup entries.
        func pass(_ seconds: Int64, realTimeToo: Bool = false) async throws {
            clock.advance(seconds)
            if realTimeToo, kind == .redis { try await Task.sleep(for: .milliseconds(seconds * 1000 + 100)) }
        }

        func session(_ key: SessionKey, subject: String = "alice", idle: Int64 = 120, max: Int64 = 300) -> NewLogin {
            let now = clock.now()
            return NewLogin(key: key, record: LoginRecord(kind: .session, subject: subject, fingerprint: StoreContractTests.fingerprint, createdAt: now,
                                                          ttl: idle, expiresAt: now + idle, maxExpiresAt: now + max))
        }

        func family(_ key: SessionKey, refreshID: SessionKey, subject: String = "alice") -> NewLogin {
            let now = clock.now()
            return NewLogin(key: key, record: LoginRecord(kind: .family, subject: subject, fingerprint: StoreContractTests.fingerprint, createdAt: now,
                                                          ttl: 30, expiresAt: now + 60, maxExpiresAt: now + 300, refreshTTL: 60,
                                                          currentRefreshID: refreshID))
        }

        func rotation(_ family: SessionKey, presented: SessionKey, digest: Digest128, new: SessionKey, fingerprint: Digest128? = StoreContractTests.fingerprint) -> Rotation {
            Rotation(family: family, presentedRefreshID: presented, presentedDigest: digest, fingerprint: fingerprint, newRefreshID: new,
                     newRefreshExpiresAt: clock.now() + 60, sealedCandidate: new.bytes)
        }

        func touch(_ key: SessionKey, subject: String = "alice", fingerprint: Digest128? = StoreContractTests.fingerprint, explicit: Bool = false) async throws -> SessionOutcome {
            try await store.touchSession(key, fingerprint: fingerprint, subject: subject, explicit: explicit, on: loop).get()
        }
    }

    @Test(arguments: Kind.allCases)
    func aSessionSlidesGoesIdleAndKnowsWhoItsFor(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let key = SessionKey.random()
        let start = harness.clock.now()
        #expect(try await harness.store.create(harness.session(key), on: harness.loop).get() == .created)
        #expect(try await harness.touch(key) == .active(LoginInfo(subject: "alice", expiresAt: start + 120, maxExpiresAt: start + 300), renewed: false))
        #expect(try await harness.touch(key, fingerprint: Self.other) == .fingerprintMismatch)
        #expect(try await harness.touch(key, subject: "mallory") == .subjectMismatch)
        #expect(try await harness.touch(SessionKey.random()) == .unknown)
        #expect(try await harness.store.checkFamily(key, fingerprint: Self.fingerprint, on: harness.loop).get() == .wrongKind)
        // 61 s in, 59 s remain, under renew-below (60): renewed by renew-by, capped at now + idle.
        try await harness.pass(61)
        #expect(try await harness.touch(key) == .active(LoginInfo(subject: "alice", expiresAt: start + 180, maxExpiresAt: start + 300), renewed: true))
        #expect(try await harness.touch(key) == .active(LoginInfo(subject: "alice", expiresAt: start + 180, maxExpiresAt: start + 300), renewed: false))
        // An explicit renew: now + idle.
        try await harness.pass(10)
        #expect(try await harness.touch(key, explicit: true) == .active(LoginInfo(subject: "alice", expiresAt: start + 191, maxExpiresAt: start + 300), renewed: true))
        // Idle past its expiry: gone idle, and it stays so.
        try await harness.pass(121)
        #expect(try await harness.touch(key) == .idleExpired)
        #expect(try await harness.touch(key, explicit: true) == .idleExpired)
    }

    @Test(arguments: Kind.allCases)
    func aLoginEndsAtItsMaximumLifetime(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let session = SessionKey.random(), family = SessionKey.random()
        #expect(try await harness.store.create(harness.session(session, idle: 120, max: 100), on: harness.loop).get() == .created)
        #expect(try await harness.store.create(harness.family(family, refreshID: .random()), on: harness.loop).get() == .created)
        try await harness.pass(100)
        #expect(try await harness.touch(session) == .maxLifetimeReached)
        try await harness.pass(200)
        #expect(try await harness.store.checkFamily(family, fingerprint: Self.fingerprint, on: harness.loop).get() == .maxLifetimeReached)
    }

    @Test(arguments: Kind.allCases)
    func aRotationIsRepeatedWithinTheWindowAndReusedAfterIt(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let family = SessionKey.random(), first = SessionKey.random(), second = SessionKey.random()
        let digest = Digest128(high: 7, low: 7)
        #expect(try await harness.store.create(harness.family(family, refreshID: first), on: harness.loop).get() == .created)
        guard case .active(let record) = try await harness.store.checkFamily(family, fingerprint: Self.fingerprint, on: harness.loop).get() else {
            Issue.record("the new family is not active"); return
        }
        #expect(record.subject == "alice" && record.currentRefreshID == first)
        #expect(try await harness.store.checkFamily(family, fingerprint: Self.other, on: harness.loop).get() == .fingerprintMismatch)
        #expect(try await harness.store.rotate(harness.rotation(family, presented: first, digest: digest, new: second), on: harness.loop).get() == .rotated)
        // The same refresh token again within the window: the first rotation's pair, whoever signed a new candidate.
        let repeated = try await harness.store.rotate(harness.rotation(family, presented: first, digest: digest, new: .random()), on: harness.loop).get()
        #expect(repeated == .deduplicated(second.bytes))
        #expect(try await harness.store.prepareRotation(family, presentedDigest: digest, fingerprint: Self.fingerprint, on: harness.loop).get()
                == .repeated(second.bytes))
        #expect(try await harness.store.rotate(harness.rotation(family, presented: first, digest: digest, new: .random(), fingerprint: Self.other),
                                               on: harness.loop).get() == .fingerprintMismatch)
        // After the window, the spent token is reuse: the family is revoked.
        try await harness.pass(5, realTimeToo: true)
        #expect(try await harness.store.prepareRotation(family, presentedDigest: digest, fingerprint: Self.fingerprint, on: harness.loop).get()
                == .family(.active(try #require(await Self.active(harness, family)))))
        #expect(try await harness.store.rotate(harness.rotation(family, presented: first, digest: digest, new: .random()), on: harness.loop).get() == .reuseDetected)
        #expect(try await harness.store.checkFamily(family, fingerprint: Self.fingerprint, on: harness.loop).get() == .revoked)
        #expect(try await harness.store.rotate(harness.rotation(family, presented: second, digest: Digest128(high: 8, low: 8), new: .random()),
                                               on: harness.loop).get() == .revoked)
    }

    static func active(_ harness: Harness, _ family: SessionKey) async -> LoginRecord? {
        guard case .active(let record) = try? await harness.store.checkFamily(family, fingerprint: fingerprint, on: harness.loop).get() else { return nil }
        return record
    }

    @Test(arguments: Kind.allCases)
    func revocationsCountWhatTheyEndedAndTheListingShowsThem(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let a = SessionKey.random(), b = SessionKey.random(), c = SessionKey.random()
        #expect(try await harness.store.create(harness.session(a, subject: "ann"), on: harness.loop).get() == .created)
        #expect(try await harness.store.create(harness.family(b, refreshID: .random(), subject: "ann"), on: harness.loop).get() == .created)
        #expect(try await harness.store.create(harness.session(c, subject: "cy"), on: harness.loop).get() == .created)
        #expect(try await harness.store.revoke(.login(a), on: harness.loop).get() == 1)
        #expect(try await harness.store.revoke(.login(a), on: harness.loop).get() == 0, "already revoked")
        #expect(try await harness.store.revoke(.login(.random()), on: harness.loop).get() == nil, "unknown")
        #expect(try await harness.store.revoke(.subject("ann"), on: harness.loop).get() == 1, "the family; the session was revoked before")
        #expect(try await harness.touch(a, subject: "ann") == .revoked)
        #expect(try await harness.store.checkFamily(b, fingerprint: Self.fingerprint, on: harness.loop).get() == .revoked)
        #expect(try await harness.touch(c, subject: "cy") != .revoked)
        let listed = try await harness.store.list(ListQuery(subject: "ann", limit: .max), on: harness.loop).get().logins
        #expect(Set(listed.map(\.key)) == [a, b] && listed.allSatisfy(\.record.revoked))
    }

    @Test(arguments: Kind.allCases)
    func anIdempotentCreateIsRepeatedOrRefusedButNeverDoubled(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let idempotency = NewLogin.Idempotency(key: Digest128(high: 9, low: 9), requestDigest: Digest128(high: 1, low: 1), sealed: [1, 2, 3])
        var first = harness.session(.random(), subject: "ida")
        first.idempotency = idempotency
        #expect(try await harness.store.create(first, on: harness.loop).get() == .created)
        var again = harness.session(.random(), subject: "ida")
        again.idempotency = NewLogin.Idempotency(key: idempotency.key, requestDigest: idempotency.requestDigest, sealed: [4, 5, 6])
        #expect(try await harness.store.create(again, on: harness.loop).get() == .existing([1, 2, 3]))
        var changed = harness.session(.random(), subject: "ida")
        changed.idempotency = NewLogin.Idempotency(key: idempotency.key, requestDigest: Digest128(high: 2, low: 2), sealed: [7])
        #expect(try await harness.store.create(changed, on: harness.loop).get() == .conflict)
        let listed = try await harness.store.list(ListQuery(subject: "ida", limit: .max), on: harness.loop).get().logins
        #expect(listed.map(\.key) == [first.key], "one login for the key")
    }
}
