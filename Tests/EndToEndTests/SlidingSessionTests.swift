import Foundation
import Testing
import TokenClient
import TokenProtocol

/// Scheme 1 against the real daemon, with short TTLs on the real clock.
@Suite struct SlidingSessionTests {
    @Test func renewsBelowTheThresholdByTheStepAndNeverPastTheMaximum() async throws {
        // idle 8 s, renew when under 4 s remain, by 4 s; the login lasts 14 s at most. Each step
        // below lands in the middle of a 4 s window, so a loaded machine does not flip it.
        let daemon = try DaemonProcess(["--session-idle", "8s", "--renew-below", "4s", "--renew-by", "4s", "--max-lifetime", "14s"])
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice", fingerprint: .text("ua-1")))
        let token = try #require(issued.sessionToken)
        let start = Double(issued.maxExpiresAt) - 14
        #expect(issued.expiresAt == issued.maxExpiresAt - 6)

        // Plenty left: verified, not renewed.
        let fresh = try await client.verify(token: token, fingerprint: .text("ua-1"))
        #expect(fresh.status == .ok && !fresh.renewed && fresh.result.expiresAt == issued.expiresAt)
        #expect(fresh.result.subject == "alice" && fresh.result.sessionID == issued.sessionID)

        // The daemon counts whole seconds. 6 s in, 2 s remain: renewed by exactly the step.
        try await sleep(until: start + 6.2)
        let renewed = try await client.verify(token: token, fingerprint: .text("ua-1"))
        #expect(renewed.status == .renewed && renewed.renewed)
        #expect(renewed.result.expiresAt == issued.expiresAt + 4)
        // Right after, 6 s remain: not renewed again.
        let again = try await client.verify(token: token, fingerprint: .text("ua-1"))
        #expect(again.status == .ok && again.result.expiresAt == issued.expiresAt + 4)

        // 10 s in, 2 s remain: the step would pass the maximum, so it stops there.
        try await sleep(until: start + 10.2)
        let capped = try await client.verify(token: token, fingerprint: .text("ua-1"))
        #expect(capped.status == .renewed && capped.result.expiresAt == issued.maxExpiresAt)

        // Past the maximum lifetime nothing renews.
        try await sleep(until: start + 14.2)
        #expect(await refusal { try await client.verify(token: token, fingerprint: .text("ua-1")) } == .maxLifetimeReached)
        await client.close()
    }

    @Test func idleSessionsExpireAndFingerprintsBind() async throws {
        let daemon = try DaemonProcess(["--session-idle", "2s", "--renew-below", "1s", "--renew-by", "1s"])
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "bob", fingerprint: .text("device-A")))
        let token = try #require(issued.sessionToken)
        #expect(await refusal { try await client.verify(token: token, fingerprint: .text("device-B")) } == .fingerprintMismatch)
        #expect(await refusal { try await client.verify(token: token) } == .fingerprintMismatch)
        #expect(try await client.verify(token: token, fingerprint: .text("device-A")).status == .ok)

        // An unbound session accepts any fingerprint.
        let unbound = try await client.issue(IssueRequest(mode: .session, subject: "bob"))
        #expect(try await client.verify(token: unbound.sessionToken!, fingerprint: .text("anything")).status == .ok)

        // Idle longer than the TTL: the session expired.
        try await sleep(until: Double(issued.expiresAt) + 0.3)
        #expect(await refusal { try await client.verify(token: token, fingerprint: .text("device-A")) } == .sessionExpired)
        #expect(await refusal { try await client.renew(token: token, fingerprint: .text("device-A")) } == .sessionExpired)
        await client.close()
    }

    @Test func explicitRenewAndRevocation() async throws {
        let daemon = try DaemonProcess(["--session-idle", "60s", "--renew-below", "1s"])
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "carol", ttl: 10))
        let token = try #require(issued.sessionToken)
        try await Task.sleep(for: .milliseconds(1100))
        let touched = try await client.renew(token: token)
        #expect(touched.status == .renewed && touched.result.expiresAt > issued.expiresAt)

        #expect(try await client.revoke(.token(token)) == 1)
        #expect(await refusal { try await client.verify(token: token) } == .revoked)
        #expect(try await client.revoke(.token(token)) == 0)
        // TTL overrides beyond the configured bounds are refused.
        #expect(await refusal { try await client.issue(IssueRequest(mode: .session, subject: "carol", ttl: 61)) } == .badRequest)
        #expect(await refusal { try await client.issue(IssueRequest(mode: .session, subject: "carol", claims: #"{"sub":"mallory"}"#)) } == .badRequest)
        #expect(await refusal { try await client.issue(IssueRequest(mode: .session, subject: "carol", claims: "[1]")) } == .badRequest)
        await client.close()
    }
}
