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
/// itself forgets an idempotent issue's dedup entry when its window has passed in real time
/// (`PX`); a case that waits out such a window also waits for it in real time (`Harness.pass`).
/// A rotation's entry carries its own times, which the scripts compare with the daemon's clock.
@Suite(.serialized, .enabled(if: RedisServer.installed, "redis-server is not installed (tools/test installs it); the contract is proven on both stores or not at all"))
struct StoreContractTests {
    enum Kind: String, CaseIterable, CustomStringConvertible, Sendable {
        case embedded, redis
        var description: String { rawValue }
    }

    /// A dedup window long enough that the repeats inside it come in time on a busy machine
    /// (Redis counts it in real time).
    static let policy = RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindowMilliseconds: 4000, tombstoneGrace: 3600)
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

        /// The rotation entries held, and how many milliseconds the longest-kept has left (Redis:
        /// its key's PTTL; embedded: by the manual clock).
        func rotationEntries() async throws -> (count: Int, longest: Int64) {
            if let server {
                let client = RedisClient(configuration: try RedisClient.Configuration(endpoint: RedisEndpoint(url: server.unixURL)),
                                         logger: Logger(label: "test"))
                defer { client.close() }
                let keys = try await client.send(RedisCommand("KEYS", "*:r:*"), key: nil, on: loop).get().array?.compactMap(\.bytes) ?? []
                var longest: Int64 = 0
                for key in keys {
                    longest = max(longest, try await client.send(RedisCommand("PTTL", .bytes(key)), key: key, on: loop).get().integer ?? 0)
                }
                return (keys.count, longest)
            }
            let embedded = store as! EmbeddedStore
            embedded.sweep()
            return (try await embedded.statistics(on: loop).get().dedupEntries ?? -1, -1)
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

        func create(_ login: NewLogin) async throws -> CreateOutcome {
            try await store.create(login, on: loop).get()
        }

        /// Presents refresh token `presented` (by its id, digest and generation) for a new pair
        /// whose refresh token is `new` (the sealed pair is its bytes).
        func rotate(_ family: SessionKey, presented: SessionKey, digest: Digest128, generation: Int64? = 0, new: SessionKey,
                    fingerprint: Digest128? = StoreContractTests.fingerprint) async throws -> RotationOutcome {
            let rotation = Rotation(family: family, presented: PresentedRefresh(id: presented, digest: digest, generation: generation), fingerprint: fingerprint,
                                    newRefreshID: new, newRefreshExpiresAt: clock.now() + 60, sealedCandidate: new.bytes)
            return try await store.rotate(rotation, on: loop).get()
        }

        func check(_ family: SessionKey, fingerprint: Digest128? = StoreContractTests.fingerprint, generation: Int64? = nil) async throws -> FamilyOutcome {
            try await store.checkFamily(family, fingerprint: fingerprint, generation: generation, on: loop).get()
        }

        func prepare(_ family: SessionKey, presented: SessionKey, digest: Digest128, generation: Int64? = 0) async throws -> RotationCheck {
            try await store.prepareRotation(family, presented: PresentedRefresh(id: presented, digest: digest, generation: generation),
                                            fingerprint: StoreContractTests.fingerprint, on: loop).get()
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
        #expect(try await harness.create(harness.session(key)) == .created)
        #expect(try await harness.touch(key) == .active(LoginInfo(subject: "alice", expiresAt: start + 120, maxExpiresAt: start + 300), renewed: false))
        #expect(try await harness.touch(key, fingerprint: Self.other) == .fingerprintMismatch)
        #expect(try await harness.touch(key, subject: "mallory") == .subjectMismatch)
        #expect(try await harness.touch(SessionKey.random()) == .unknown)
        #expect(try await harness.check(key, fingerprint: Self.fingerprint) == .wrongKind)
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
        #expect(try await harness.create(harness.session(session, idle: 120, max: 100)) == .created)
        #expect(try await harness.create(harness.family(family, refreshID: .random())) == .created)
        try await harness.pass(100)
        #expect(try await harness.touch(session) == .maxLifetimeReached)
        try await harness.pass(200)
        #expect(try await harness.check(family, fingerprint: Self.fingerprint) == .maxLifetimeReached)
    }

    @Test(arguments: Kind.allCases)
    func aRotationIsRepeatedWithinTheWindowRecoveredWhileUnusedAndReusedAfter(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let family = SessionKey.random(), first = SessionKey.random(), second = SessionKey.random()
        let digest = Digest128(high: 7, low: 7)
        #expect(try await harness.create(harness.family(family, refreshID: first)) == .created)
        guard case .active(let record) = try await harness.check(family) else {
            Issue.record("the new family is not active"); return
        }
        #expect(record.subject == "alice" && record.currentRefreshID == first && record.generation == 0 && !record.generationUsed)
        #expect(try await harness.check(family, fingerprint: Self.other) == .fingerprintMismatch)
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: second) == .rotated)
        // The same refresh token again within the window: the first rotation's pair, whoever signed a new candidate.
        let repeated = try await harness.rotate(family, presented: first, digest: digest, new: .random())
        #expect(repeated == .deduplicated(second.bytes))
        #expect(try await harness.prepare(family, presented: first, digest: digest) == .repeated(second.bytes))
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: .random(), fingerprint: Self.other) == .fingerprintMismatch)
        // After the window, while the new pair is unused: a lost response, the same pair again.
        try await harness.pass(5)
        #expect(try await harness.prepare(family, presented: first, digest: digest) == .repeated(second.bytes))
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: .random())
                == .deduplicated(second.bytes))
        // An older generation's access token marks nothing; the new pair's marks it used.
        guard case .active(let unmarked) = try await harness.check(family, generation: 0) else { Issue.record("not active"); return }
        #expect(!unmarked.generationUsed)
        #expect(try await Self.active(harness, family)?.generationUsed == false)
        guard case .active(let marked) = try await harness.check(family, generation: 1) else { Issue.record("not active"); return }
        #expect(marked.generation == 1 && marked.generationUsed)
        #expect(try await Self.active(harness, family)?.generationUsed == true, "the mark is kept")
        // Then the spent token is reuse: the family is revoked.
        #expect(try await harness.prepare(family, presented: first, digest: digest) == .family(.active(try #require(await Self.active(harness, family)))))
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: .random()) == .reuseDetected)
        #expect(try await harness.check(family) == .revoked)
        #expect(try await harness.rotate(family, presented: second, digest: Digest128(high: 8, low: 8), generation: 1, new: .random()) == .revoked)
    }

    /// The window is counted in milliseconds from the rotation (made 250 ms into a second
    /// here): a used pair still goes back 1 ms before it ends, and not at its end.
    @Test(arguments: Kind.allCases)
    func theWindowCountsMilliseconds(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let family = SessionKey.random(), first = SessionKey.random(), second = SessionKey.random()
        let digest = Digest128(high: 7, low: 2)
        #expect(try await harness.create(harness.family(family, refreshID: first)) == .created)
        harness.clock.advance(milliseconds: 250)
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: second) == .rotated)
        guard case .active(let used) = try await harness.check(family, generation: 1), used.generationUsed else { Issue.record("not marked"); return }
        harness.clock.advance(milliseconds: 3999)
        #expect(try await harness.prepare(family, presented: first, digest: digest) == .repeated(second.bytes), "1 ms before the window ends")
        harness.clock.advance(milliseconds: 1)
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: .random()) == .reuseDetected,
                "the pair was used: at the window's end a repeat is reuse")
    }

    /// The grace (the family's access TTL, 30 s here) ends: a retry is reuse even unused.
    /// After the window another fingerprint gets nothing while the pair is unused, and cannot
    /// hide a reuse once it was used.
    @Test(arguments: Kind.allCases)
    func theGraceEndsAndAnotherFingerprintHidesNoReuse(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let family = SessionKey.random(), first = SessionKey.random(), second = SessionKey.random()
        let digest = Digest128(high: 7, low: 1)
        var unbound = harness.family(family, refreshID: first)
        unbound.record.fingerprint = nil
        #expect(try await harness.create(unbound) == .created)
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: second) == .rotated)
        harness.clock.advance(milliseconds: 29_999)
        #expect(try await harness.prepare(family, presented: first, digest: digest) == .repeated(second.bytes), "1 ms before the grace ends")
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: .random(), fingerprint: Self.other) == .fingerprintMismatch, "another fingerprint, the pair unused")
        harness.clock.advance(milliseconds: 1)
        #expect(try await harness.rotate(family, presented: first, digest: digest, new: .random()) == .reuseDetected)

        let other = SessionKey.random()
        var second2 = harness.family(other, refreshID: first)
        second2.record.fingerprint = nil
        #expect(try await harness.create(second2) == .created)
        #expect(try await harness.rotate(other, presented: first, digest: digest, new: second) == .rotated)
        harness.clock.advance(milliseconds: 5000)
        guard case .active = try await harness.check(other, fingerprint: nil, generation: 1) else { Issue.record("not active"); return }
        #expect(try await harness.rotate(other, presented: first, digest: digest, new: .random(), fingerprint: Self.other) == .reuseDetected, "a used pair: reuse, whatever the fingerprint")
    }

    /// The new pair refreshed is the new pair used; a token of another generation than the
    /// family's is not its current one.
    @Test(arguments: Kind.allCases)
    func generationsDecideWhatIsCurrent(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let family = SessionKey.random(), first = SessionKey.random(), second = SessionKey.random(), third = SessionKey.random()
        let d1 = Digest128(high: 5, low: 1), d2 = Digest128(high: 5, low: 2)
        #expect(try await harness.create(harness.family(family, refreshID: first)) == .created)
        #expect(try await harness.rotate(family, presented: first, digest: d1, generation: 3, new: second)
                == .reuseDetected, "generation 3 of a family at 0")
        let other = SessionKey.random()
        #expect(try await harness.create(harness.family(other, refreshID: first)) == .created)
        #expect(try await harness.rotate(other, presented: first, digest: d1, new: second) == .rotated)
        #expect(try await harness.rotate(other, presented: second, digest: d2, generation: 1, new: third) == .rotated)
        #expect(try await Self.active(harness, other)?.generation == 2)
        #expect(try await harness.rotate(other, presented: first, digest: d1, new: .random())
                == .deduplicated(second.bytes), "within the window, whatever happened since")
        try await harness.pass(5)
        #expect(try await harness.rotate(other, presented: first, digest: d1, new: .random())
                == .reuseDetected, "its successor was refreshed")
    }

    /// A family holds one entry for the grace, however often it is refreshed: once it rotates
    /// again, or its pair is used, an entry is kept for its window only (the rules answer the
    /// same without it afterwards, as the model test checks).
    @Test(arguments: Kind.allCases)
    func aFamilyHoldsOneEntryForTheGrace(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let family = SessionKey.random(), ids = (0..<4).map { _ in SessionKey.random() }
        #expect(try await harness.create(harness.family(family, refreshID: ids[0])) == .created)
        for generation in 0..<2 {
            #expect(try await harness.rotate(family, presented: ids[generation], digest: Digest128(high: 3, low: UInt64(generation)),
                                                                    generation: Int64(generation), new: ids[generation + 1]) == .rotated)
            try await harness.pass(5)
        }
        #expect(try await harness.rotationEntries().count == 1, "the first rotation's entry went with the second rotation")
        if kind == .redis { #expect(try await harness.rotationEntries().longest > 20_000, "the latest is kept for the grace") }
        guard case .active(let used) = try await harness.check(family, generation: 2), used.generationUsed else { Issue.record("not marked"); return }
        #expect(try await harness.rotationEntries().count == 0, "its pair used after its window: the latest went too")
        // Within its window an entry stays, used or not.
        #expect(try await harness.rotate(family, presented: ids[2], digest: Digest128(high: 3, low: 2), generation: 2, new: ids[3]) == .rotated)
        guard case .active = try await harness.check(family, generation: 3) else { Issue.record("not active"); return }
        let held = try await harness.rotationEntries()
        #expect(held.count == 1)
        if kind == .redis { #expect(held.longest > 0 && held.longest <= 4000, "kept for its window only: \(held.longest) ms") }
        #expect(try await harness.prepare(family, presented: ids[2], digest: Digest128(high: 3, low: 2), generation: 2) == .repeated(ids[3].bytes))
    }

    static func active(_ harness: Harness, _ family: SessionKey) async -> LoginRecord? {
        guard case .active(let record) = try? await harness.check(family, fingerprint: fingerprint) else { return nil }
        return record
    }

    @Test(arguments: Kind.allCases)
    func revocationsCountWhatTheyEndedAndTheListingShowsThem(_ kind: Kind) async throws {
        let harness = try Harness(kind)
        let a = SessionKey.random(), b = SessionKey.random(), c = SessionKey.random()
        #expect(try await harness.create(harness.session(a, subject: "ann")) == .created)
        #expect(try await harness.create(harness.family(b, refreshID: .random(), subject: "ann")) == .created)
        #expect(try await harness.create(harness.session(c, subject: "cy")) == .created)
        #expect(try await harness.store.revoke(.login(a), on: harness.loop).get() == 1)
        #expect(try await harness.store.revoke(.login(a), on: harness.loop).get() == 0, "already revoked")
        #expect(try await harness.store.revoke(.login(.random()), on: harness.loop).get() == nil, "unknown")
        #expect(try await harness.store.revoke(.subject("ann"), on: harness.loop).get() == 1, "the family; the session was revoked before")
        #expect(try await harness.touch(a, subject: "ann") == .revoked)
        #expect(try await harness.check(b, fingerprint: Self.fingerprint) == .revoked)
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
        #expect(try await harness.create(first) == .created)
        var again = harness.session(.random(), subject: "ida")
        again.idempotency = NewLogin.Idempotency(key: idempotency.key, requestDigest: idempotency.requestDigest, sealed: [4, 5, 6])
        #expect(try await harness.create(again) == .existing([1, 2, 3]))
        var changed = harness.session(.random(), subject: "ida")
        changed.idempotency = NewLogin.Idempotency(key: idempotency.key, requestDigest: Digest128(high: 2, low: 2), sealed: [7])
        #expect(try await harness.create(changed) == .conflict)
        let listed = try await harness.store.list(ListQuery(subject: "ida", limit: .max), on: harness.loop).get().logins
        #expect(listed.map(\.key) == [first.key], "one login for the key")
    }
}
