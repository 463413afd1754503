import Foundation
import Testing
import TokenClient
import TokenProtocol

/// Scheme 2 and the dedup map against the real daemon.
@Suite struct PairTests {
    @Test func rotationSpendsTheOldRefreshTokenAndTypesAreNotInterchangeable() async throws {
        let daemon = try DaemonProcess(["--dedup-window", "1s"])
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .pair, subject: "alice", fingerprint: .text("fp"), claims: #"{"role":"reader"}"#))
        let access = try #require(issued.accessToken), refresh = try #require(issued.refreshToken)

        let verified = try await client.verify(token: access, fingerprint: .text("fp"))
        #expect(verified.status == .ok && verified.result.mode == .pair)
        #expect(verified.result.claimsJSON.contains(#""role":"reader""#))
        #expect(await refusal { try await client.verify(token: refresh, fingerprint: .text("fp")) } == .wrongTokenType)
        #expect(await refusal { try await client.refresh(token: access, fingerprint: .text("fp")) } == .wrongTokenType)
        #expect(await refusal { try await client.renew(token: access, fingerprint: .text("fp")) } == .wrongTokenType)

        let rotated = try await client.refresh(token: refresh, fingerprint: .text("fp"))
        #expect(rotated.sessionID == issued.sessionID)
        #expect(rotated.accessToken != access && rotated.refreshToken != refresh)
        // Claims carry over to the rotated pair.
        let rotatedAccess = try await client.verify(token: rotated.accessToken!, fingerprint: .text("fp"))
        #expect(rotatedAccess.result.claimsJSON.contains(#""role":"reader""#))

        // Two rotations within one second give distinct tokens.
        let second = try await client.refresh(token: rotated.refreshToken!, fingerprint: .text("fp"))
        #expect(second.accessToken != rotated.accessToken && second.refreshToken != rotated.refreshToken)

        // After the dedup window the first refresh token is spent: reuse detected, family revoked.
        try await Task.sleep(for: .milliseconds(2100))
        #expect(await refusal { try await client.refresh(token: refresh, fingerprint: .text("fp")) } == .reuseDetected)
        #expect(await refusal { try await client.verify(token: second.accessToken!, fingerprint: .text("fp")) } == .revoked)
        #expect(await refusal { try await client.refresh(token: second.refreshToken!, fingerprint: .text("fp")) } == .revoked)
        await client.close()
    }

    @Test func fiftyConcurrentRefreshesRotateOnceAndGetTheSamePair() async throws {
        let daemon = try DaemonProcess(["--dedup-window", "2s"])
        let setup = try await daemon.client()
        let other = try await setup.issue(IssueRequest(mode: .session, subject: "dave"))
        let issued = try await setup.issue(IssueRequest(mode: .pair, subject: "dave", fingerprint: .text("fp")))
        let refresh = try #require(issued.refreshToken)

        var clients: [TokenClient] = []
        for _ in 0..<5 { clients.append(try await daemon.client()) }
        let results = try await withThrowingTaskGroup(of: IssueResult.self) { group in
            for index in 0..<50 {
                let client = clients[index % clients.count]
                group.addTask { try await client.refresh(token: refresh, fingerprint: .text("fp")) }
            }
            var results: [IssueResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(results.count == 50)
        #expect(Set(results.map(\.accessToken)).count == 1, "every caller gets the same access token")
        #expect(Set(results.map(\.refreshToken)).count == 1, "every caller gets the same refresh token")
        #expect(results[0].refreshToken != refresh)

        // The same token from another fingerprint is refused, even within the window.
        #expect(await refusal { try await setup.refresh(token: refresh, fingerprint: .text("other")) } == .fingerprintMismatch)

        // The one new pair is live: exactly one rotation happened.
        let pair = results[0]
        #expect(try await setup.verify(token: pair.accessToken!, fingerprint: .text("fp")).status == .ok)
        let next = try await setup.refresh(token: pair.refreshToken!, fingerprint: .text("fp"))

        // After the window, replaying the original is reuse: that family dies, nothing else.
        try await Task.sleep(for: .milliseconds(2100))
        #expect(await refusal { try await setup.refresh(token: refresh, fingerprint: .text("fp")) } == .reuseDetected)
        #expect(await refusal { try await setup.verify(token: next.accessToken!, fingerprint: .text("fp")) } == .revoked)
        #expect(try await setup.verify(token: other.sessionToken!).status == .ok)
        for client in clients { await client.close() }
        await setup.close()
    }

    @Test func aRefreshRacingARevokeNeverLeavesAUsableToken() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let revoker = try await daemon.client()
        for _ in 0..<20 {
            let issued = try await client.issue(IssueRequest(mode: .pair, subject: "erin"))
            async let refreshed = refusalOrResult { try await client.refresh(token: issued.refreshToken!) }
            async let revoked: UInt64 = revoker.revoke(.session(issued.sessionID))
            let (outcome, count) = try await (refreshed, revoked)
            #expect(count == 1)
            if case .success(let pair) = outcome {
                #expect(await refusal { try await client.verify(token: pair.accessToken!) } == .revoked)
                #expect(await refusal { try await client.refresh(token: pair.refreshToken!) } == .revoked)
            }
            #expect(await refusal { try await client.verify(token: issued.accessToken!) } == .revoked)
        }
        await client.close()
        await revoker.close()
    }

    /// Verify-or-refresh through the daemon and tokenctl, which prints the new pair. The rule
    /// itself (only once expired, one rotation, repeats within the dedup window, reuse after it)
    /// is checked to the second on a manual clock in TokenServerTests' VerifyOrRefreshTests.
    @Test func tokenctlVerifyWithTheRefreshTokenPrintsTheRotatedPair() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .pair, subject: "dave", fingerprint: .text("fp"), ttl: 1))
        let access = try #require(issued.accessToken), refresh = try #require(issued.refreshToken)

        // Wait for the access token's exp (whole seconds), however long the machine takes.
        let deadline = Date().addingTimeInterval(30)
        while await refusal({ try await client.verify(token: access, fingerprint: .text("fp")) }) != .expired, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let printed = try daemon.tokenctl(["verify", "--json", "--fingerprint", "fp", "--refresh-token", refresh, access])
        #expect(printed.status == 0, "\(printed.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(printed.output.utf8)) as? [String: Any], "not JSON: \(printed.output)")
        #expect(object["status"] as? String == "refreshed" && object["subject"] as? String == "dave")
        #expect(object["session_id"] as? String == issued.sessionID)
        let newAccess = try #require(object["access_token"] as? String), newRefresh = try #require(object["refresh_token"] as? String)
        #expect(newAccess != access && newRefresh != refresh)
        // The printed refresh token is the family's current one: it rotates (a spent one would be reuse).
        let next = try await client.refresh(token: newRefresh, fingerprint: .text("fp"))
        #expect(next.sessionID == issued.sessionID && next.refreshToken != newRefresh)
        await client.close()
    }
}

func refusalOrResult<T: Sendable>(_ body: () async throws -> T) async -> Result<T, TokenClientError> {
    do {
        return .success(try await body())
    } catch let error as TokenClientError {
        return .failure(error)
    } catch {
        return .failure(TokenClientError(.protocolViolation, message: "\(error)"))
    }
}
