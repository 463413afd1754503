import Foundation
import Testing
import TokenClient
import TokenProtocol

/// Scheme 1 against the real daemon: that its options reach the sliding rule. The rule itself
/// (thresholds, steps, caps, idle expiry, fingerprints) is checked to the second on a manual
/// clock in TokenServerTests' SlidingSessionRuleTests.
@Suite struct SlidingSessionTests {
    /// Renewed when under 59 s of 60 remain, by 1 s. The verify comes 2 s or more after the
    /// issue, so it renews by exactly 1 s however late it comes (until the session would go idle,
    /// a minute on): the options reached the store's policy, and its real clock moves.
    @Test func theDaemonSlidesSessionsWithTheSettingsItWasGiven() async throws {
        let daemon = try DaemonProcess(["--session-idle", "60s", "--renew-below", "59s", "--renew-by", "1s", "--max-lifetime", "600s"])
        let client = try await daemon.client()
        let settings = try #require(try await client.hello().settings)
        #expect(settings.idleTTL == 60 && settings.renewBelow == 59 && settings.renewBy == 1 && settings.maxLifetime == 600)
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice", fingerprint: .text("ua-1")))
        let token = try #require(issued.sessionToken)
        #expect(issued.expiresAt == issued.maxExpiresAt - 540)

        try await sleep(until: Double(issued.maxExpiresAt - 600 + 2) + 0.1)
        let renewed = try await client.verify(token: token, fingerprint: .text("ua-1"))
        #expect(renewed.status == .renewed && renewed.result.expiresAt == issued.expiresAt + 1)
        #expect(await refusal { try await client.verify(token: token, fingerprint: .text("ua-2")) } == .fingerprintMismatch)
        await client.close()
    }
}
