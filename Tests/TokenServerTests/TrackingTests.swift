import Logging
import NIOCore
import NIOEmbedded
import Testing
@testable import TokenServer
import TokenProtocol

/// `track` and the invalidations pushed to tracking connections (proto-spec 12.16, 12.17), on
/// `EmbeddedChannel`s with the service core behind them (embedded store, manual clock).
@Suite struct TrackingTests {
    let fixture: ServiceFixture

    init() throws {
        fixture = try ServiceFixture()
    }

    /// A connection of the daemon's own pipeline, on the fixture's loop.
    func connect() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: fixture.loop)
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(FrameDecoder(maximumFrameSize: TokendConfiguration.minimumFrameSize)),
            ConnectionHandler(service: fixture.service, peer: fixture.owner, maxInFlight: 256, logger: Logger(label: "test")),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_000)).wait()
        return channel
    }

    /// Sends `requests` in one read and returns every frame written back, in order.
    func exchange(_ channel: EmbeddedChannel, _ requests: [Request]) throws -> [Response] {
        try channel.writeInbound(ConnectionHandlerTests.frames(requests))
        fixture.loop.run()
        return try Self.written(channel)
    }

    static func written(_ channel: EmbeddedChannel) throws -> [Response] {
        var buffers: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { buffers.append(buffer) }
        return try ConnectionHandlerTests.responses(buffers)
    }

    func tracking() throws -> EmbeddedChannel {
        let channel = try connect()
        let reply = try exchange(channel, [Request(opcode: .track, id: 1)])
        #expect(reply.map(\.status) == [.ok] && reply.first?.fields == Fields())
        return channel
    }

    func verify(_ token: String, on channel: EmbeddedChannel, id: UInt32 = 2) throws -> VerifyResult {
        let replies = try exchange(channel, [Request(opcode: .verify, id: id, fields: TokenRequest(token: token).fields)])
        guard let reply = replies.last, reply.status.isSuccess else { throw FixtureFailure("verify answered \(replies.map(\.status))") }
        return try VerifyResult(fields: reply.fields)
    }

    static func invalidations(_ frames: [Response]) throws -> [Invalidation] {
        try frames.filter(Invalidation.isInvalidation).map { try Invalidation(fields: $0.fields) }
    }

    // MARK: - cacheable_until

    @Test func aSessionVerifyOnATrackingConnectionIsCacheableUntilItWouldRenew() throws {
        let session = try fixture.issue(IssueRequest(mode: .session, subject: "ada"))
        let result = try verify(session.sessionToken!, on: try tracking())
        let renewBelow = fixture.service.configuration.renewBelow
        #expect(!result.renewed)
        #expect(result.cacheableUntil == result.expiresAt - UInt64(renewBelow))
        #expect(result.cacheableUntil! > UInt64(fixture.clock.now()))
    }

    @Test func anUntrackedConnectionIsNeverGrantedACachedAnswer() throws {
        let session = try fixture.issue(IssueRequest(mode: .session, subject: "ada"))
        let result = try verify(session.sessionToken!, on: try connect())
        #expect(result.cacheableUntil == nil)
        let reply = try fixture.call(.verify, TokenRequest(token: session.sessionToken!).fields)
        #expect(reply.status == .ok)
        #expect(try VerifyResult(fields: reply.fields).cacheableUntil == nil)
    }

    /// An idle TTL below renew-below: every verify renews, so no answer may be reused.
    @Test func aSessionThatRenewsOnEveryVerifyIsNeverCacheable() throws {
        let renewBelow = fixture.service.configuration.renewBelow
        let session = try fixture.issue(IssueRequest(mode: .session, subject: "ada", ttl: UInt64(renewBelow / 2)))
        let result = try verify(session.sessionToken!, on: try tracking())
        #expect(result.cacheableUntil == nil)
    }

    /// Near the renewal threshold the reply renews, and is cacheable from the new expiry.
    @Test func aRenewedAnswerIsCacheableFromItsNewExpiry() throws {
        let channel = try tracking()
        let session = try fixture.issue(IssueRequest(mode: .session, subject: "ada"))
        let first = try verify(session.sessionToken!, on: channel)
        fixture.clock.advance(Int64(first.cacheableUntil!) - fixture.clock.now() + 1)
        let renewed = try verify(session.sessionToken!, on: channel, id: 3)
        #expect(renewed.renewed && renewed.expiresAt > first.expiresAt)
        let renewBelow = UInt64(fixture.service.configuration.renewBelow)
        #expect(renewed.cacheableUntil == min(renewed.expiresAt - renewBelow, renewed.tokenExpiresAt))
    }

    @Test func anAccessTokenIsCacheableUntilItsExpiry() throws {
        let pair = try fixture.issue(IssueRequest(mode: .pair, subject: "ada"))
        let result = try verify(pair.accessToken!, on: try tracking())
        #expect(result.cacheableUntil == result.tokenExpiresAt && result.tokenExpiresAt == pair.expiresAt)
    }

    @Test func refusalsAreNeverCacheable() throws {
        let channel = try tracking()
        let session = try fixture.issue(IssueRequest(mode: .session, subject: "ada"))
        #expect(try fixture.call(.revoke, RevokeRequest.token(session.sessionToken!).fields).status == .ok)
        _ = try Self.written(channel)
        let replies = try exchange(channel, [Request(opcode: .verify, id: 5, fields: TokenRequest(token: session.sessionToken!).fields)])
        #expect(replies.map(\.status) == [.revoked])
        #expect(try replies[0].fields.uint64(.cacheableUntil) == nil)
    }

    // MARK: - invalidations

    /// The revoker's own tracking connection gets the frame before the revoke's reply, and every
    /// other tracking connection gets it too; a connection that does not track gets nothing.
    @Test func aRevokeIsPushedToEveryTrackingConnectionBeforeItIsAcknowledged() throws {
        let revoker = try tracking()
        let other = try tracking()
        let bystander = try connect()
        let session = try fixture.issue(IssueRequest(mode: .session, subject: "ada"))
        let frames = try exchange(revoker, [Request(opcode: .revoke, id: 7, fields: RevokeRequest.session(session.sessionID).fields)])
        #expect(frames.map(\.opcode) == [.invalidate, .revoke], "the invalidation first, then the acknowledgement")
        #expect(try Self.invalidations(frames) == [.session(session.sessionID)])
        #expect(frames.first.map { $0.id == 0 && $0.status == .ok } == true)
        #expect(try Self.invalidations(Self.written(other)) == [.session(session.sessionID)])
        #expect(try Self.written(bystander).isEmpty)
    }

    @Test func eachKindOfRevocationSaysWhatToDrop() throws {
        let channel = try tracking()
        let byToken = try fixture.issue(IssueRequest(mode: .session, subject: "ada"))
        let bySubject = try fixture.issue(IssueRequest(mode: .pair, subject: "bo b"))
        #expect(try fixture.call(.revoke, RevokeRequest.token(byToken.sessionToken!).fields).status == .ok)
        #expect(try fixture.call(.revoke, RevokeRequest.subject("bo b").fields).status == .ok)
        #expect(try fixture.call(.keysReload, Fields()).status == .ok)
        #expect(try Self.invalidations(Self.written(channel)) == [.session(byToken.sessionID), .subject("bo b"), .flush])
        _ = bySubject
    }

    /// Reuse detection revokes the family: its near-cached access tokens must go too.
    @Test func reuseDetectionIsPushedBeforeItsAnswer() throws {
        let channel = try tracking()
        let pair = try fixture.issue(IssueRequest(mode: .pair, subject: "ada"))
        let refresh = TokenRequest(token: pair.refreshToken!)
        let rotated = try IssueResult(fields: fixture.call(.refresh, refresh.fields).fields)
        fixture.clock.advance(milliseconds: fixture.service.configuration.dedupWindowMilliseconds + 1000)
        // The new pair used, the spent token is no lost-response retry any more.
        #expect(try fixture.call(.verify, TokenRequest(token: rotated.accessToken!).fields).status == .ok)
        let frames = try exchange(channel, [Request(opcode: .refresh, id: 9, fields: refresh.fields)])
        #expect(frames.map(\.opcode) == [.invalidate, .refresh])
        #expect(frames.last?.status == .reuseDetected)
        #expect(try Self.invalidations(frames) == [.session(pair.sessionID)])
    }

    @Test func statsCountTrackingConnectionsAndPushes() throws {
        let channel = try tracking()
        _ = try tracking()
        let session = try fixture.issue(IssueRequest(mode: .session, subject: "ada"))
        #expect(try fixture.call(.revoke, RevokeRequest.session(session.sessionID).fields).status == .ok)
        #expect(try fixture.call(.keysReload, Fields()).status == .ok)
        var stats = try Dictionary(uniqueKeysWithValues: Statistic.list(fixture.call(.stats, Fields()).fields).map { ($0.name, $0.value) })
        #expect(stats["tracking_connections"] == 2 && stats["invalidations_pushed"] == 2 && stats["invalidation_flushes"] == 1)
        try channel.close().wait()
        stats = try Dictionary(uniqueKeysWithValues: Statistic.list(fixture.call(.stats, Fields()).fields).map { ($0.name, $0.value) })
        #expect(stats["tracking_connections"] == 1)
        let metrics = try fixture.call(.metrics, Fields()).fields.string(.metricsText) ?? ""
        #expect(metrics.contains("tokend_tracking_connections 1") && metrics.contains("tokend_invalidations_pushed_total 2"))
    }

    @Test func anInvalidateOpcodeFromAClientIsUnknown() throws {
        let replies = try exchange(try connect(), [Request(opcode: .invalidate, id: 4)])
        #expect(replies.map(\.status) == [.unknownOperation] && replies.map(\.id) == [4])
    }
}
