import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// The `tokenctl` binary against the real daemon: output, JSON and exit codes.
@Suite struct TokenctlTests {
    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
    }

    @Test func issueVerifyRevokeWithJSONAndExitCodes() throws {
        let daemon = try DaemonProcess()
        let issued = try daemon.tokenctl(["issue", "--subject", "alice", "--fingerprint", "ua", "--claims", #"{"role":"admin"}"#, "--json"])
        #expect(issued.status == 0, "\(issued.error)")
        let issue = try json(issued.output)
        #expect(issue["status"] as? String == "ok")
        let token = try #require(issue["token"] as? String)

        let verified = try daemon.tokenctl(["verify", "--fingerprint", "ua", "--json", token])
        #expect(verified.status == 0)
        let verify = try json(verified.output)
        #expect(verify["status"] as? String == "ok")
        #expect(verify["subject"] as? String == "alice")
        #expect(verify["session_id"] as? String == issue["session_id"] as? String)
        #expect((verify["claims"] as? [String: Any])?["role"] as? String == "admin")
        #expect(verify["expires_at"] as? Int == issue["expires_at"] as? Int)

        let mismatch = try daemon.tokenctl(["verify", "--fingerprint", "other", "--json", token])
        #expect(mismatch.status == 1)
        #expect(try json(mismatch.output)["status"] as? String == "fingerprint_mismatch")

        let pair = try json(try daemon.tokenctl(["issue", "--subject", "alice", "--mode", "pair", "--json"]).output)
        #expect(pair["access_token"] is String && pair["refresh_token"] is String)
        let refreshed = try daemon.tokenctl(["refresh", "--json", try #require(pair["refresh_token"] as? String)])
        #expect(refreshed.status == 0)
        let newAccess = try json(refreshed.output)["access_token"] as? String
        #expect(newAccess != nil && newAccess != pair["access_token"] as? String)

        let revoked = try daemon.tokenctl(["revoke", "--subject", "alice", "--json"])
        #expect(revoked.status == 0)
        let after = try daemon.tokenctl(["verify", "--fingerprint", "ua", "--json", token])
        #expect(after.status == 1)
        #expect(try json(after.output)["status"] as? String == "revoked")

        let sessions = try daemon.tokenctl(["sessions", "--subject", "alice"])
        #expect(sessions.status == 0 && sessions.output.contains("revoked"))
    }

    /// `--socket` and `--json` before or after the subcommand (nested ones too), and a token or
    /// fingerprint from standard input or a file, where `ps` cannot see it.
    @Test func globalOptionsAnywhereAndSecretsFromStandardInputOrFiles() throws {
        let daemon = try DaemonProcess()
        let tokenctl = DaemonProcess.executable("tokenctl")
        for arguments in [
            ["--socket", daemon.socketPath, "--json", "ping"],
            ["ping", "--socket", daemon.socketPath, "--json"],
            ["--json", "ping", "--socket", daemon.socketPath],
            ["--socket", daemon.socketPath, "keys", "--json", "list"],
            ["keys", "list", "--socket", daemon.socketPath, "--json"],
        ] {
            let result = try runProcess(tokenctl, arguments)
            #expect(result.status == 0, "tokenctl \(arguments): \(result.error)")
            #expect(try json(result.output)["status"] as? String == "ok", "tokenctl \(arguments)")
        }
        let ping = try runProcess(tokenctl, ["--socket", daemon.socketPath, "--json", "ping"])
        #expect(ping.output.contains(#""store_healthy":true"#) && ping.output.contains(#""dedup_window_ms":5000"#), "\(ping.output)")
        let help = try runProcess(tokenctl, ["--help"])
        #expect(help.output.contains("GLOBAL OPTIONS"))
        #expect(help.output.components(separatedBy: "--socket <path>").count == 3, "usage line and one entry: \(help.output)")

        let directory = daemon.stateDirectory.path
        let fingerprintFile = directory + "/fingerprint", tokenFile = directory + "/token"
        try Data("device 7\n".utf8).write(to: URL(fileURLWithPath: fingerprintFile))
        let issued = try json(try runProcess(tokenctl, ["--socket", daemon.socketPath, "--json", "issue", "--subject", "alice", "--fingerprint-file", fingerprintFile]).output)
        let token = try #require(issued["token"] as? String)
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: tokenFile))

        let fromStandardInput = try runProcess(tokenctl, ["--socket", daemon.socketPath, "--json", "verify", "--fingerprint", "device 7", "-"], input: token + "\n")
        #expect(try json(fromStandardInput.output)["status"] as? String == "ok", "\(fromStandardInput.error)")
        let fromFiles = try runProcess(tokenctl, ["verify", "--token-file", tokenFile, "--fingerprint-file", fingerprintFile, "--socket", daemon.socketPath, "--json"])
        #expect(try json(fromFiles.output)["status"] as? String == "ok")
        let fingerprintFromStandardInput = try runProcess(tokenctl, ["verify", "--token-file", tokenFile, "--fingerprint", "-", "--socket", daemon.socketPath, "--json"], input: "device 8\n")
        #expect(try json(fingerprintFromStandardInput.output)["status"] as? String == "fingerprint_mismatch")
        // Two values cannot both come from standard input, nor a value and its file.
        #expect(try runProcess(tokenctl, ["verify", "-", "--fingerprint", "-", "--socket", daemon.socketPath], input: token).status == 2)
        #expect(try runProcess(tokenctl, ["verify", token, "--token-file", tokenFile, "--socket", daemon.socketPath]).status == 2)
        #expect(try runProcess(tokenctl, ["verify", "--token-file", directory + "/missing", "--socket", daemon.socketPath]).status == 2)

        let revoked = try runProcess(tokenctl, ["revoke", "--token-file", tokenFile, "--socket", daemon.socketPath, "--json"])
        #expect(try json(revoked.output)["count"] as? Int == 1)
        let after = try runProcess(tokenctl, ["--socket", daemon.socketPath, "--json", "verify", "--token-file", tokenFile, "--fingerprint-file", fingerprintFile])
        #expect(after.status == 1)
        #expect(try json(after.output)["status"] as? String == "revoked")
    }

    /// Into a pipe, `top` prints a line per interval and ends when the reader goes away.
    @Test func topIntoAPipeEndsWhenTheReaderDoes() throws {
        let daemon = try DaemonProcess()
        let started = Date()
        let result = try runProcess("/usr/bin/timeout", ["20", "/bin/sh", "-c",
            "'\(DaemonProcess.executable("tokenctl"))' --socket '\(daemon.socketPath)' top --interval 0.2 | head -3"])
        #expect(result.status == 0, "timeout ended it: \(result.output)")
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(result.output.split(separator: "\n").count == 3, "\(result.output)")
    }

    @Test func usageErrorsAndAnUnreachableDaemon() throws {
        let daemon = try DaemonProcess()
        #expect(try daemon.tokenctl(["revoke", "--token", "a", "--subject", "b"]).status == 2)
        #expect(try daemon.tokenctl(["issue"]).status == 2)
        #expect(try daemon.tokenctl(["issue", "--subject", "a", "--ttl", "soon"]).status == 2)
        let gone = try runProcess(DaemonProcess.executable("tokenctl"), ["ping", "--socket", "/tmp/no-such-tokend.sock"])
        #expect(gone.status == 3)
        #expect(gone.error.contains("/tmp/no-such-tokend.sock"))
    }

    @Test func shutdownOnSIGTERMRemovesTheSocketAndAStaleSocketIsReplaced() throws {
        let daemon = try DaemonProcess()
        // A second daemon on the same live socket refuses to start.
        let second = Process()
        second.executableURL = URL(fileURLWithPath: DaemonProcess.executable("tokend"))
        second.arguments = ["--state-dir", daemon.stateDirectory.path, "--socket", daemon.socketPath]
        second.standardError = Pipe()
        try second.run()
        second.waitUntilExit()
        #expect(second.terminationStatus != 0)
        #expect(DaemonProcess.accepts(daemon.socketPath))

        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))

        // After a crash the socket file stays behind; the next start replaces it.
        let crashed = try DaemonProcess()
        crashed.kill()
        #expect(FileManager.default.fileExists(atPath: crashed.socketPath))
        let restarted = try DaemonProcess(stateDirectory: crashed.stateDirectory, socketPath: crashed.socketPath)
        #expect(try restarted.tokenctl(["ping"]).status == 0)
    }

    /// Session ids are base64url, and one in 64 begins with "-". `tokenctl revoke --session SID`
    /// as README writes it must take such an id too.
    @Test func aSessionIDBeginningWithADashCanBeRevokedByTokenctl() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        var dashed: String?
        for index in 0..<2000 where dashed == nil {
            let issued = try await client.issue(IssueRequest(mode: .session, subject: "u\(index)"))
            if issued.sessionID.hasPrefix("-") { dashed = issued.sessionID }
        }
        await client.close()
        let sessionID = try #require(dashed, "no session id began with - in 2000 issues")
        let separate = try daemon.tokenctl(["revoke", "--session", sessionID, "--json"])
        #expect(separate.status == 0, "tokenctl revoke --session \(sessionID): exit \(separate.status) \(separate.error)")
        #expect(try json(separate.output)["count"] as? Int == 1)
        // The --session=SID form works too (the login is revoked already: count 0).
        let joined = try daemon.tokenctl(["revoke", "--session=\(sessionID)", "--json"])
        #expect(joined.status == 0, "\(joined.error)")
        #expect(try json(joined.output)["status"] as? String == "ok")
    }
}

/// What a key's removal and a leaked key can and cannot do.
@Suite struct KeyRingTests {
    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
    }

    /// A token verified (and cached) before its key was removed verifies no more after the
    /// reload that removed it.
    @Test func aRemovedKeyVerifiesNothingItVerifiedBefore() async throws {
        let daemon = try DaemonProcess()
        let token = try #require(try json(try daemon.tokenctl(["issue", "--subject", "alice", "--json"]).output)["token"] as? String)
        #expect(try daemon.tokenctl(["verify", token]).status == 0)
        #expect(try daemon.tokenctl(["verify", token]).status == 0, "twice, so that the cache holds it")
        let keys = daemon.stateDirectory.appendingPathComponent("keys")
        let old = try #require(try FileManager.default.contentsOfDirectory(atPath: keys.path).first { $0.hasSuffix(".key") })
        #expect(try daemon.tokenctl(["keys", "rotate"]).status == 0)
        try FileManager.default.removeItem(at: keys.appendingPathComponent(old))
        #expect(try daemon.tokenctl(["keys", "reload"]).status == 0)
        let after = try daemon.tokenctl(["verify", "--json", token])
        #expect(after.status == 1)
        #expect(try json(after.output)["status"] as? String == "bad_signature", "\(after.output)")
    }

    /// A holder of a leaked key can sign, but not move a login to another subject: verify
    /// checks the token's sub against the subject stored for its sid, and answers with that.
    @Test func aReSignedTokenCannotClaimAnotherSubject() async throws {
        let daemon = try DaemonProcess()
        let issued = try json(try daemon.tokenctl(["issue", "--subject", "alice", "--json"]).output)
        let token = try #require(issued["token"] as? String)
        let keys = daemon.stateDirectory.appendingPathComponent("keys")
        let keyFile = try #require(try FileManager.default.contentsOfDirectory(atPath: keys.path).first { $0.hasSuffix(".key") })
        let listed = try json(try daemon.tokenctl(["keys", "list", "--json"]).output)
        let kid = try #require(((listed["keys"] as? [[String: Any]])?.first?["kid"]) as? String)
        let decoded = try json(try runProcess(DaemonProcess.executable("tokenctl"), ["jwt", "decode", token]).output)
        var claims = try #require(decoded["claims"] as? [String: Any])
        claims["sub"] = "root"
        let claimsText = String(decoding: try JSONSerialization.data(withJSONObject: claims), as: UTF8.self)
        let forged = try runProcess(DaemonProcess.executable("tokenctl"), [
            // `--kid=` form: a kid is base64url and may begin with "-", which the parser would
            // take for an option (one key in 64).
            "jwt", "sign", "--alg", "HS256", "--key", keys.appendingPathComponent(keyFile).path, "--kid=\(kid)", "--claims", claimsText,
        ])
        #expect(forged.status == 0, "\(forged.error)")
        let forgedToken = forged.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let verified = try daemon.tokenctl(["verify", "--json", forgedToken])
        #expect(verified.status == 1, "a token re-signed as root verified: \(verified.output)")
        #expect(try json(verified.output)["status"] as? String == "bad_signature")
        // The genuine token still answers with the stored subject.
        #expect(try json(try daemon.tokenctl(["verify", "--json", token]).output)["subject"] as? String == "alice")
    }
}
