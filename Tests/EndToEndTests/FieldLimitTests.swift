import Foundation
import Testing
import TokenClient
import TokenProtocol

/// The size limit of every request field of proto-spec.md section 7, in every operation that
/// reads it: a value of exactly the limit passes the size check (the operation then answers as
/// it would for any value), one byte more is `bad_request`. Limits count bytes, not characters.
@Suite struct FieldLimitTests {
    /// `count` bytes of text: two-byte "é"s, and an "a" when `count` is odd.
    static func text(bytes count: Int) -> String {
        String(repeating: "\u{E9}", count: count / 2) + (count % 2 == 1 ? "a" : "")
    }

    /// The response to `opcode` with `fields`, sent as is.
    static func send(_ client: TokenClient, _ opcode: Opcode, _ fields: Fields) async throws -> Response {
        try await client.send(Request(opcode: opcode, id: 0, fields: fields))
    }

    /// What `size` bytes of one field give, the rest of the request being `base`.
    struct Case: CustomStringConvertible {
        var operation: Opcode
        var tag: FieldTag
        var limit: Int
        /// The request's other fields.
        var base: Fields
        /// The status a value at the limit gets (the operation's own answer to that value).
        var atLimit: Status
        /// Text or raw bytes.
        var binary = false
        var description: String { "\(operation.name) field \(tag.rawValue) (limit \(limit))" }

        func fields(size: Int) -> Fields {
            var fields = base
            if binary {
                fields.append(tag, bytes: [UInt8](repeating: 0xA5, count: size))
            } else {
                fields.append(tag, string: FieldLimitTests.text(bytes: size))
            }
            return fields
        }
    }

    @Test func everyRequestFieldAtItsLimitPassesAndOneByteMoreIsABadRequest() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let session = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "bob"))
        var issue = Fields()
        issue.append(.subject, string: "carol")
        var sessionToken = Fields()
        sessionToken.append(.token, string: try #require(session.sessionToken))
        var accessToken = Fields()
        accessToken.append(.token, string: try #require(pair.accessToken))
        var refreshToken = Fields()
        refreshToken.append(.token, string: try #require(pair.refreshToken))
        var subject = Fields()
        subject.append(.subject, string: "dave")

        let cases: [Case] = [
            Case(operation: .hello, tag: .clientName, limit: 256, base: Fields(), atLimit: .ok),
            Case(operation: .issue, tag: .subject, limit: 256, base: Fields(), atLimit: .ok),
            Case(operation: .issue, tag: .fingerprint, limit: 1024, base: issue, atLimit: .ok, binary: true),
            Case(operation: .issue, tag: .audience, limit: 256, base: issue, atLimit: .ok),
            Case(operation: .issue, tag: .idempotencyKey, limit: 256, base: issue, atLimit: .ok, binary: true),
            // A token at its limit is read, and is not a JWT.
            Case(operation: .verify, tag: .token, limit: 8192, base: Fields(), atLimit: .malformedToken),
            Case(operation: .renew, tag: .token, limit: 8192, base: Fields(), atLimit: .malformedToken),
            Case(operation: .refresh, tag: .token, limit: 8192, base: Fields(), atLimit: .malformedToken),
            Case(operation: .revoke, tag: .token, limit: 8192, base: Fields(), atLimit: .malformedToken),
            // A fingerprint at its limit, for logins bound to none: accepted.
            Case(operation: .verify, tag: .fingerprint, limit: 1024, base: sessionToken, atLimit: .ok, binary: true),
            Case(operation: .renew, tag: .fingerprint, limit: 1024, base: sessionToken, atLimit: .ok, binary: true),
            Case(operation: .verify, tag: .fingerprint, limit: 1024, base: accessToken, atLimit: .ok, binary: true),
            Case(operation: .refresh, tag: .fingerprint, limit: 1024, base: refreshToken, atLimit: .ok, binary: true),
            // A session id at its limit is not one of the daemon's.
            Case(operation: .revoke, tag: .sessionID, limit: 128, base: Fields(), atLimit: .sessionUnknown),
            Case(operation: .revoke, tag: .subject, limit: 256, base: Fields(), atLimit: .ok),
            Case(operation: .sessions, tag: .subject, limit: 256, base: Fields(), atLimit: .ok),
            // With a subject, a cursor is checked for its type and size only (12.9).
            Case(operation: .sessions, tag: .cursor, limit: 256, base: subject, atLimit: .ok),
        ]
        for test in cases {
            let at = try await Self.send(client, test.operation, test.fields(size: test.limit))
            // `renewed` is a success like `ok` (renew moves a fresh session's expiry when it can).
            let passed = at.status == test.atLimit || (test.atLimit == .ok && at.status == .renewed)
            #expect(passed, "\(test) at the limit: \(at.status.name) \(at.message ?? "")")
            let over = try await Self.send(client, test.operation, test.fields(size: test.limit + 1))
            #expect(over.status == .badRequest, "\(test) one byte over: \(over.status.name) \(over.message ?? "")")
        }

        // claims(5): 16384 bytes is a JSON object the daemon reads (the blank space inside is
        // not carried into the token); 16385 is refused for its size.
        func claims(bytes count: Int) -> Fields {
            var fields = issue
            let json = #"{"role":"reader"}"#
            fields.append(.claims, string: "{" + String(repeating: " ", count: count - json.utf8.count) + json.dropFirst())
            return fields
        }
        let claimsAt = try await Self.send(client, .issue, claims(bytes: 16384))
        #expect(claimsAt.status == .ok, "claims at 16384 bytes: \(claimsAt.status.name) \(claimsAt.message ?? "")")
        let claimsOver = try await Self.send(client, .issue, claims(bytes: 16385))
        #expect(claimsOver.status == .badRequest, "claims at 16385 bytes: \(claimsOver.status.name)")
        await client.close()
    }
}
