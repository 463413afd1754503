import NIOCore
import NIOEmbedded
import Testing
@testable import TokenClient
import TokenProtocol

/// The client's response routing on an `EmbeddedChannel`: requests out, frames in.
@Suite struct ResponseRouterTests {
    let channel = EmbeddedChannel()
    let cache = NearCache(configuration: NearCacheConfiguration(mode: .asDelivered), clock: { 1_800_000_000 })

    init() throws {
        try channel.pipeline.syncOperations.addHandler(ResponseRouter(nearCache: cache))
    }

    func send(_ opcode: Opcode) throws -> (id: UInt32, future: EventLoopFuture<Response>) {
        let promise = channel.eventLoop.makePromise(of: Response.self)
        try channel.writeOutbound(PendingRequest(request: Request(opcode: opcode, id: 0), promise: promise))
        var frame = try #require(try channel.readOutbound(as: ByteBuffer.self))
        _ = frame.readInteger(as: UInt32.self)
        let request = try Request(body: frame)
        return (request.id, promise.futureResult)
    }

    func receive(_ response: Response) throws {
        var body = ByteBuffer()
        body.writeFrame(response)
        body.moveReaderIndex(forwardBy: 4)
        try channel.writeInbound(body)
    }

    @Test func answersReachTheirRequestsInAnyOrder() throws {
        let first = try send(.ping), second = try send(.stats)
        #expect(first.id != second.id && first.id != 0 && second.id != 0)
        try receive(Response(opcode: .stats, id: second.id, status: .ok))
        try receive(Response(opcode: .ping, id: first.id, status: .ok))
        #expect(try second.future.wait().opcode == .stats)
        #expect(try first.future.wait().opcode == .ping)
    }

    @Test func anInvalidationFrameGoesToTheNearCacheAndAnswersNoRequest() throws {
        cache.insert(NearCache.Key(token: "t", fingerprint: []), VerifyResult(mode: .session, subject: "ada", sessionID: "s1", claimsJSON: "{}",
                     expiresAt: 1, tokenExpiresAt: 1, renewed: false, cacheableUntil: 1_800_000_100), sentAt: cache.generation)
        let pending = try send(.verify)
        try receive(Invalidation.session("s1").frame)
        #expect(cache.statistics.invalidations == 1 && cache.statistics.entries == 0)
        // The request in flight still waits for its own answer.
        try receive(Response(opcode: .verify, id: pending.id, status: .revoked))
        #expect(try pending.future.wait().status == .revoked)
    }

    @Test func theConnectionsEndFailsWhatWaitsAndDropsTheCache() throws {
        let pending = try send(.ping)
        try channel.close().wait()
        #expect(throws: TokenClientError.self) { try pending.future.wait() }
        #expect(cache.statistics.flushes == 1)
    }
}
