import Testing
@testable import TokenServer
import TokenProtocol

/// `--leeway` in the service core, on a clock the test moves: a token has expired once
/// `now >= exp + leeway` (proto-spec.md 11).
@Suite struct LeewayTests {
    static let short = IssueRequest(mode: .pair, subject: "alice", ttl: 1, refreshTTL: 1)

    /// An access token with a 1 s lifetime: `expired` once the clock reaches its `exp` (plus
    /// the leeway); the refresh token likewise from refresh.
    @Test func leewayDelaysExpiredByItsLength() throws {
        let strict = try ServiceFixture()
        let lenient = try ServiceFixture { $0.leeway = 2 }
        let hello = try HelloInfo(fields: try lenient.call(.hello, HelloRequest().fields).fields)
        #expect(hello.settings?.leeway == 2)
        let a = try strict.issue(Self.short), b = try lenient.issue(Self.short)
        #expect(a.expiresAt == a.maxExpiresAt - 43200 + 1 && b.refreshExpiresAt == b.expiresAt)
        let aAccess = try #require(a.accessToken), aRefresh = try #require(a.refreshToken)
        let bAccess = try #require(b.accessToken), bRefresh = try #require(b.refreshToken)
        #expect(try strict.call(.verify, TokenRequest(token: aAccess).fields).status == .ok)

        // At exp: past it, within the leeway.
        strict.clock.advance(1)
        lenient.clock.advance(1)
        #expect(try strict.call(.verify, TokenRequest(token: aAccess).fields).status == .expired)
        #expect(try strict.call(.refresh, TokenRequest(token: aRefresh).fields).status == .expired)
        #expect(try lenient.call(.verify, TokenRequest(token: bAccess).fields).status == .ok, "within --leeway 2s of exp")
        // The leeway's last second.
        lenient.clock.advance(1)
        #expect(try lenient.call(.verify, TokenRequest(token: bAccess).fields).status == .ok, "within --leeway 2s of exp")

        // Once the leeway has passed too.
        lenient.clock.advance(1)
        #expect(try lenient.call(.verify, TokenRequest(token: bAccess).fields).status == .expired)
        #expect(try lenient.call(.refresh, TokenRequest(token: bRefresh).fields).status == .expired)
        // An expired token still logs out (revoke does not judge exp), and stays expired.
        #expect(try lenient.call(.revoke, RevokeRequest.token(bAccess).fields).fields.uint64(.count) == 1)
        #expect(try lenient.call(.verify, TokenRequest(token: bAccess).fields).status == .expired)
    }

    /// Within the leeway a refresh token past its `exp` still rotates its pair.
    @Test func aRefreshTokenWithinTheLeewayStillRotates() throws {
        let lenient = try ServiceFixture { $0.leeway = 2 }
        let issued = try lenient.issue(Self.short)
        lenient.clock.advance(2)
        let rotated = try lenient.call(.refresh, TokenRequest(token: try #require(issued.refreshToken)).fields)
        try #require(rotated.status == .ok)
        #expect(try IssueResult(fields: rotated.fields).refreshToken != issued.refreshToken)
    }
}
