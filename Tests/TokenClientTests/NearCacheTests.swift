import NIOConcurrencyHelpers
import Testing
@testable import TokenClient
import TokenProtocol

/// A clock the test moves by hand, in Unix seconds.
final class ManualClock: Sendable {
    private let time = NIOLockedValueBox<Double>(1_800_000_000)
    var now: Double { time.withLockedValue { $0 } }
    func set(_ value: Double) { time.withLockedValue { $0 = value } }
}

/// The near cache's rules (proto-spec 12.16), with a manual clock.
@Suite struct NearCacheTests {
    let clock = ManualClock()

    func cache(capacity: Int = 100) -> NearCache {
        let clock = clock
        return NearCache(configuration: NearCacheConfiguration(capacity: capacity, mode: .asDelivered), clock: { clock.now })
    }

    func result(session: String = "s1", subject: String = "ada", until: UInt64? = 1_800_000_060, renewed: Bool = false) -> VerifyResult {
        VerifyResult(mode: .session, subject: subject, sessionID: session, claimsJSON: "{}", expiresAt: 1_800_003_600,
                     tokenExpiresAt: 1_800_086_400, renewed: renewed, cacheableUntil: until)
    }

    static func key(_ token: String, _ fingerprint: [UInt8] = []) -> NearCache.Key { NearCache.Key(token: token, fingerprint: fingerprint) }

    @Test func anAnswerIsReusedUntilCacheableUntilAndNotAfter() {
        let cache = cache()
        cache.insert(Self.key("t"), result(renewed: true), sentAt: cache.generation)
        let hit = cache.lookup(Self.key("t"))
        #expect(hit?.sessionID == "s1")
        #expect(hit?.renewed == false, "a reused answer renews nothing")
        clock.set(1_800_000_059.999)
        #expect(cache.lookup(Self.key("t")) != nil)
        clock.set(1_800_000_060)
        #expect(cache.lookup(Self.key("t")) == nil)
        #expect(cache.statistics.hits == 2 && cache.statistics.misses == 1 && cache.statistics.entries == 0)
    }

    @Test func anAnswerWithoutCacheableUntilIsNotKept() {
        let cache = cache()
        cache.insert(Self.key("t"), result(until: nil), sentAt: cache.generation)
        #expect(cache.lookup(Self.key("t")) == nil)
    }

    @Test func theFingerprintIsPartOfTheKey() {
        let cache = cache()
        cache.insert(Self.key("t", [1]), result(), sentAt: cache.generation)
        #expect(cache.lookup(Self.key("t", [1])) != nil)
        #expect(cache.lookup(Self.key("t", [2])) == nil)
        #expect(cache.lookup(Self.key("t")) == nil)
    }

    /// Rule 2: an invalidation that arrives while the verify is in flight may concern it.
    @Test func aReplyInFlightDuringAnInvalidationIsNotKept() {
        let cache = cache()
        let sent = cache.generation
        cache.apply(.session("other"))
        cache.insert(Self.key("t"), result(), sentAt: sent)
        #expect(cache.lookup(Self.key("t")) == nil)
    }

    @Test func invalidationsDropBySessionBySubjectAndAll() {
        let cache = cache()
        for (token, session, subject) in [("a", "s1", "ada"), ("b", "s2", "ada"), ("c", "s3", "bob"), ("d", "s4", "cy")] {
            cache.insert(Self.key(token), result(session: session, subject: subject), sentAt: cache.generation)
        }
        cache.apply(.session("s3"))
        #expect(cache.lookup(Self.key("c")) == nil && cache.lookup(Self.key("a")) != nil)
        cache.apply(.subject("ada"))
        #expect(cache.lookup(Self.key("a")) == nil && cache.lookup(Self.key("b")) == nil && cache.lookup(Self.key("d")) != nil)
        cache.apply(.flush)
        #expect(cache.lookup(Self.key("d")) == nil)
        #expect(cache.statistics.invalidations == 3 && cache.statistics.flushes == 1)
    }

    /// Subjects compare as bytes: "K" and the Kelvin sign are different subjects.
    @Test func subjectsCompareAsBytes() {
        let cache = cache()
        cache.insert(Self.key("a"), result(subject: "K"), sentAt: cache.generation)
        cache.apply(.subject("\u{212A}"))
        #expect(cache.lookup(Self.key("a")) != nil)
    }

    @Test func theLeastRecentlyUsedAnswerGoesFirst() {
        let cache = cache(capacity: 3)
        for token in ["a", "b", "c"] { cache.insert(Self.key(token), result(session: token), sentAt: cache.generation) }
        #expect(cache.lookup(Self.key("a")) != nil)
        cache.insert(Self.key("d"), result(session: "d"), sentAt: cache.generation)
        #expect(cache.lookup(Self.key("b")) == nil, "b was the least recently used")
        #expect(cache.lookup(Self.key("a")) != nil && cache.lookup(Self.key("c")) != nil && cache.lookup(Self.key("d")) != nil)
        #expect(cache.statistics.entries == 3)
        // Slots freed by removal are reused, and the order holds on.
        cache.apply(.session("c"))
        for token in ["e", "f"] { cache.insert(Self.key(token), result(session: token), sentAt: cache.generation) }
        #expect(cache.statistics.entries == 3)
        #expect(cache.lookup(Self.key("a")) == nil && cache.lookup(Self.key("d")) != nil)
        #expect(cache.lookup(Self.key("e")) != nil && cache.lookup(Self.key("f")) != nil)
    }

    /// Rule 4: a lost tracking connection drops everything, and nothing is cached after it.
    @Test func aLostConnectionDropsEverythingForGood() {
        let cache = cache()
        cache.insert(Self.key("a"), result(), sentAt: cache.generation)
        cache.connectionLost()
        #expect(cache.lookup(Self.key("a")) == nil)
        cache.insert(Self.key("a"), result(), sentAt: cache.generation)
        #expect(cache.lookup(Self.key("a")) == nil)
        #expect(cache.statistics.flushes == 1)
    }
}
