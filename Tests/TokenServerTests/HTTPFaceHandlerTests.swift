import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import TokenServer
import TokenProtocol

/// The HTTP face's connection handling, on an `EmbeddedChannel`: bytes in, bytes out.
@Suite struct HTTPFaceHandlerTests {
    let fixture: ServiceFixture
    let channel: EmbeddedChannel

    init() throws {
        fixture = try ServiceFixture()
        var http = HTTPFaceConfiguration()
        http.listen = [.unix(path: "unused")]
        channel = EmbeddedChannel(loop: fixture.loop)
        // The daemon's own pipeline, idle timeout included.
        try HTTPFaceServer.configure(channel.pipeline.syncOperations, face: HTTPFace(service: fixture.service, configuration: http),
                                     peer: .loopback, metrics: fixture.service.metrics, idleTimeout: .seconds(60))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_000)).wait()
    }

    /// Sends raw bytes; returns everything written back.
    /// `tolerant`: NIO's HTTP decoder may raise an error at bytes it refuses (after a closing
    /// request) or at a close mid-message; what was written back is what counts.
    func exchange(_ text: String, tolerant: Bool = false) throws -> String {
        #expect(channel.isActive, "open before the exchange")
        if tolerant {
            try? channel.writeInbound(ByteBuffer(string: text))
        } else {
            try channel.writeInbound(ByteBuffer(string: text))
        }
        fixture.loop.run()
        var out = ""
        while var buffer = tolerant ? (try? channel.readOutbound(as: ByteBuffer.self)) ?? nil : try channel.readOutbound(as: ByteBuffer.self) {
            out += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return out
    }

    @Test func pipelinedRequestsAreAnsweredInOrderOnOneConnection() throws {
        let out = try exchange("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: t\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        let statuses = out.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.components(separatedBy: "\r\n")[0] }
        #expect(statuses == ["200 OK", "404 Not Found", "200 OK"])
        #expect(out.components(separatedBy: "ok\n").count == 2, "the HEAD answer has no body")
        #expect(channel.isActive)
        #expect(fixture.service.metrics.registry.emitToString().contains(#"tokend_http_requests_total{route="healthz",code="200"} 2"#))
    }

    @Test func connectionCloseIsHonoured() throws {
        let out = try exchange("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(out.hasPrefix("HTTP/1.1 200 OK") && out.contains("Connection: close"))
        #expect(!channel.isActive)
    }

    @Test func anOversizedHeadIs431AndCloses() throws {
        let big = String(repeating: "a", count: HTTPFaceConfiguration.maximumHeadBytes)
        let out = try exchange("GET /auth HTTP/1.1\r\nHost: t\r\nX-Big: \(big)\r\n\r\n")
        #expect(out.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large"))
        #expect(!channel.isActive)
    }

    @Test func anOversizedBodyIs413AndCloses() throws {
        // Declared too large: refused from the head, before any of the body arrives.
        let declared = try exchange("POST /introspect HTTP/1.1\r\nHost: t\r\nContent-Length: \(HTTPFaceConfiguration.maximumBodyBytes + 1)\r\n\r\n", tolerant: true)
        #expect(declared.hasPrefix("HTTP/1.1 413 Payload Too Large"))
        #expect(!channel.isActive)
        #expect(fixture.service.metrics.registry.emitToString().contains(#"tokend_http_requests_total{route="introspect",code="413"} 1"#))
    }

    @Test func aChunkedBodyTooLargeIs413() throws {
        let chunk = String(repeating: "t", count: 10_000)
        let hex = String(chunk.utf8.count, radix: 16)
        let out = try exchange("POST /introspect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\(hex)\r\n\(chunk)\r\n\(hex)\r\n\(chunk)\r\n0\r\n\r\n")
        #expect(out.hasPrefix("HTTP/1.1 413 Payload Too Large"))
        #expect(!channel.isActive)
    }

    /// Half a request holds no connection: a peer silent for the idle timeout mid-request is
    /// closed, and a request must arrive whole within ten seconds of its head.
    @Test func halfARequestIsClosedOnIdleAndAfterTheRequestDeadline() throws {
        #expect(try exchange("POST /introspect HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n").isEmpty)
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        fixture.loop.run()
        #expect(!channel.isActive, "closed on idle while the body was awaited")

        let other = try HTTPFaceHandlerTests()
        #expect(try other.exchange("POST /introspect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ntoken\r\n").isEmpty)
        other.fixture.loop.advanceTime(by: .seconds(9))
        #expect(other.channel.isActive)
        other.fixture.loop.advanceTime(by: .seconds(1))
        #expect(!other.channel.isActive, "closed at the request deadline, however slowly it trickles")
    }

    @Test func nothingIsAnsweredAfterAConnectionsLastAnswer() throws {
        let out = try exchange("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", tolerant: true)
        #expect(out.components(separatedBy: "HTTP/1.1 200 OK").count == 2, "one answer: \(out)")
        #expect(!channel.isActive)
    }

    @Test func shutdownClosesAnIdleConnection() throws {
        _ = try exchange("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        channel.pipeline.fireUserInboundEventTriggered(ShutdownEvent())
        fixture.loop.run()
        #expect(!channel.isActive)
    }
}

