import Foundation
import NIOConcurrencyHelpers
import Testing
import TokenClient
import TokenProtocol

/// kill -9 of the real daemon under concurrent writes: what a client was told happened,
/// happened, after every restart.
@Suite struct CrashTests {
    /// What the clients were told, across all cycles.
    final class Ledger: Sendable {
        struct Entries {
            var sessions: [String] = []
            /// Per family: the latest acknowledged pair, and the refresh token it replaced.
            var families: [String: (access: String, refresh: String, spent: String?)] = [:]
            var revoked: [String] = []
        }

        let entries = NIOLockedValueBox(Entries())
    }

    /// One client's load until the daemon dies: issue sessions and pairs, rotate, revoke.
    static func load(_ client: TokenClient, ledger: Ledger, worker: Int) async {
        var index = 0
        while true {
            index += 1
            do {
                switch index % 4 {
                case 0, 1:
                    let issued = try await client.issue(IssueRequest(mode: .session, subject: "w\(worker)"))
                    ledger.entries.withLockedValue { $0.sessions.append(issued.sessionToken!) }
                case 2:
                    let issued = try await client.issue(IssueRequest(mode: .pair, subject: "w\(worker)"))
                    ledger.entries.withLockedValue { $0.families[issued.sessionID] = (issued.accessToken!, issued.refreshToken!, nil) }
                    let rotated = try await client.refresh(token: issued.refreshToken!)
                    ledger.entries.withLockedValue { $0.families[issued.sessionID] = (rotated.accessToken!, rotated.refreshToken!, issued.refreshToken!) }
                default:
                    let victim = try await client.issue(IssueRequest(mode: .session, subject: "w\(worker)"))
                    _ = try await client.revoke(.token(victim.sessionToken!))
                    ledger.entries.withLockedValue { $0.revoked.append(victim.sessionToken!) }
                }
            } catch {
                return // The daemon was killed.
            }
        }
    }

    @Test func everyAcknowledgedChangeSurvivesKillNineWithFsyncAlways() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ledger = Ledger()
        for _ in 0..<20 {
            let daemon = try DaemonProcess(["--fsync", "always", "--dedup-window", "1s"], stateDirectory: directory)
            var clients: [TokenClient] = []
            for _ in 0..<4 { clients.append(try await daemon.client()) }
            await withTaskGroup(of: Void.self) { group in
                for (worker, client) in clients.enumerated() {
                    group.addTask { await Self.load(client, ledger: ledger, worker: worker) }
                }
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(250))
                    daemon.kill()
                }
            }
            for client in clients { await client.close() }
        }

        let daemon = try DaemonProcess(["--fsync", "always", "--dedup-window", "1s"], stateDirectory: directory)
        let client = try await daemon.client()
        let entries = ledger.entries.withLockedValue { $0 }
        #expect(entries.sessions.count > 100, "the load did run: \(entries.sessions.count) sessions")
        for token in entries.sessions {
            #expect(try await client.verify(token: token).status == .ok)
        }
        for token in entries.revoked {
            #expect(await refusal { try await client.verify(token: token) } == .revoked)
        }
        for (_, family) in entries.families {
            #expect(try await client.verify(token: family.access).status == .ok)
        }
        // A rotated refresh token stays spent: past the dedup window it is reuse.
        try await Task.sleep(for: .milliseconds(1100))
        for (_, family) in entries.families.prefix(10) {
            guard let spent = family.spent else { continue }
            #expect(await refusal { try await client.refresh(token: spent) } == .reuseDetected)
        }
        await client.close()
    }

    @Test func everysecLosesAtMostAboutTheLastSecond() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(["--fsync", "everysec"], stateDirectory: directory)
        let client = try await daemon.client()
        var early: [String] = []
        for _ in 0..<200 { early.append(try await client.issue(IssueRequest(mode: .session, subject: "early")).sessionToken!) }
        try await Task.sleep(for: .milliseconds(2500))
        for _ in 0..<50 { _ = try await client.issue(IssueRequest(mode: .session, subject: "late")) }
        daemon.kill()
        await client.close()

        let restarted = try DaemonProcess(stateDirectory: directory)
        let after = try await restarted.client()
        for token in early {
            #expect(try await after.verify(token: token).status == .ok)
        }
        await after.close()
    }

    @Test func aCleanStopSnapshotsAndTheNextStartReplaysNothing() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(stateDirectory: directory)
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "a", fingerprint: .text("secret-fingerprint")))
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "b"))
        await client.close()
        #expect(daemon.stop() == 0)
        #expect(daemon.log.contains("snapshot written"))

        let restarted = try DaemonProcess(stateDirectory: directory)
        #expect(restarted.log.contains("journal.records=0"), "\(restarted.log)")
        #expect(restarted.log.contains("snapshot.records=2"))
        let after = try await restarted.client()
        #expect(try await after.verify(token: issued.sessionToken!, fingerprint: .text("secret-fingerprint")).status == .ok)
        #expect(try await after.verify(token: pair.accessToken!).status == .ok)
        await after.close()
        restarted.stop()

        // The files hold no token and no fingerprint, and only their owner can read them.
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".tks") || name.hasSuffix(".tkj") {
            let path = directory.appendingPathComponent(name).path
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            for secret in [issued.sessionToken!, pair.accessToken!, pair.refreshToken!, "secret-fingerprint"] {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(name) contains a secret")
                // Not even a fragment of a token's signature.
                #expect(bytes.range(of: Data(secret.split(separator: ".").last!.prefix(16).utf8)) == nil)
            }
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
            #expect(mode & 0o077 == 0, "\(name) has mode \(String(mode, radix: 8))")
        }
    }

    @Test func aJournalReplaysIdentically() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(["--fsync", "always"], stateDirectory: directory)
        let client = try await daemon.client()
        for index in 0..<20 {
            let issued = try await client.issue(IssueRequest(mode: index % 2 == 0 ? .session : .pair, subject: "s\(index % 3)"))
            if let refresh = issued.refreshToken { _ = try await client.refresh(token: refresh) }
            if index % 5 == 0 { _ = try await client.revoke(.session(issued.sessionID)) }
        }
        let before = try daemon.tokenctl(["sessions", "--json", "--all"])
        #expect(before.status == 0)
        #expect(before.output.components(separatedBy: "session_id").count - 1 == 20, "\(before.output)")
        await client.close()
        daemon.kill()
        var outputs: [String] = []
        for _ in 0..<2 {
            let restarted = try DaemonProcess(["--snapshot-interval", "0"], stateDirectory: directory)
            outputs.append(try restarted.tokenctl(["sessions", "--json", "--all"]).output)
            restarted.kill()
        }
        #expect(outputs[0] == before.output)
        #expect(outputs[1] == before.output)
    }
}
