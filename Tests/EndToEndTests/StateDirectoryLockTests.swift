import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// One daemon per state directory: a second one, on the same socket or another, refuses at once
/// and changes nothing, and the live daemon's state survives it.
@Suite struct StateDirectoryLockTests {
    /// Every file under `directory` (keys included) by relative path, with its bytes.
    static func contents(_ directory: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = try #require(FileManager.default.enumerator(atPath: directory.path))
        while let name = enumerator.nextObject() as? String {
            let path = directory.appendingPathComponent(name).path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            // The live socket is not a state file (and cannot be read).
            if name.hasSuffix(".sock") { continue }
            files[name] = try Data(contentsOf: URL(fileURLWithPath: path))
        }
        return files
    }

    @Test func aSecondDaemonOnALiveDirectoryRefusesAndTouchesNothing() async throws {
        let daemon = try DaemonProcess(["--fsync", "always"])
        let client = try await daemon.client()
        let kept = try #require(try await client.issue(IssueRequest(mode: .session, subject: "kept")).sessionToken)
        let loggedOut = try #require(try await client.issue(IssueRequest(mode: .session, subject: "logged-out")).sessionToken)
        #expect(try await client.revoke(.token(loggedOut)) == 1)
        // What a start that loads the state would change: it deletes an interrupted snapshot.
        let leftover = daemon.stateDirectory.appendingPathComponent("snapshot.tks.tmp")
        try Data("an interrupted snapshot".utf8).write(to: leftover)

        let before = try Self.contents(daemon.stateDirectory)
        #expect(before["tokend.lock"].map { String(decoding: $0, as: UTF8.self) } == "\(daemon.process.processIdentifier)\n")
        for socket in [daemon.socketPath, "/tmp/tokend-\(UUID().uuidString.prefix(8)).sock"] {
            let failure = try #require(try DaemonProcess.startFailure(stateDirectory: daemon.stateDirectory, socketPath: socket),
                                       "a second daemon on \(socket) started serving")
            #expect(failure.status != 0)
            #expect(failure.output.contains("state directory \(daemon.stateDirectory.path) is in use by another tokend (pid \(daemon.process.processIdentifier))"),
                    "\(failure.output)")
            #expect(try Self.contents(daemon.stateDirectory) == before, "a refused start changed the state directory (socket \(socket))")
        }
        #expect(DaemonProcess.accepts(daemon.socketPath))

        // The live daemon carries on; what it acknowledged survives a crash and a restart.
        let late = try #require(try await client.issue(IssueRequest(mode: .session, subject: "late")).sessionToken)
        await client.close()
        daemon.kill()
        try FileManager.default.removeItem(at: leftover)
        let restarted = try DaemonProcess(stateDirectory: daemon.stateDirectory)
        let again = try await restarted.client()
        #expect(try await again.verify(token: kept).result.subject == "kept")
        #expect(try await again.verify(token: late).result.subject == "late")
        await #expect(throws: TokenClientError.self) { _ = try await again.verify(token: loggedOut) }
        await again.close()
    }

    @Test func storeCheckOnALiveDirectorySaysSoAndChangesNothing() async throws {
        let daemon = try DaemonProcess()
        #expect(try daemon.tokenctl(["issue", "--subject", "a"]).status == 0)
        let before = try Self.contents(daemon.stateDirectory)
        let check = try runProcess(DaemonProcess.executable("tokenctl"), ["store", "check", "--state-dir", daemon.stateDirectory.path, "--json"])
        #expect(check.status == 0, "\(check.output)\(check.error)")
        #expect(check.output.contains(#""in_use_by_pid":\#(daemon.process.processIdentifier)"#), "\(check.output)")
        #expect(try Self.contents(daemon.stateDirectory) == before)
        daemon.stop()
        let idle = try runProcess(DaemonProcess.executable("tokenctl"), ["store", "check", "--state-dir", daemon.stateDirectory.path, "--json"])
        #expect(idle.output.contains(#""in_use_by_pid":null"#), "\(idle.output)")
    }
}
