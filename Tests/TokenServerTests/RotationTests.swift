import Testing
@testable import TokenServer
import TokenProtocol

/// Rotation in the service core: a repeat signs nothing; pairs name their generation.
@Suite struct RotationTests {
    static func signed(_ fixture: ServiceFixture) -> Int {
        let text = fixture.service.metrics.registry.emitToString()
        let line = text.split(separator: "\n").first { $0.hasPrefix("tokend_tokens_signed_total ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    @Test func aRepeatWithinTheDedupWindowGetsTheSamePairAndSignsNothing() throws {
        let fixture = try ServiceFixture { $0.dedupWindowMilliseconds = 5_000 }
        let issued = try fixture.issue(IssueRequest(mode: .pair, subject: "kim", fingerprint: [7]))
        #expect(Self.signed(fixture) == 2)
        let refresh = TokenRequest(token: issued.refreshToken!, fingerprint: [7])
        let first = try fixture.call(.refresh, refresh.fields)
        #expect(first.status == .ok)
        #expect(Self.signed(fixture) == 4, "a rotation signs a new pair")
        for _ in 0..<5 {
            fixture.clock.advance(0)
            let again = try fixture.call(.refresh, refresh.fields)
            #expect(again.status == .ok && again.fields == first.fields, "the same pair, byte for byte")
        }
        #expect(Self.signed(fixture) == 4, "repeats sign nothing")
        // Another fingerprint gets no pair.
        #expect(try fixture.call(.refresh, TokenRequest(token: issued.refreshToken!, fingerprint: [8]).fields).status == .fingerprintMismatch)
        // After the window, while the new pair is unused, a retry is a lost response: the same
        // pair again, signing nothing.
        fixture.clock.advance(6)
        let retried = try fixture.call(.refresh, refresh.fields)
        #expect(retried.status == .ok && retried.fields == first.fields, "a lost-response retry gets the same pair")
        #expect(Self.signed(fixture) == 4)
        // Once the new pair is used (its access token verified), the repeat is reuse.
        let pair = try IssueResult(fields: first.fields)
        #expect(try fixture.call(.verify, TokenRequest(token: pair.accessToken!, fingerprint: [7]).fields).status == .ok)
        #expect(try fixture.call(.refresh, refresh.fields).status == .reuseDetected)
        // Reuse is found by the rotation itself (atomically with the revocation), after a pair
        // was signed for it and dropped: once per family, which is revoked from then on.
        #expect(try fixture.call(.refresh, refresh.fields).status == .revoked)
        #expect(Self.signed(fixture) == 6)
    }

    /// Each pair names its family's generation in `tokend_gen`: 0 at issue, one more per
    /// refresh; no caller may set it, while an application's own `gen` stays an extra claim.
    @Test func pairsNameTheirGeneration() throws {
        let fixture = try ServiceFixture()
        let issued = try fixture.issue(IssueRequest(mode: .pair, subject: "gus"))
        func generation(_ access: String) throws -> String? {
            let verified = try VerifyResult(fields: fixture.call(.verify, TokenRequest(token: access).fields).fields)
            return verified.claimsJSON.firstMatch(of: /"tokend_gen":(\d+)/).map { String($0.1) }
        }
        #expect(try generation(issued.accessToken!) == "0")
        let first = try IssueResult(fields: fixture.call(.refresh, TokenRequest(token: issued.refreshToken!).fields).fields)
        #expect(try generation(first.accessToken!) == "1")
        let second = try IssueResult(fields: fixture.call(.refresh, TokenRequest(token: first.refreshToken!).fields).fields)
        #expect(try generation(second.accessToken!) == "2")
        let claimed = try fixture.call(.issue, IssueRequest(mode: .pair, subject: "gus", claims: #"{"tokend_gen":9}"#).fields)
        #expect(claimed.status == .badRequest)
        let own = try fixture.issue(IssueRequest(mode: .pair, subject: "gus", claims: #"{"gen":"blue"}"#))
        #expect(try generation(own.accessToken!) == "0")
        #expect(try fixture.call(.refresh, TokenRequest(token: own.refreshToken!).fields).status == .ok, "an application's gen claim is its own")
    }
}
