import NIOCore
import Testing
import TokenProtocol

@Suite struct FieldsTests {
    @Test func requestRoundTrip() throws {
        let issue = IssueRequest(mode: .pair, subject: "alice", fingerprint: [1, 2, 3], audience: "api", claims: #"{"role":"x"}"#, ttl: 60)
        var buffer = ByteBuffer()
        buffer.writeFrame(Request(opcode: .issue, id: 7, fields: issue.fields))
        #expect(buffer.getInteger(at: 0, as: UInt32.self) == UInt32(buffer.readableBytes - 4))
        buffer.moveReaderIndex(forwardBy: 4)
        let request = try Request(body: buffer)
        #expect(request.opcode == .issue && request.id == 7 && request.version == 1)
        #expect(try IssueRequest(fields: request.fields) == issue)
    }

    @Test func responseRoundTrip() throws {
        let result = VerifyResult(mode: .session, subject: "a", sessionID: "s", claimsJSON: "{}", expiresAt: 5, tokenExpiresAt: 9, renewed: true)
        var buffer = ByteBuffer()
        buffer.writeFrame(Response(opcode: .verify, id: 3, status: .renewed, fields: result.fields))
        buffer.moveReaderIndex(forwardBy: 4)
        let response = try Response(body: buffer)
        #expect(response.status == .renewed && response.id == 3)
        #expect(try VerifyResult(fields: response.fields) == result)
    }

    @Test func unknownFieldsAreSkippedAndDuplicatesRefused() throws {
        var fields = TokenRequest(token: "t").fields
        fields.append(FieldTag(200), string: "from the future")
        #expect(try TokenRequest(fields: fields).token == "t")
        fields.append(.token, string: "again")
        #expect(throws: ProtocolError.self) { try TokenRequest(fields: fields) }
    }

    @Test func malformedFields() throws {
        // A field whose length points past the end of the body.
        var body = ByteBuffer(bytes: [1, 4, 0, 0, 0, 1])
        body.writeBytes([10, 0, 0, 0, 9, 65])
        #expect(throws: RequestError.self) { try Request(body: body) }
        // A truncated header.
        #expect(throws: RequestError.self) { try Request(body: ByteBuffer(bytes: [1, 4, 0])) }
        // Invalid UTF-8 and NUL in text.
        var bad = Fields()
        bad.append(.token, bytes: [0xFF, 0xFE])
        #expect(throws: ProtocolError.self) { try TokenRequest(fields: bad) }
        var nul = Fields()
        nul.append(.token, bytes: [65, 0, 66])
        #expect(throws: ProtocolError.self) { try TokenRequest(fields: nul) }
        // A u64 of the wrong width.
        var width = IssueRequest(mode: .session, subject: "s").fields
        width.append(.ttl, bytes: [1, 2, 3])
        #expect(throws: ProtocolError.self) { try IssueRequest(fields: width) }
    }

    @Test func revokeTakesExactlyOneTarget() throws {
        #expect(try RevokeRequest(fields: RevokeRequest.subject("a").fields) == .subject("a"))
        var both = RevokeRequest.subject("a").fields
        both.append(.sessionID, string: "s")
        #expect(throws: ProtocolError.self) { try RevokeRequest(fields: both) }
        #expect(throws: ProtocolError.self) { try RevokeRequest(fields: Fields()) }
    }
}
