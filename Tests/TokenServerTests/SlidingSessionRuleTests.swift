import Testing
@testable import TokenServer
import TokenProtocol

/// Scheme 1 in the service core, on a clock the test moves: the sliding rule (proto-spec.md
/// 12.4 step 9), idle expiry, the maximum lifetime and fingerprint binding, to the second.
@Suite struct SlidingSessionRuleTests {
    /// Idle 8 s, renewed when under 4 s remain, by 4 s; the login lasts 14 s at most.
    static func fixture() throws -> ServiceFixture {
        try ServiceFixture {
            $0.sessionIdle = 8
            $0.renewBelow = 4
            $0.renewBy = 4
            $0.maxLifetime = 14
        }
    }

    static let device = Array("ua-1".utf8)

    /// A verify (or an explicit renew) of `token`: its status, and its result when accepted.
    static func verify(_ fixture: ServiceFixture, _ token: String, fingerprint: [UInt8] = device,
                       renew: Bool = false) throws -> (status: Status, result: VerifyResult?) {
        let response = try fixture.call(renew ? .renew : .verify, TokenRequest(token: token, fingerprint: fingerprint).fields)
        let accepted = response.status == .ok || response.status == .renewed
        return (response.status, accepted ? try VerifyResult(fields: response.fields) : nil)
    }

    @Test func renewsBelowTheThresholdByTheStepAndNeverPastTheMaximum() throws {
        let fixture = try Self.fixture()
        let start = UInt64(fixture.clock.now())
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "alice", fingerprint: Self.device))
        let token = try #require(issued.sessionToken)
        #expect(issued.maxExpiresAt == start + 14 && issued.expiresAt == start + 8)

        // Plenty left: verified, not renewed.
        let fresh = try Self.verify(fixture, token)
        #expect(fresh.status == .ok && fresh.result?.renewed == false && fresh.result?.expiresAt == issued.expiresAt)
        #expect(fresh.result?.subject == "alice" && fresh.result?.sessionID == issued.sessionID)
        #expect(fresh.result?.tokenExpiresAt == issued.maxExpiresAt, "a session token's exp is the end of the login")

        // 6 s in, 2 s remain: renewed by exactly the step.
        fixture.clock.advance(6)
        let renewed = try Self.verify(fixture, token)
        #expect(renewed.status == .renewed && renewed.result?.renewed == true)
        #expect(renewed.result?.expiresAt == issued.expiresAt + 4)
        // Right after, 6 s remain: not renewed again.
        let again = try Self.verify(fixture, token)
        #expect(again.status == .ok && again.result?.renewed == false && again.result?.expiresAt == issued.expiresAt + 4)

        // 10 s in, 2 s remain: the step would pass the maximum, so it stops there.
        fixture.clock.advance(4)
        let capped = try Self.verify(fixture, token)
        #expect(capped.status == .renewed && capped.result?.expiresAt == issued.maxExpiresAt)

        // The last second of the login still verifies; at the maximum lifetime nothing does.
        fixture.clock.advance(3)
        #expect(try Self.verify(fixture, token).status == .ok)
        fixture.clock.advance(1)
        #expect(try Self.verify(fixture, token).status == .maxLifetimeReached)
        #expect(try Self.verify(fixture, token, renew: true).status == .maxLifetimeReached)
    }

    /// "When less than renew-below remains": exactly 4 s left is not less; 3 s is.
    @Test func renewsOnlyOnceLessThanTheThresholdRemains() throws {
        let fixture = try Self.fixture()
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "alice", fingerprint: Self.device))
        let token = try #require(issued.sessionToken)
        fixture.clock.advance(4)
        let atThreshold = try Self.verify(fixture, token)
        #expect(atThreshold.status == .ok && atThreshold.result?.expiresAt == issued.expiresAt)
        fixture.clock.advance(1)
        let below = try Self.verify(fixture, token)
        #expect(below.status == .renewed && below.result?.expiresAt == issued.expiresAt + 4)
    }

    /// A renewal never keeps a session alive longer than its idle TTL after the last use, however
    /// large the step.
    @Test func aRenewalNeverReachesPastTheIdleTTLFromNow() throws {
        let fixture = try ServiceFixture {
            $0.sessionIdle = 8
            $0.renewBelow = 4
            $0.renewBy = 100
        }
        let start = UInt64(fixture.clock.now())
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "alice"))
        fixture.clock.advance(5)
        let renewed = try Self.verify(fixture, try #require(issued.sessionToken), fingerprint: [])
        #expect(renewed.status == .renewed && renewed.result?.expiresAt == start + 5 + 8)
    }

    @Test func idleSessionsExpireAndFingerprintsBind() throws {
        // Idle 2 s, renewed when under 1 s remains, by 1 s.
        let fixture = try ServiceFixture {
            $0.sessionIdle = 2
            $0.renewBelow = 1
            $0.renewBy = 1
        }
        let deviceA = Array("device-A".utf8)
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "bob", fingerprint: deviceA))
        let token = try #require(issued.sessionToken)
        #expect(try Self.verify(fixture, token, fingerprint: Array("device-B".utf8)).status == .fingerprintMismatch)
        #expect(try Self.verify(fixture, token, fingerprint: []).status == .fingerprintMismatch)
        #expect(try Self.verify(fixture, token, fingerprint: deviceA).status == .ok)
        #expect(try Self.verify(fixture, token, fingerprint: Array("device-B".utf8), renew: true).status == .fingerprintMismatch)

        // An unbound session accepts any fingerprint, or none.
        let unbound = try fixture.issue(IssueRequest(mode: .session, subject: "bob"))
        let unboundToken = try #require(unbound.sessionToken)
        #expect(try Self.verify(fixture, unboundToken, fingerprint: Array("anything".utf8)).status == .ok)
        #expect(try Self.verify(fixture, unboundToken, fingerprint: []).status == .ok)

        // One second before its idle expiry the session still verifies (1 s left is not below
        // renew-below, so nothing moves); at its idle expiry it is gone, for renew too.
        fixture.clock.advance(1)
        let last = try Self.verify(fixture, token, fingerprint: deviceA)
        #expect(last.status == .ok && last.result?.expiresAt == issued.expiresAt)
        fixture.clock.advance(1)
        #expect(UInt64(fixture.clock.now()) == issued.expiresAt)
        #expect(try Self.verify(fixture, token, fingerprint: deviceA).status == .sessionExpired)
        #expect(try Self.verify(fixture, token, fingerprint: deviceA, renew: true).status == .sessionExpired)
        // A session never comes back from idle expiry.
        fixture.clock.advance(1)
        #expect(try Self.verify(fixture, token, fingerprint: deviceA).status == .sessionExpired)
    }

    @Test func explicitRenewAndRevocation() throws {
        let fixture = try ServiceFixture {
            $0.sessionIdle = 60
            $0.renewBelow = 1
        }
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "carol", ttl: 10))
        let token = try #require(issued.sessionToken)
        // A verify a second later leaves 9 s of the 10 s TTL, not below renew-below: no move.
        fixture.clock.advance(1)
        #expect(try Self.verify(fixture, token, fingerprint: []).status == .ok)
        // renew touches the session whatever remains, to now + its own TTL (10 s, not 60 s).
        let touched = try Self.verify(fixture, token, fingerprint: [], renew: true)
        #expect(touched.status == .renewed && touched.result?.expiresAt == issued.expiresAt + 1)

        #expect(try fixture.call(.revoke, RevokeRequest.token(token).fields).fields.uint64(.count) == 1)
        #expect(try Self.verify(fixture, token, fingerprint: []).status == .revoked)
        #expect(try fixture.call(.revoke, RevokeRequest.token(token).fields).fields.uint64(.count) == 0)
        // TTL overrides beyond the configured bounds are refused, as are claims that are not
        // an object or that set a registered claim.
        #expect(try fixture.call(.issue, IssueRequest(mode: .session, subject: "carol", ttl: 61).fields).status == .badRequest)
        #expect(try fixture.call(.issue, IssueRequest(mode: .session, subject: "carol", ttl: 0).fields).status == .badRequest)
        #expect(try fixture.call(.issue, IssueRequest(mode: .session, subject: "carol", claims: #"{"sub":"mallory"}"#).fields).status == .badRequest)
        #expect(try fixture.call(.issue, IssueRequest(mode: .session, subject: "carol", claims: "[1]").fields).status == .badRequest)
    }
}
