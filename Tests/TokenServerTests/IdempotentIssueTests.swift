import Testing
@testable import TokenServer
import TokenProtocol

/// `issue` with an idempotency key (proto-spec.md 12.3), on a clock the test moves: within the
/// dedup window a repeat gets the first result, a changed request is refused, and after the
/// window the key is forgotten.
@Suite struct IdempotentIssueTests {
    static let request = IssueRequest(mode: .pair, subject: "frank", idempotencyKey: Array("login-42".utf8))

    static func sessions(_ fixture: ServiceFixture, of subject: String) throws -> [SessionInfo] {
        let response = try fixture.call(.sessions, SessionsRequest(subject: subject).fields)
        #expect(response.status == .ok)
        return try SessionPage(fields: response.fields).sessions
    }

    @Test func idempotentIssueReturnsTheSameTokens() throws {
        let fixture = try ServiceFixture()
        let first = try fixture.call(.issue, Self.request.fields)
        let second = try fixture.call(.issue, Self.request.fields)
        #expect(first.status == .ok && second.status == .ok)
        #expect(second.fields == first.fields, "the same tokens, session id and times, byte for byte")
        // The key is scoped to the subject: another subject's login is a new one.
        var other = Self.request
        other.subject = "grace"
        let graces = try fixture.issue(other)
        #expect(try graces.accessToken != IssueResult(fields: first.fields).accessToken)
        // The same key for a different request is refused and creates nothing.
        var changed = Self.request
        changed.audience = "elsewhere"
        #expect(try fixture.call(.issue, changed.fields).status == .badRequest)
        #expect(try Self.sessions(fixture, of: "frank").count == 1)
    }

    /// Each field that makes the login counts: mode, fingerprint, audience, claims and the TTL
    /// overrides (absent and present differ).
    @Test func anyChangeToTheRequestWithTheSameKeyIsABadRequest() throws {
        let fixture = try ServiceFixture()
        _ = try fixture.issue(Self.request)
        var changes: [IssueRequest] = []
        var mode = Self.request
        mode.mode = .session
        changes.append(mode)
        var fingerprint = Self.request
        fingerprint.fingerprint = [1]
        changes.append(fingerprint)
        var audience = Self.request
        audience.audience = ""
        changes.append(audience)
        var claims = Self.request
        claims.claims = "{}"
        changes.append(claims)
        var ttl = Self.request
        ttl.ttl = 1800
        changes.append(ttl)
        var refreshTTL = Self.request
        refreshTTL.refreshTTL = 3600
        changes.append(refreshTTL)
        var maxLifetime = Self.request
        maxLifetime.maxLifetime = 43200
        changes.append(maxLifetime)
        for (index, change) in changes.enumerated() {
            #expect(try fixture.call(.issue, change.fields).status == .badRequest, "\(change)")
            // The control: under a key of its own the same request is a valid issue.
            var control = change
            control.idempotencyKey = Array("control-\(index)".utf8)
            #expect(try fixture.call(.issue, control.fields).status == .ok, "\(control)")
        }
        #expect(try Self.sessions(fixture, of: "frank").count == 1 + changes.count)
    }

    /// The window counts from the first issue (5 s by default); repeats do not extend it, and
    /// after it a repeat creates a new login.
    @Test func theKeyIsForgottenAfterTheDedupWindowOfTheFirstIssue() throws {
        let fixture = try ServiceFixture { $0.dedupWindowMilliseconds = 5_000 }
        let first = try fixture.call(.issue, Self.request.fields)
        fixture.clock.advance(2)
        #expect(try fixture.call(.issue, Self.request.fields).fields == first.fields)
        fixture.clock.advance(2)
        #expect(try fixture.call(.issue, Self.request.fields).fields == first.fields, "the window's last second")
        fixture.clock.advance(1)
        let later = try fixture.issue(Self.request)
        #expect(try later.sessionID != IssueResult(fields: first.fields).sessionID)
        #expect(try Self.sessions(fixture, of: "frank").count == 2)
    }

    /// A repeat within the window gets the earlier tokens even after that login was revoked;
    /// they are refused when used.
    /// The revoked login's tokens are never handed back as if they were live: the repeat is
    /// refused `revoked`, creates nothing, and a new key issues a new login.
    @Test func aRepeatAfterARevokeIsRefusedAsRevoked() throws {
        let fixture = try ServiceFixture()
        let first = try fixture.issue(Self.request)
        #expect(try fixture.revoke(.session(first.sessionID)) == .ok)
        let again = try fixture.call(.issue, Self.request.fields)
        #expect(again.status == .revoked)
        #expect(try again.fields.string(.accessToken) == nil, "no token handed back")
        #expect(try Self.sessions(fixture, of: "frank").count == 1, "nothing created")
        var other = Self.request
        other.idempotencyKey = Array("another".utf8)
        let fresh = try fixture.issue(other)
        #expect(fresh.sessionID != first.sessionID)
        #expect(try fixture.call(.verify, TokenRequest(token: try #require(fresh.accessToken)).fields).status == .ok)
    }
}
