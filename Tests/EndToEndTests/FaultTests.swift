import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// Persistence faults on the real daemon: a full disk and a lack of file descriptors never fail
/// a verify, refuse writes with `store_unavailable` while they last, heal without a restart,
/// and lose nothing acknowledged.
@Suite struct FaultTests {
    static let isRoot = getuid() == 0

    /// A small tmpfs of its own, so that the test can fill it; nil with the reason when it
    /// cannot be mounted here.
    final class SmallFileSystem {
        let directory: URL

        init(megabytes: Int) throws {
            directory = URL(fileURLWithPath: "/tmp/tokend-fault-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", directory.path])
            guard mount.status == 0 else {
                try? FileManager.default.removeItem(at: directory)
                throw DaemonError("cannot mount a tmpfs: \(mount.error)")
            }
        }

        /// Fills what is left of the file system with a file; returns its path.
        func fill() throws -> String {
            let path = directory.appendingPathComponent("filler").path
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            guard fd >= 0 else { throw DaemonError("cannot create \(path)") }
            defer { close(fd) }
            let chunk = [UInt8](repeating: 0xAB, count: 4096)
            while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            guard errno == ENOSPC else { throw DaemonError("filling stopped with errno \(errno), not ENOSPC") }
            return path
        }

        deinit {
            _ = try? runProcess("/bin/umount", ["-l", directory.path])
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// Issues until the daemon refuses; returns the tokens it acknowledged and the refusal.
    static func issueUntilRefused(_ client: TokenClient, limit: Int) async -> ([String], Status?) {
        var tokens: [String] = []
        for index in 0..<limit {
            do {
                let issued = try await client.issue(IssueRequest(mode: .session, subject: "u\(index)"))
                if let token = issued.sessionToken { tokens.append(token) }
            } catch let error as TokenClientError {
                return (tokens, error.status)
            } catch {
                return (tokens, .internalError)
            }
        }
        return (tokens, nil)
    }

    @Test(.enabled(if: FaultTests.isRoot, "mounting a tmpfs needs root"))
    func aFullDiskRefusesWritesKeepsVerifyingAndHealsWithoutARestart() async throws {
        let fs = try SmallFileSystem(megabytes: 1)
        let state = fs.directory.appendingPathComponent("state")
        let daemon = try DaemonProcess(["--fsync", "always"], stateDirectory: state)
        let client = try await daemon.client()
        var acknowledged = await Self.issueUntilRefused(client, limit: 20).0
        try #require(acknowledged.count == 20)
        let loggedOut = acknowledged.removeLast()
        #expect(try await client.revoke(.token(loggedOut)) == 1)

        let filler = try fs.fill()
        // Writes are refused once the journal cannot take them: store_unavailable, never more.
        let (more, refused) = await Self.issueUntilRefused(client, limit: 2000)
        #expect(refused == .storeUnavailable, "issue under a full disk: \(String(describing: refused))")
        acknowledged += more
        #expect(await refusal { try await client.revoke(.token(try #require(acknowledged.first))) } == .storeUnavailable)
        // Reads go on, every one of them.
        for token in acknowledged {
            #expect(try await client.verify(token: token).status.isSuccess)
        }
        #expect(await refusal { try await client.verify(token: loggedOut) } == .revoked)
        let stats = try await client.stats()
        #expect(stats.first { $0.name == "persistence_degraded" }?.value == 1)
        #expect((stats.first { $0.name == "persistence_degraded_reads" }?.value ?? 0) >= UInt64(acknowledged.count))

        // Space comes back: within a few seconds writes are accepted again, without a restart.
        try FileManager.default.removeItem(atPath: filler)
        var healed = false
        for _ in 0..<50 where !healed {
            try await Task.sleep(for: .milliseconds(200))
            if let issued = try? await client.issue(IssueRequest(mode: .session, subject: "after")), let token = issued.sessionToken {
                acknowledged.append(token)
                healed = true
            }
        }
        #expect(healed, "writes were still refused 10 s after the disk had room again")
        #expect(try await client.stats().first { $0.name == "persistence_degraded" }?.value == 0)
        await client.close()

        // Nothing acknowledged was lost, across a crash.
        daemon.kill()
        let restarted = try DaemonProcess(stateDirectory: state)
        let again = try await restarted.client()
        for token in acknowledged {
            #expect(try await again.verify(token: token).status.isSuccess)
        }
        #expect(await refusal { try await again.verify(token: loggedOut) } == .revoked)
        await again.close()
        restarted.stop()
    }

    /// With the open-file limit lowered under the running daemon, a snapshot cannot open its
    /// new journal: the old journal stays in use, writes go on, and nothing is lost.
    @Test(.enabled(if: FaultTests.isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs root and prlimit"))
    func aJournalSwitchWithoutDescriptorsKeepsTheOldJournal() async throws {
        let daemon = try DaemonProcess(["--fsync", "always"])
        let client = try await daemon.client()
        var tokens: [String] = []
        for index in 0..<5 {
            tokens.append(try #require(try await client.issue(IssueRequest(mode: .session, subject: "a\(index)")).sessionToken))
        }
        let pid = daemon.process.processIdentifier
        // A new descriptor takes the lowest free number, which must be below the soft limit: a
        // limit at the lowest free number leaves no room, and the new journal cannot open.
        let used = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { Int($0) })
        let lowestFree = try #require((0...).first { !used.contains($0) })
        #expect(try runProcess("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(lowestFree):"]).status == 0)
        let snapshot = await refusal { try await client.snapshot() }
        #expect(snapshot == .internalError, "a snapshot without a descriptor for its journal: \(String(describing: snapshot))")
        for index in 0..<5 {
            tokens.append(try #require(try await client.issue(IssueRequest(mode: .session, subject: "b\(index)")).sessionToken))
        }
        #expect(try runProcess("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=4096:"]).status == 0)
        _ = try await client.snapshot()
        tokens.append(try #require(try await client.issue(IssueRequest(mode: .session, subject: "c")).sessionToken))
        await client.close()
        daemon.kill()
        let restarted = try DaemonProcess(stateDirectory: daemon.stateDirectory)
        let again = try await restarted.client()
        for token in tokens {
            #expect(try await again.verify(token: token).status.isSuccess)
        }
        await again.close()
    }

    /// Started with a soft limit of 1024 under a hard one of 4096, tokend raises the soft limit to
    /// 4096 and keeps --max-connections (8192 asked) to 4096 - 256 of its own.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs prlimit"))
    func theOpenFileLimitIsRaisedAndConnectionsFitUnderIt() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let socket = "/tmp/tokend-\(UUID().uuidString.prefix(8)).sock"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--nofile=1024:4096", DaemonProcess.executable("tokend"), "--state-dir", directory.path, "--socket", socket,
                             "--max-connections", "8192"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        defer { unlink(socket) }
        let deadline = Date().addingTimeInterval(10)
        while !DaemonProcess.accepts(socket), process.isRunning, Date() < deadline { usleep(20_000) }
        let limits = try String(contentsOfFile: "/proc/\(process.processIdentifier)/limits", encoding: .utf8)
        let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        #expect(line.split(separator: " ").compactMap { Int($0) } == [4096, 4096], "soft limit raised to the hard one: \(line)")
        process.terminate()
        process.waitUntilExit()
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("--max-connections lowered") && log.contains("connections.max=3840"), "\(log)")
    }
}
