import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// Settings and statuses the other suites leave out: `--verified-cache-size 0`, and
/// `internal_error` from a real fault. (`--leeway` and `expired` are checked to the second on a
/// manual clock in TokenServerTests' LeewayTests; ConfigurationTests sees the setting arrive.)
@Suite struct SettingsTests {
    static func counts(_ client: TokenClient) async throws -> [String: UInt64] {
        Dictionary(try await client.stats().map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
    }

    /// With the cache off every verify checks the signature, the three counters stay 0, and a
    /// revocation still applies at once; with the default the same calls hit the cache.
    @Test func aVerifiedCacheOfSizeZeroIsOff() async throws {
        for size in ["0", "10000"] {
            let daemon = try DaemonProcess(["--verified-cache-size", size])
            let client = try await daemon.client()
            let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
            for _ in 0..<5 { #expect(try await client.verify(token: issued.sessionToken!).status == .ok) }
            let counts = try await Self.counts(client)
            if size == "0" {
                #expect(counts["cache_entries"] == 0 && counts["cache_hits"] == 0 && counts["cache_misses"] == 0, "\(counts)")
            } else {
                #expect(counts["cache_entries"] == 1 && (counts["cache_hits"] ?? 0) >= 4, "the control: \(counts)")
            }
            #expect(try await client.revoke(.token(issued.sessionToken!)) == 1)
            #expect(await refusal { try await client.verify(token: issued.sessionToken!) } == .revoked)
            await client.close()
        }
    }

    /// A snapshot that cannot be written (the temporary file's name taken by a directory) is
    /// `internal_error`, logged; nothing is lost, and the next snapshot succeeds.
    @Test func aSnapshotThatCannotBeWrittenIsAnInternalError() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try DaemonProcess(["--fsync", "always"], stateDirectory: directory)
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        let blocker = directory.appendingPathComponent("snapshot.tks.tmp")
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        let refused = try await client.send(Request(opcode: .snapshot, id: 0))
        #expect(refused.status == .internalError, "\(refused.status.name): \(refused.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("snapshot.tks").path))
        // The reply is generic; the log says what failed.
        #expect(!(refused.message ?? "").contains("snapshot.tks.tmp"))
        #expect(daemon.waitForLog("cannot create") && daemon.log.contains("snapshot.tks.tmp"), "the log says what failed: \(daemon.log)")
        // Serving goes on; the journal keeps every change.
        let later = try await client.issue(IssueRequest(mode: .session, subject: "bob"))
        try FileManager.default.removeItem(at: blocker)
        #expect(try await client.snapshot().records == 2)
        await client.close()
        daemon.kill()
        let restarted = try DaemonProcess(stateDirectory: directory)
        let again = try await restarted.client()
        for token in [issued.sessionToken!, later.sessionToken!] {
            #expect(try await again.verify(token: token).status == .ok)
        }
        await again.close()
    }
}
