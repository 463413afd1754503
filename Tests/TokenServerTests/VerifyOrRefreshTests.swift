import Testing
@testable import TokenServer
import TokenProtocol

/// Verify-or-refresh (proto-spec.md 12.4), on a clock the test moves: verify with the pair's
/// refresh token rotates the pair once the access token has expired, and only then; repeats
/// within the dedup window get the same pair; afterwards, once the new pair was used or its
/// grace is over, the spent refresh token is reuse.
@Suite struct VerifyOrRefreshTests {
    static let device = Array("fp".utf8)

    @Test func verifyOrRefreshRotatesAnExpiredAccessTokensPairOnce() throws {
        let fixture = try ServiceFixture { $0.dedupWindowMilliseconds = 5_000 }
        let issued = try fixture.issue(IssueRequest(mode: .pair, subject: "dave", fingerprint: Self.device, ttl: 1))
        let access = try #require(issued.accessToken), refresh = try #require(issued.refreshToken)
        let other = try fixture.issue(IssueRequest(mode: .pair, subject: "erin", fingerprint: Self.device))
        let presented = TokenRequest(token: access, fingerprint: Self.device, refreshToken: refresh)
        #expect(RotationTests.signed(fixture) == 4)

        // Not expired yet: ok, and the refresh token is not looked at.
        let fresh = try fixture.call(.verify, presented.fields)
        #expect(fresh.status == .ok)
        #expect(try fresh.fields.string(.accessToken) == nil && fresh.fields.string(.refreshToken) == nil)
        #expect(RotationTests.signed(fixture) == 4, "nothing was rotated")

        // At the access token's exp it has expired; without a refresh token that is all.
        fixture.clock.advance(1)
        #expect(try fixture.call(.verify, TokenRequest(token: access, fingerprint: Self.device).fields).status == .expired)
        // Another family's refresh token, or another fingerprint: refused, nothing rotated.
        let otherRefresh = try #require(other.refreshToken)
        #expect(try fixture.call(.verify, TokenRequest(token: access, fingerprint: Self.device, refreshToken: otherRefresh).fields).status == .badRequest)
        #expect(try fixture.call(.verify, TokenRequest(token: access, fingerprint: Array("other".utf8), refreshToken: refresh).fields).status == .fingerprintMismatch)
        #expect(RotationTests.signed(fixture) == 4, "nothing was rotated")

        let first = try fixture.call(.verify, presented.fields)
        #expect(first.status == .refreshed)
        let refreshed = try RefreshedResult(fields: first.fields)
        let pair = refreshed.pair
        #expect(pair.sessionID == issued.sessionID && pair.accessToken != access && pair.refreshToken != refresh)
        #expect(refreshed.verify.subject == "dave" && refreshed.verify.expiresAt == pair.expiresAt && !refreshed.verify.renewed)
        // The login keeps the access TTL it was issued with (1 s) for its rotations.
        #expect(pair.expiresAt == UInt64(fixture.clock.now()) + 1 && pair.maxExpiresAt == issued.maxExpiresAt)
        #expect(RotationTests.signed(fixture) == 6, "one rotation, one new pair")

        // Repeats within the dedup window, to its last second, get the very same pair and sign nothing.
        let again = try fixture.call(.verify, presented.fields)
        #expect(again.status == .refreshed && again.fields == first.fields)
        #expect(try fixture.call(.verify, TokenRequest(token: try #require(pair.accessToken), fingerprint: Self.device).fields).status == .ok)
        fixture.clock.advance(4)
        let last = try fixture.call(.verify, presented.fields)
        #expect(last.status == .refreshed && last.fields == first.fields)
        #expect(RotationTests.signed(fixture) == 6, "repeats sign nothing")

        // After the window the old pair's refresh token is spent: reuse, and the family is revoked.
        fixture.clock.advance(1)
        #expect(try fixture.call(.verify, presented.fields).status == .reuseDetected)
        #expect(try fixture.call(.refresh, TokenRequest(token: try #require(pair.refreshToken), fingerprint: Self.device).fields).status == .revoked)
        // The other family is untouched.
        #expect(try fixture.call(.verify, TokenRequest(token: try #require(other.accessToken), fingerprint: Self.device).fields).status == .ok)
    }

    /// A refresh of the old pair's refresh token, after the window and the grace (the login's
    /// own 1 s access TTL), is reuse too: the same rule whichever operation spent it.
    @Test func theSpentRefreshTokenIsReuseForRefreshToo() throws {
        let fixture = try ServiceFixture { $0.dedupWindowMilliseconds = 2_000 }
        let issued = try fixture.issue(IssueRequest(mode: .pair, subject: "dave", ttl: 1))
        let refresh = try #require(issued.refreshToken)
        fixture.clock.advance(1)
        let first = try fixture.call(.verify, TokenRequest(token: try #require(issued.accessToken), refreshToken: refresh).fields)
        #expect(first.status == .refreshed)
        // Within the window a plain refresh of the same token gets the same pair.
        let repeated = try fixture.call(.refresh, TokenRequest(token: refresh).fields)
        let pair = try RefreshedResult(fields: first.fields).pair
        #expect(repeated.status == .ok)
        #expect(try IssueResult(fields: repeated.fields).refreshToken == pair.refreshToken)
        fixture.clock.advance(2)
        #expect(try fixture.call(.refresh, TokenRequest(token: refresh).fields).status == .reuseDetected)
        #expect(try fixture.call(.refresh, TokenRequest(token: try #require(pair.refreshToken)).fields).status == .revoked)
    }
}
