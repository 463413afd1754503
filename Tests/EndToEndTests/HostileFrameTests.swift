import Foundation
import NIOCore
import Testing
import TokenClient
import TokenProtocol

/// Malformed and hostile frames get a documented reply or a close, and never disturb the
/// daemon's other clients.
@Suite struct HostileFrameTests {
    @Test func eachBadFrameGetsAnErrorOrACloseWhileAnotherClientIsServed() async throws {
        let daemon = try DaemonProcess(["--max-frame-size", "32768"])
        let bystander = try await daemon.client()
        try await bystander.ping()

        // Garbage that happens to frame as a short body: bad_request, connection stays open.
        let garbage = try RawConnection(daemon.socketPath)
        garbage.send([0, 0, 0, 3, 0xDE, 0xAD, 0xBE])
        let short = try #require(try garbage.readResponse())
        #expect(short.status == .badRequest && short.id == 0)
        garbage.send(Request(opcode: .ping, id: 9))
        #expect(try garbage.readResponse()?.status == .ok)
        try await bystander.ping()

        // Lengths over the limit, up to 2^32-1: too_large, then the daemon closes.
        for length: UInt32 in [32769, 1 << 31, UInt32.max] {
            let connection = try RawConnection(daemon.socketPath)
            connection.send(withUnsafeBytes(of: length.bigEndian) { Array($0) })
            let response = try #require(try connection.readResponse())
            #expect(response.status == .tooLarge)
            #expect(connection.isClosedByPeer())
            try await bystander.ping()
        }

        // Frames of length 0 and 1: bodies too short for a request header.
        let empty = try RawConnection(daemon.socketPath)
        empty.send([0, 0, 0, 0])
        #expect(try empty.readResponse()?.status == .badRequest)
        empty.send([0, 0, 0, 1, 1])
        #expect(try empty.readResponse()?.status == .badRequest)
        // A request header cut short inside a frame that is otherwise well formed.
        empty.send([0, 0, 0, 5, 1, Opcode.ping.rawValue, 0, 0, 0])
        #expect(try empty.readResponse()?.status == .badRequest)
        empty.send(Request(opcode: .ping, id: 3))
        #expect(try empty.readResponse()?.id == 3)

        // Unknown operation and unsupported version: answered by id, connection stays open.
        let strange = try RawConnection(daemon.socketPath)
        strange.send(Request(opcode: Opcode(0x7F), id: 41))
        let unknown = try #require(try strange.readResponse())
        #expect(unknown.status == .unknownOperation && unknown.id == 41)
        strange.send(Request(version: 9, opcode: .ping, id: 42))
        let version = try #require(try strange.readResponse())
        #expect(version.status == .unsupportedVersion && version.id == 42)

        // A field whose length points past the frame, invalid UTF-8, duplicate fields.
        var body = ByteBuffer(bytes: [1, Opcode.verify.rawValue, 0, 0, 0, 43, FieldTag.token.rawValue, 0, 0, 1, 0, 65])
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(body.readableBytes))
        frame.writeBuffer(&body)
        strange.send(Array(frame.readableBytesView))
        #expect(try strange.readResponse()?.status == .badRequest)
        var invalid = Fields()
        invalid.append(.token, bytes: [0xC3, 0x28])
        strange.send(Request(opcode: .verify, id: 44, fields: invalid))
        #expect(try strange.readResponse()?.status == .badRequest)
        var duplicate = TokenRequest(token: "a.b.c").fields
        duplicate.append(.token, string: "d.e.f")
        strange.send(Request(opcode: .verify, id: 45, fields: duplicate))
        #expect(try strange.readResponse()?.status == .badRequest)
        // Unknown fields are ignored.
        var future = Fields()
        future.append(FieldTag(250), string: "from a newer client")
        strange.send(Request(opcode: .ping, id: 46, fields: future))
        #expect(try strange.readResponse()?.status == .ok)

        // A truncated frame followed by a hang-up leaves the daemon unbothered: it lets the
        // connection go (its count comes back down), logs no error, and serves the others.
        let counter = try RawConnection(daemon.socketPath)
        let open = try #require(try counter.stats()["connections"])
        let truncated = try RawConnection(daemon.socketPath)
        truncated.send([0, 0, 0, 100, 1, 2, 3])
        // Seen by the daemon (one more connection) before the hang-up.
        #expect(try await Self.poll { try counter.stats()["connections"] == open + 1 }, "the truncated connection was never counted")
        let loggedBefore = daemon.log.utf8.count
        truncated.hangUp()
        #expect(try await Self.poll { try counter.stats()["connections"] == open }, "the daemon kept the hung-up connection")
        #expect(daemon.process.isRunning)
        try await bystander.ping()
        let loggedSince = String(decoding: daemon.log.utf8.dropFirst(loggedBefore), as: UTF8.self)
        #expect(!loggedSince.contains("error"), "\(loggedSince)")

        // A bad token in a well-formed request.
        #expect(await refusal { try await bystander.verify(token: "not-a-token") } == .malformedToken)
        try await bystander.ping()
        await bystander.close()
    }

    @Test func aThousandPipelinedRequestsAllGetAnswers() async throws {
        let daemon = try DaemonProcess()
        let connection = try RawConnection(daemon.socketPath)
        var bytes = ByteBuffer()
        for id in 1...1000 { bytes.writeFrame(Request(opcode: .ping, id: UInt32(id))) }
        connection.send(Array(bytes.readableBytesView))
        var ids = Set<UInt32>()
        for _ in 1...1000 {
            guard let response = try connection.readResponse() else { break }
            #expect(response.status == .ok)
            ids.insert(response.id)
        }
        #expect(ids.count == 1000)
    }

    /// Polls `condition` every 20 ms until it holds or `seconds` pass; whether it held.
    static func poll(seconds: Double = 20, _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        } while Date() < deadline
        return try condition()
    }

    @Test func aClientThatNeverReadsIsHeldBackAndOthersAreServed() async throws {
        let daemon = try DaemonProcess(["--max-in-flight", "8"])
        let greedy = try RawConnection(daemon.socketPath)
        // A thousand stats requests (10 bytes each), whose replies of about 2.5 KB each are far
        // more than the socket and the daemon's output buffer hold.
        var bytes = ByteBuffer()
        for id in 1...1000 { bytes.writeFrame(Request(opcode: .stats, id: UInt32(id))) }
        greedy.send(Array(bytes.readableBytesView))
        // While the greedy client reads nothing, another is served promptly.
        let bystander = try await daemon.client()
        for _ in 0..<20 { try await bystander.ping() }
        // The greedy client's requests are held back: the daemon answers a few and stops (the
        // count of stats replies settles well below 1000). The bystander's own stats calls
        // are counted too, and each reply leaves itself out.
        var answered: [UInt64] = []
        for call in 0..<200 {
            let rows = Dictionary(try await bystander.stats().map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            answered.append(try #require(rows["op.stats"]) - UInt64(call))
            if answered.count >= 10, Set(answered.suffix(10)).count == 1 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let heldAt = try #require(answered.last)
        #expect(Set(answered.suffix(10)).count == 1, "the greedy client's requests kept being answered: \(answered)")
        #expect(heldAt < 500, "\(heldAt) of 1000 answered to a client that reads nothing")
        // Then every one of the thousand is answered, in full.
        var ids = Set<UInt32>()
        while ids.count < 1000, let response = try greedy.readResponse() {
            #expect(response.status == .ok)
            ids.insert(response.id)
        }
        #expect(ids.count == 1000)
        await bystander.close()
    }

    @Test func aFrameSentOneByteAtATimeIsAnsweredAndDelaysNoOne() async throws {
        let daemon = try DaemonProcess()
        let slow = try RawConnection(daemon.socketPath)
        let bystander = try await daemon.client()
        var frame = ByteBuffer()
        frame.writeFrame(Request(opcode: .ping, id: 77))
        for byte in frame.readableBytesView {
            slow.send([byte])
            let started = ContinuousClock.now
            try await bystander.ping()
            #expect(ContinuousClock.now - started < .seconds(1))
            try await Task.sleep(for: .milliseconds(100))
        }
        let response = try #require(try slow.readResponse())
        #expect(response.id == 77 && response.status == .ok)
        await bystander.close()
    }

    @Test func connectionLimitAndIdleTimeout() async throws {
        let daemon = try DaemonProcess(["--max-connections", "3", "--idle-timeout", "1s"])
        // Wait until the daemon has let go of the start-up probe's connection: the first of the
        // three counts itself alone.
        let first = try RawConnection(daemon.socketPath)
        #expect(try await Self.poll { try first.stats()["connections"] == 1 }, "the start-up probe's connection stayed open")
        let held = [first] + (try (0..<2).map { _ in try RawConnection(daemon.socketPath) })
        for connection in held {
            connection.send(Request(opcode: .ping, id: 1))
            #expect(try connection.readResponse()?.status == .ok)
        }
        // The fourth is closed at once.
        let extra = try RawConnection(daemon.socketPath)
        #expect(extra.isClosedByPeer())
        // Silent connections are closed after the idle timeout (within 1.25 of it)...
        let silent = Date()
        for connection in held {
            #expect(connection.isClosedByPeer(wait: .seconds(10)), "an idle connection stayed open")
        }
        #expect(Date().timeIntervalSince(silent) < 5)
        // ...then there is room again (once the daemon has counted the closes).
        var served = false
        let deadline = Date().addingTimeInterval(10)
        while !served, Date() < deadline {
            let later = try RawConnection(daemon.socketPath)
            later.send(Request(opcode: .ping, id: 2))
            served = try later.readResponse()?.status == .ok
            if !served { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(served, "no room after the idle connections closed")
        #expect(daemon.log.contains("connection limit reached"))
    }

    /// Bytes that never complete a request do not hold a connection open past the idle timeout:
    /// a byte every 200 ms of a 1,000-byte frame would take 200 s; the connection closes within
    /// about 1.25 timeouts (the old read timeout, reset by every byte, never fired).
    @Test func aPeerDribblingBytesIsClosedAfterTheIdleTimeout() async throws {
        let daemon = try DaemonProcess(["--idle-timeout", "1s"])
        let dribbler = try RawConnection(daemon.socketPath)
        dribbler.send([0, 0, 0x03, 0xE8, 1, 2, 0, 0, 0, 1])   // a 1,000-byte ping, of which only the header comes
        let started = Date()
        var closedAfter: TimeInterval?
        for _ in 0..<20 {
            dribbler.send([0])
            try await Task.sleep(for: .milliseconds(200))
            if dribbler.isClosedByPeer(wait: .milliseconds(1)) {
                closedAfter = Date().timeIntervalSince(started)
                break
            }
        }
        let after = try #require(closedAfter, "the connection stayed open for 4 s while bytes dribbled in")
        #expect(after < 2.0, "closed after \(after) s")
    }

    @Test func peersOutsideTheRolesAreForbidden() async throws {
        // Neither role for our uid (tests run as root or a developer's uid, never 4242).
        let daemon = try DaemonProcess(["--issue-uids", "4242", "--admin-uids", "4242"])
        let client = try await daemon.client()
        #expect(await refusal { try await client.issue(IssueRequest(mode: .session, subject: "x")) } == .forbidden)
        #expect(await refusal { try await client.stats() } == .forbidden)
        #expect(await refusal { try await client.sessions() } == .forbidden)
        #expect(await refusal { try await client.keysRotate() } == .forbidden)
        #expect(await refusal { try await client.revoke(.subject("x")) } == .forbidden)
        // Anyone may ping, read the JWKS and verify.
        try await client.ping()
        _ = try await client.keysJWKS()
        #expect(await refusal { try await client.verify(token: "x.y.z") } == .malformedToken)
        // A token field over its 8 KiB limit, in a frame the daemon accepts.
        #expect(await refusal { try await client.verify(token: String(repeating: "a", count: 9000)) } == .badRequest)
        await client.close()
    }
}
