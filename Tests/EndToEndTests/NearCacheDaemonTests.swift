import Foundation
import Testing
import TokenClient
import TokenProtocol
import TestSupport

/// A session issued through `client` and verified twice through `cached`, whose second answer
/// must be local.
func cachedSession(issuedBy client: TokenClient, cachedBy cached: TokenClient) async throws -> IssueResult {
    let login = try await client.issue(IssueRequest(mode: .session, subject: "ada"))
    _ = try await cached.verify(token: login.sessionToken!)
    #expect(try await cached.verify(token: login.sessionToken!).local)
    return login
}

/// The near cache against a real daemon: a revocation acknowledged on one connection is seen by
/// another client's near cache at once, every time (read-your-revocations).
@Suite struct NearCacheDaemonTests {
    static let rounds = 300

    enum Revocation: CaseIterable, Sendable {
        case byToken, bySession, bySubject
    }

    @Test(arguments: Revocation.allCases)
    func anAcknowledgedRevokeIsNeverAnsweredFromTheCache(_ revocation: Revocation) async throws {
        let daemon = try DaemonProcess()
        let revoker = try await daemon.client()
        let cached = try await daemon.cachingClient()
        var stale = 0
        for round in 0..<Self.rounds {
            let subject = "user-\(round)"
            let login = try await revoker.issue(IssueRequest(mode: round.isMultiple(of: 2) ? .session : .pair, subject: subject))
            let token = try #require(login.sessionToken ?? login.accessToken)
            let first = try await cached.verify(token: token)
            let second = try await cached.verify(token: token)
            #expect(!first.local && second.local, "the second verify is answered locally")
            switch revocation {
            case .byToken: try await revoker.revoke(.token(token))
            case .bySession: try await revoker.revoke(.session(login.sessionID))
            case .bySubject: try await revoker.revoke(.subject(subject))
            }
            if await refusal({ try await cached.verify(token: token) }) != .revoked { stale += 1 }
        }
        #expect(stale == 0, "answers given from the cache after their revoke was acknowledged")
        let statistics = try #require(cached.nearCacheStatistics)
        #expect(statistics.hits == UInt64(Self.rounds) && statistics.invalidations >= UInt64(Self.rounds))
        await cached.close()
        await revoker.close()
    }

    /// Reuse detection revokes the family: the cached verify of its access token must go.
    @Test func reuseDetectionReachesTheNearCacheBeforeItsAnswer() async throws {
        let daemon = try DaemonProcess(["--dedup-window", "0"])
        let client = try await daemon.client()
        let cached = try await daemon.cachingClient()
        for round in 0..<50 {
            let pair = try await client.issue(IssueRequest(mode: .pair, subject: "user-\(round)"))
            let rotated = try await client.refresh(token: pair.refreshToken!)
            _ = try await cached.verify(token: rotated.accessToken!)
            #expect(try await cached.verify(token: rotated.accessToken!).local)
            #expect(await refusal { try await client.refresh(token: pair.refreshToken!) } == .reuseDetected)
            #expect(await refusal { try await cached.verify(token: rotated.accessToken!) } == .revoked)
        }
        await cached.close()
        await client.close()
    }

    /// Rule 4: once the daemon is gone, nothing is answered from the cache.
    @Test func aLostTrackingConnectionAnswersNothingLocally() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let cached = try await daemon.cachingClient()
        let login = try await cachedSession(issuedBy: client, cachedBy: cached)
        _ = daemon.stop()
        await #expect(throws: TokenClientError.self) { try await cached.verify(token: login.sessionToken!) }
        #expect(cached.nearCacheStatistics?.entries == 0)
    }

    /// A tracking client that never reads its invalidations holds up no one's revoke: once its
    /// socket cannot take a frame at once, the daemon closes it (and its client, reading at
    /// last, sees the end and drops its cache).
    @Test func aClientThatLeavesItsInvalidationsUnreadHoldsUpNoRevoke() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let idle = try RawConnection(daemon.socketPath)
        idle.send(Request(opcode: .track, id: 1))
        var slowest = Duration.zero
        // A Unix socket takes a few hundred small frames before it is full.
        for round in 0..<3000 {
            let login = try await client.issue(IssueRequest(mode: .session, subject: "user-\(round)"))
            let started = ContinuousClock.now
            #expect(try await client.revoke(.session(login.sessionID)) == 1)
            slowest = max(slowest, ContinuousClock.now - started)
        }
        #expect(slowest < .milliseconds(900), "a revoke waited \(slowest) for a client that does not read")
        let stats = Dictionary(uniqueKeysWithValues: try await client.stats().map { ($0.name, $0.value) })
        #expect(stats["tracking_connections"] == 0, "the client that does not read was closed")
        #expect((stats["invalidations_pushed"] ?? 0) > 100, "pushed while it was there")
        // What it was sent before the close is there to read, then the end.
        var frames = 0
        while let response = try idle.readResponse() { frames += 1; _ = response }
        #expect(frames > 1 && frames < 3001, "the track reply and the invalidations the socket took: \(frames)")
        await client.close()
    }

    /// A near cache left idle while its tracking socket filled up (and the daemon closed it)
    /// drops what it held, makes a new tracking connection and caches again.
    @Test func aNearCacheWhoseTrackingSocketWasClosedStartsAfresh() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let cached = try await daemon.cachingClient()
        let login = try await cachedSession(issuedBy: client, cachedBy: cached)
        for round in 0..<2000 {
            let other = try await client.issue(IssueRequest(mode: .session, subject: "user-\(round)"))
            try await client.revoke(.session(other.sessionID))
        }
        let tracking = try await client.stats().first { $0.name == "tracking_connections" }?.value
        #expect(tracking == 1, "the side connection, never read, was closed; the main one reads")
        let afterLoss = try await cached.verify(token: login.sessionToken!)
        #expect(!afterLoss.local, "the cache was dropped with its tracking connection")
        #expect(try await cached.verify(token: login.sessionToken!).local, "and caches again on the new one")
        #expect((cached.nearCacheStatistics?.flushes ?? 0) >= 1)
        await cached.close()
        await client.close()
    }

    /// Without a near cache nothing changes on the wire: no answer carries cacheable_until.
    @Test func aClientWithoutANearCacheIsGrantedNothing() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let login = try await client.issue(IssueRequest(mode: .session, subject: "ada"))
        let outcome = try await client.verify(token: login.sessionToken!)
        #expect(outcome.result.cacheableUntil == nil && !outcome.local)
        #expect(client.nearCacheStatistics == nil)
    }
}

/// Two daemons on one Redis: a revocation acknowledged on one reaches the near caches of the
/// other's clients through Redis (published by the same script that revokes), and while that
/// way is down the other flushes them and grants nothing.
@Suite(.serialized, .enabled(if: RedisServer.installed, "redis-server is not installed (tools/test installs it)"))
struct NearCacheSharedStoreTests {
    /// Verifies through `client` until an answer is cacheable: the daemon grants none until
    /// its subscription to Redis is up.
    static func waitUntilGranted(_ client: TokenClient, token: String) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if try await client.verify(token: token).result.cacheableUntil != nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DaemonError("the daemon granted no cacheable answer within 5 s")
    }

    @Test(arguments: SharedStore.Kind.allCases)
    func aRevokeOnOneHostEmptiesAnotherHostsNearCacheWithin100Milliseconds(kind: SharedStore.Kind) async throws {
        let store = try SharedStore(kind, daemons: 2)
        let clients = try await store.clients()
        let (a, b) = (clients[0], clients[1])
        let cached = try await store.daemons[0].cachingClient()
        let warmup = try await a.issue(IssueRequest(mode: .session, subject: "warmup"))
        try await Self.waitUntilGranted(cached, token: warmup.sessionToken!)
        var slowest = Duration.zero
        for round in 0..<20 {
            let login = try await b.issue(IssueRequest(mode: .session, subject: "user-\(round)"))
            let token = login.sessionToken!
            _ = try await cached.verify(token: token)
            #expect(try await cached.verify(token: token).local)
            #expect(try await b.revoke(.session(login.sessionID)) == 1)
            let acknowledged = ContinuousClock.now
            while await refusal({ try await cached.verify(token: token) }) != .revoked {
                guard ContinuousClock.now - acknowledged < .seconds(2) else { break }
                try await Task.sleep(for: .milliseconds(1))
            }
            slowest = max(slowest, ContinuousClock.now - acknowledged)
        }
        #expect(slowest < .milliseconds(100), "the slowest revocation took \(slowest) to reach the other host's near cache")
    }

    @Test func aRedisOutageFlushesTheNearCaches() async throws {
        let store = try SharedStore(.single, daemons: 1)
        let client = try await store.daemons[0].client()
        let cached = try await store.daemons[0].cachingClient()
        let login = try await client.issue(IssueRequest(mode: .session, subject: "ada"))
        try await Self.waitUntilGranted(cached, token: login.sessionToken!)
        #expect(try await cached.verify(token: login.sessionToken!).local)
        store.server!.stop(kill: true)
        let stopped = ContinuousClock.now
        var answeredLocally = true
        while ContinuousClock.now - stopped < .seconds(2) {
            // While Redis is down, any answer but a local one (store_unavailable) shows the flush.
            answeredLocally = (try? await cached.verify(token: login.sessionToken!))?.local ?? false
            if !answeredLocally { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(!answeredLocally, "the near cache still answered 2 s after Redis went down")
        #expect((cached.nearCacheStatistics?.flushes ?? 0) >= 1)
    }
}
