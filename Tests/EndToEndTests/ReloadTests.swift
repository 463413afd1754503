import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// SIGHUP reloads what README's "Reload" names: the access lists (`issue-uids`, `issue-gids`,
/// `admin-uids`, `admin-gids`), the log level, and the key files; a bad key file fails the
/// reload and the daemon keeps the keys it had.
@Suite struct ReloadTests {
    /// Sends SIGHUP and waits until the daemon has logged the end of that reload.
    static func reload(_ daemon: DaemonProcess, marker: String = "configuration reloaded") throws {
        let done = daemon.log.components(separatedBy: marker).count - 1
        kill(daemon.process.processIdentifier, SIGHUP)
        guard daemon.waitForLog(marker, count: done + 1) else { throw DaemonError("no \"\(marker)\" after SIGHUP:\n\(daemon.log)") }
    }

    /// This test's uid and primary gid (root's, 0 and 0, under tools/test).
    static let uid = getuid(), gid = getgid()

    @Test func theAccessListsAndTheLogLevelReloadFromTheConfigFile() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let config = directory.appendingPathComponent("tokend.conf")
        func write(_ text: String) throws { try text.write(to: config, atomically: true, encoding: .utf8) }
        // Neither role for this uid or gid; log level info (no debug lines).
        try write("issue-uids = 4242\nadmin-uids = 4242\nlog-level = info\n")
        let daemon = try DaemonProcess(["--config", config.path], stateDirectory: directory)
        let client = try await daemon.client()
        func mayIssue() async -> Bool { await refusal { try await client.issue(IssueRequest(mode: .session, subject: "alice")) } == nil }
        func isAdmin() async -> Bool { await refusal { try await client.stats() } == nil }
        #expect(await !mayIssue())
        #expect(await !isAdmin())
        #expect(!daemon.log.contains("issued"), "no debug lines at info")

        // issue-gids, and the log level to debug: the issue is logged at debug.
        try write("issue-uids = 4242\nissue-gids = \(Self.gid)\nadmin-uids = 4242\nlog-level = debug\n")
        try Self.reload(daemon)
        #expect(await mayIssue(), "issue-gids reloaded")
        #expect(await !isAdmin())
        #expect(daemon.waitForLog("issued"), "the debug level reloaded: \(daemon.log)")

        // admin-gids (admin implies issue), and the log level to notice: no more debug lines.
        try write("issue-uids = 4242\nadmin-uids = 4242\nadmin-gids = \(Self.gid)\nlog-level = notice\n")
        try Self.reload(daemon)
        #expect(await isAdmin(), "admin-gids reloaded")
        let debugLines = daemon.log.components(separatedBy: "issued").count
        #expect(await mayIssue())
        // The reload's own notice comes after this issue would have logged: nothing new since.
        try Self.reload(daemon)
        #expect(daemon.log.components(separatedBy: "issued").count == debugLines, "a debug line at notice level")

        // admin-uids, then issue-uids alone.
        try write("issue-uids = 4242\nadmin-uids = \(Self.uid)\nlog-level = notice\n")
        try Self.reload(daemon)
        #expect(await isAdmin(), "admin-uids reloaded")
        try write("issue-uids = \(Self.uid)\nadmin-uids = 4242\nlog-level = notice\n")
        try Self.reload(daemon)
        #expect(await mayIssue(), "issue-uids reloaded")
        #expect(await !isAdmin(), "admin-uids reloaded away")
        await client.close()
    }

    @Test func keyFilesReloadAndABadOneKeepsTheKeysInUse() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(stateDirectory: directory)
        let client = try await daemon.client()
        let keys = directory.appendingPathComponent("keys")
        let first = try #require(try await client.keysList().first)
        let old = try #require(try await client.issue(IssueRequest(mode: .session, subject: "alice")).sessionToken)

        // A key file added, dated a second after the first key: after SIGHUP it verifies, and
        // it signs once its time has come.
        let activation = Int(first.createdAt) + 1
        let added = keys.appendingPathComponent("\(activation)-HS256.key")
        let made = try runProcess(DaemonProcess.executable("tokenctl"), ["jwt", "keygen", "--alg", "HS256", "--out", added.path])
        try #require(made.status == 0, "\(made.error)")
        try Self.reload(daemon)
        let ring = try await client.keysList()
        #expect(ring.count == 2, "\(ring)")
        let second = try #require(ring.first { $0.kid != first.kid })
        var signing = first.kid
        let deadline = Date().addingTimeInterval(10)
        while signing != second.kid, Date() < deadline {
            signing = try await client.keysList().first { $0.signing }?.kid ?? signing
            if signing != second.kid { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(signing == second.kid, "the added key signs from its time")
        let new = try #require(try await client.issue(IssueRequest(mode: .session, subject: "bob")).sessionToken)
        #expect(try Self.kid(of: new) == second.kid)
        #expect(try await client.verify(token: old).status.isSuccess, "the first key still verifies")

        // The first key's file removed: after SIGHUP its tokens no longer verify.
        let firstFile = try #require(try FileManager.default.contentsOfDirectory(atPath: keys.path).first { $0.hasPrefix("\(first.createdAt)-") })
        try FileManager.default.removeItem(at: keys.appendingPathComponent(firstFile))
        try Self.reload(daemon)
        #expect(try await client.keysList().map(\.kid) == [second.kid])
        #expect(await refusal { try await client.verify(token: old) } == .badSignature)
        #expect(try await client.verify(token: new).status.isSuccess)

        // A key file that is not a key: the reload fails, naming it, and the keys stay.
        let bad = keys.appendingPathComponent("\(activation + 5)-HS256.key")
        #expect(FileManager.default.createFile(atPath: bad.path, contents: Data("not a key".utf8), attributes: [.posixPermissions: 0o600]))
        try Self.reload(daemon, marker: "key reload failed; keeping the keys in use")
        #expect(daemon.log.contains(bad.lastPathComponent), "the log names the bad file")
        #expect(try await client.keysList().map(\.kid) == [second.kid])
        #expect(try await client.verify(token: new).status.isSuccess)
        #expect(try Self.kid(of: try #require(try await client.issue(IssueRequest(mode: .session, subject: "carol")).sessionToken)) == second.kid)
        // keys_reload says so too: internal_error, naming the file.
        let reloaded = try await client.send(Request(opcode: .keysReload, id: 0))
        #expect(reloaded.status == .internalError && (reloaded.message ?? "").contains(bad.lastPathComponent), "\(reloaded.status.name): \(reloaded.message ?? "")")
        await client.close()
    }

    /// The `kid` of a token's protected header.
    static func kid(of token: String) throws -> String? {
        var header = String(try #require(token.split(separator: ".").first))
        header = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        header += String(repeating: "=", count: (4 - header.count % 4) % 4)
        let data = try #require(Data(base64Encoded: header))
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["kid"] as? String
    }
}
