import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// Socket permissions and the issue/admin roles, exercised by a real second Unix user.
@Suite struct AccessControlTests {
    static let user = "tokend-e2e"

    /// Creates the unprivileged user once; nil (with the reason) where that is impossible.
    static let uid: Result<UInt32, DaemonError> = {
        guard getuid() == 0 else { return .failure(DaemonError("needs root to create a second user")) }
        if getpwnam(user) == nil {
            _ = try? runProcess("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user])
        }
        guard let entry = getpwnam(user) else { return .failure(DaemonError("useradd \(user) failed")) }
        return .success(entry.pointee.pw_uid)
    }()

    /// Runs tokenctl as the second user.
    func asUser(_ daemon: DaemonProcess, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        try runProcess("/usr/sbin/runuser", ["-u", Self.user, "--", DaemonProcess.executable("tokenctl")] + arguments + ["--socket", daemon.socketPath])
    }

    func socketDirectory() throws -> URL {
        // The socket's own directory must let the second user through to test the socket's mode.
        let directory = URL(fileURLWithPath: "/tmp/tokend-acl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        return directory
    }

    @Test(.enabled(if: (try? AccessControlTests.uid.get()) != nil, "needs root to create a second user"))
    func aSecondUserCanVerifyButNotIssueUnlessAllowed() async throws {
        let uid = try Self.uid.get()
        let directory = try socketDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }

        // Mode 660, owned by root: the other user cannot even connect.
        let closed = try DaemonProcess(socketPath: directory.appendingPathComponent("closed.sock").path)
        #expect(try asUser(closed, ["ping"]).status == 3)
        closed.stop()

        // Mode 666: the user may verify, but not issue, list sessions or read stats.
        let open = try DaemonProcess(["--socket-mode", "666"], socketPath: directory.appendingPathComponent("open.sock").path)
        let token = try #require(try await open.client().issue(IssueRequest(mode: .session, subject: "alice")).sessionToken)
        #expect(try asUser(open, ["verify", token]).status == 0)
        let issue = try asUser(open, ["issue", "--subject", "mallory", "--json"])
        #expect(issue.status == 1 && issue.output.contains("forbidden"), "\(issue)")
        #expect(try asUser(open, ["sessions", "--json"]).output.contains("forbidden"))
        #expect(try asUser(open, ["stats", "--json"]).output.contains("forbidden"))
        #expect(try asUser(open, ["revoke", "--subject", "alice", "--json"]).output.contains("forbidden"))
        open.stop()

        // Granted the issue role by uid: issuing works, administration still does not.
        let granted = try DaemonProcess(["--socket-mode", "666", "--issue-uids", "\(uid)"], socketPath: directory.appendingPathComponent("granted.sock").path)
        #expect(try asUser(granted, ["issue", "--subject", "bob"]).status == 0)
        #expect(try asUser(granted, ["sessions", "--json"]).output.contains("forbidden"))
        granted.stop()
    }

    /// A real second user reaches the socket but holds no role: every admin operation, through
    /// tokenctl, is refused with forbidden and changes nothing; granted the admin role by uid,
    /// the same commands succeed.
    @Test(.enabled(if: (try? AccessControlTests.uid.get()) != nil, "needs root to create a second user"))
    func everyAdminOperationIsForbiddenToASecondUser() async throws {
        let uid = try Self.uid.get()
        let directory = try socketDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        // Each admin operation of proto-spec.md section 10, as tokenctl calls it.
        let commands: [(operation: String, arguments: [String])] = [
            ("stats", ["stats", "--json"]), ("sessions", ["sessions", "--json"]), ("keys_list", ["keys", "list", "--json"]),
            ("keys_rotate", ["keys", "rotate", "--json"]), ("snapshot", ["snapshot", "--json"]),
            ("keys_reload", ["keys", "reload", "--json"]), ("metrics", ["stats", "--prometheus"]),
        ]
        let open = try DaemonProcess(["--socket-mode", "666"], stateDirectory: state, socketPath: directory.appendingPathComponent("open.sock").path)
        let keys = state.appendingPathComponent("keys")
        let keysBefore = try FileManager.default.contentsOfDirectory(atPath: keys.path).sorted()
        for (operation, arguments) in commands {
            let result = try asUser(open, arguments)
            #expect(result.status == 1, "\(operation) as a second user: exit \(result.status) \(result.output) \(result.error)")
            #expect((result.output + result.error).contains("forbidden"), "\(operation): \(result.output) \(result.error)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: keys.path).sorted() == keysBefore, "a forbidden rotate made a key")
        #expect(!FileManager.default.fileExists(atPath: state.appendingPathComponent("snapshot.tks").path), "a forbidden snapshot was written")
        open.stop()

        let granted = try DaemonProcess(["--socket-mode", "666", "--admin-uids", "\(uid)"], stateDirectory: state,
                                        socketPath: directory.appendingPathComponent("granted.sock").path)
        for (operation, arguments) in commands {
            let result = try asUser(granted, arguments)
            #expect(result.status == 0, "\(operation) with the admin role: exit \(result.status) \(result.output) \(result.error)")
        }
        granted.stop()
    }

    /// Opens up to `count` connections as the second user, pings on each, reports how many were
    /// answered, and holds them until `release` exists (at most 30 s).
    func flood(_ socket: String, count: Int, directory: URL) throws -> (answered: () -> Int?, release: () -> Void) {
        let script = directory.appendingPathComponent("flood.py")
        let report = directory.appendingPathComponent("answered")
        let release = directory.appendingPathComponent("release")
        try #"""
        import os, socket, struct, sys, time
        path, count, report, release = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
        held = []
        for i in range(count):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            try:
                s.connect(path)
                s.sendall(struct.pack(">IBBI", 6, 1, 2, i))  # ping
                if len(s.recv(64)) >= 12:
                    held.append(s)
            except OSError:
                pass
        with open(report + ".tmp", "w") as f:
            f.write(str(len(held)))
        os.rename(report + ".tmp", report)
        deadline = time.time() + 30
        while not os.path.exists(release) and time.time() < deadline:
            time.sleep(0.05)
        """#.write(to: script, atomically: true, encoding: .utf8)
        chmod(directory.path, 0o777)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        process.arguments = ["-u", Self.user, "--", "/usr/bin/python3", script.path, socket, "\(count)", report.path, release.path]
        try process.run()
        let answered = { () -> Int? in
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if let text = try? String(contentsOf: report, encoding: .utf8) { return Int(text) }
                usleep(50_000)
            }
            return nil
        }
        return (answered, {
            FileManager.default.createFile(atPath: release.path, contents: nil)
            process.waitUntilExit()
        })
    }

    /// One uid cannot take every connection: it is held to its share, and an administrator
    /// still gets in when the other peers have filled what they may.
    @Test(.enabled(if: (try? AccessControlTests.uid.get()) != nil, "needs root to create a second user"))
    func aFloodByOneUserLeavesRoomForOthersAndForAdmins() async throws {
        _ = try Self.uid.get()
        let directory = try socketDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }

        let shared = try DaemonProcess(["--socket-mode", "666", "--max-connections", "64", "--max-connections-per-uid", "10"],
                                       socketPath: directory.appendingPathComponent("per-uid.sock").path)
        let perUID = try flood(shared.socketPath, count: 30, directory: directory)
        #expect(perUID.answered() == 10, "one uid holds at most --max-connections-per-uid")
        #expect(try shared.tokenctl(["stats"]).status == 0)
        perUID.release()
        #expect(shared.log.contains("per-uid connection limit reached"))
        shared.stop()

        // 64 in all, of which admins keep min(16, 64 / 8) = 8: a user may hold 56.
        try? FileManager.default.removeItem(at: directory.appendingPathComponent("answered"))
        try? FileManager.default.removeItem(at: directory.appendingPathComponent("release"))
        let reserved = try DaemonProcess(["--socket-mode", "666", "--max-connections", "64", "--max-connections-per-uid", "64"],
                                         socketPath: directory.appendingPathComponent("reserved.sock").path)
        let filled = try flood(reserved.socketPath, count: 80, directory: directory)
        #expect(filled.answered() == 56)
        let stats = try reserved.tokenctl(["stats", "--json"])
        #expect(stats.status == 0 && stats.output.contains(#""connections":57"#), "\(stats.output)")
        filled.release()
        reserved.stop()
    }

    @Test func stateReadableByOthersIsRefusedWithTheFix() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(stateDirectory: directory)
        daemon.stop()
        let keys = directory.appendingPathComponent("keys")
        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: keys.path).first { $0.hasSuffix(".key") })
        chmod(keys.appendingPathComponent(key).path, 0o644)
        let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory))
        #expect(failure.output.contains("chmod 600"), "\(failure.output)")
        chmod(keys.appendingPathComponent(key).path, 0o600)
        chmod(directory.path, 0o755)
        let open = try #require(try DaemonProcess.startFailure(stateDirectory: directory))
        #expect(open.output.contains("chmod 700"), "\(open.output)")
        chmod(directory.path, 0o700)
    }

    @Test func secretsNeverReachTheLogsEvenAtTraceLevel() async throws {
        let daemon = try DaemonProcess(["--log-level", "trace"])
        let client = try await daemon.client()
        let fingerprint = "fp-\(UUID().uuidString)"
        let session = try await client.issue(IssueRequest(mode: .session, subject: "alice", fingerprint: .text(fingerprint)))
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "alice", fingerprint: .text(fingerprint)))
        _ = try await client.verify(token: session.sessionToken!, fingerprint: .text(fingerprint))
        _ = await refusal { try await client.verify(token: session.sessionToken!, fingerprint: .text("wrong-\(fingerprint)")) }
        let rotated = try await client.refresh(token: pair.refreshToken!, fingerprint: .text(fingerprint))
        _ = try await client.revoke(.token(rotated.accessToken!))
        await client.close()
        daemon.stop()
        let log = daemon.log
        #expect(log.contains("trace") || log.contains("debug"), "the daemon logged at a low level")
        // The scan below means something only if the log speaks of these requests: a line per
        // operation naming its login (session ids may be logged; tokens never).
        let lines = log.split(separator: "\n").map { $0.lowercased() }
        #expect(lines.contains { $0.contains("issued") && $0.contains(session.sessionID.lowercased()) }, "no log line about the issue")
        for (operation, word, sessionID) in [("verify", "verif", session.sessionID), ("refresh", "refresh", pair.sessionID),
                                             ("revoke", "revok", pair.sessionID)] {
            let logged = lines.contains { $0.contains(word) && $0.contains(sessionID.lowercased()) }
            #expect(logged, "no log line about the \(operation) of \(sessionID)")
        }
        let keyDirectory = daemon.stateDirectory.appendingPathComponent("keys")
        let secretFiles = try FileManager.default.contentsOfDirectory(atPath: keyDirectory.path)
        var secrets = [session.sessionToken!, pair.accessToken!, pair.refreshToken!, rotated.accessToken!, rotated.refreshToken!, fingerprint]
        secrets += secrets.compactMap { $0.split(separator: ".").last.map(String.init) }
        secrets += try secretFiles.map { Data(try Data(contentsOf: keyDirectory.appendingPathComponent($0))).base64EncodedString() }
        for secret in secrets {
            #expect(!log.contains(secret), "the log holds a secret")
        }
    }
}
