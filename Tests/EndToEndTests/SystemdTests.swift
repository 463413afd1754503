import Foundation
import TestSupport
import Testing
import TokenClient
import TokenProtocol

/// tokend under systemd, without systemd: a socket bound beforehand and passed as fd 3 with
/// LISTEN_FDS/LISTEN_PID (the way systemd's socket activation passes it), and a NOTIFY_SOCKET
/// this test listens on.
@Suite struct SystemdTests {
    /// Binds the listening socket, puts it at fd 3, sets the variables, and execs tokend (so that
    /// LISTEN_PID, its own pid, is tokend's).
    static let activate = """
        import os, socket, sys
        path, notify, *argv = sys.argv[1:]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(128)
        os.dup2(s.fileno(), 3)
        os.set_inheritable(3, True)
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), NOTIFY_SOCKET=notify, WATCHDOG_USEC="400000")
        os.execve(argv[0], argv, env)
        """

    /// A datagram socket standing in for systemd's notification socket.
    final class NotifySocket {
        let path = "/tmp/notify-\(UUID().uuidString.prefix(8)).sock"
        let fd: Int32

        init() throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            let bound = withUnixAddress(path) { bind(fd, $0, $1) }
            guard bound == 0 else { throw DaemonError("cannot bind \(path)") }
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        /// Messages received until one contains `text`, or nil after `seconds`.
        func await(_ text: String, seconds: Double = 20) -> [String]? {
            var seen: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { continue }
                let message = String(decoding: buffer[0..<n], as: UTF8.self)
                seen.append(message)
                if message.contains(text) { return seen }
            }
            return nil
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test func adoptsThePassedSocketNotifiesAndReloadsOnSighup() async throws {
        let notify = try NotifySocket()
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let socketPath = "/tmp/tokend-act-\(UUID().uuidString.prefix(8)).sock"
        defer { unlink(socketPath) }
        // Nobody may issue at first; the reload below lifts that.
        let config = directory.appendingPathComponent("tokend.conf")
        try "issue-uids = 4242\nadmin-uids = 4242\nlog-level = warning\n".write(to: config, atomically: true, encoding: .utf8)
        let log = directory.appendingPathComponent("tokend.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.activate, socketPath, notify.path, DaemonProcess.executable("tokend"),
                             "--state-dir", directory.path, "--config", config.path]
        let output = try FileHandle(forWritingTo: log)
        process.standardOutput = output
        process.standardError = output
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        let ready = try #require(notify.await("READY=1"), "no READY=1; log:\n\(logText)")
        #expect(ready.last?.contains("MAINPID=\(process.processIdentifier)") == true)
        // The watchdog pings (WATCHDOG_USEC = 0.4 s: every 0.2 s).
        #expect(notify.await("WATCHDOG=1", seconds: 2) != nil)

        let client = try await TokenClient.connect(socketPath: socketPath)
        try await client.ping()
        #expect(await refusal { try await client.issue(IssueRequest(mode: .session, subject: "alice")) } == .forbidden)
        // It served the passed socket: it did not bind one in its state directory.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokend.sock").path))

        // SIGHUP: RELOADING=1 (with the monotonic time), then READY=1, and the new access lists.
        try "log-level = debug\n".write(to: config, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        let reload = try #require(notify.await("READY=1", seconds: 10), "no READY=1 after SIGHUP; log:\n\(logText)")
        #expect(reload.contains { $0.contains("RELOADING=1") && $0.contains("MONOTONIC_USEC=") })
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        #expect(try await client.verify(token: issued.sessionToken!).status == .ok)
        #expect(logText.contains("configuration reloaded"))
        // The issue above logs at debug once the reloaded level applies (written as it happens,
        // so polled for rather than expected at once).
        let deadline = Date().addingTimeInterval(10)
        while !logText.contains("debug"), Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(logText.contains("debug"), "the reloaded log level applies: \(logText)")
        await client.close()

        // SIGTERM: STOPPING=1, and the socket file stays (systemd owns it).
        process.terminate()
        #expect(notify.await("STOPPING=1", seconds: 10) != nil)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: socketPath))
    }

    @Test func aPassedDescriptorThatIsNotAListeningUnixSocketStopsTheStart() throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = """
            import os, sys
            fd = os.open("/dev/null", os.O_RDONLY)
            os.dup2(fd, 3)
            os.set_inheritable(3, True)
            env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
            os.execve(sys.argv[1], sys.argv[1:], env)
            """
        let result = try runProcess("/usr/bin/python3", ["-c", script, DaemonProcess.executable("tokend"), "--state-dir", directory.path])
        #expect(result.status != 0)
        #expect(result.error.contains("descriptor 3 is not a listening Unix stream socket"), "\(result.error)")
    }

    @Test func jsonLogsAreOneObjectPerLineWithTheMetadataAsFields() async throws {
        let daemon = try DaemonProcess(["--log-format", "json", "--log-level", "debug"])
        let client = try await daemon.client()
        _ = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        await client.close()
        daemon.stop()
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.count >= 3)
        var keys = Set<String>()
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["time"] is String && object["level"] is String && object["message"] is String)
            keys.formUnion(object.keys)
        }
        #expect(keys.contains("socket.path") && keys.contains("session.id"), "dotted metadata keys are fields: \(keys)")
        #expect(lines.contains { $0.contains(#""level":"debug""#) })
    }
}
