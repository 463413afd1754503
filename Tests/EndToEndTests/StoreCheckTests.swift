import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// `tokenctl snapshot` against the real daemon, then `tokenctl store check` on the state files
/// it leaves: clean, with a flipped byte in the snapshot, and with a torn journal tail.
@Suite struct StoreCheckTests {
    @Test func snapshotThenCheckCleanDamagedAndTornStateDirectories() async throws {
        let daemon = try DaemonProcess(["--fsync", "always"])
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-check-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var secrets = Secrets()

        // Sessions and pairs, a refresh and a revoke, then a snapshot.
        let client = try await daemon.client()
        var sessions: [IssueResult] = []
        for index in 0..<3 {
            sessions.append(try await secrets.issue(client, .session, subject: "check-session-subject-\(index)", fingerprint: "check-fp-session-\(index)"))
        }
        let pair = try await secrets.issue(client, .pair, subject: "check-pair-subject-0", fingerprint: "check-fp-pair-0")
        _ = try await secrets.issue(client, .pair, subject: "check-pair-subject-1", fingerprint: "check-fp-pair-1")
        try await secrets.refresh(client, pair, fingerprint: "check-fp-pair-0")
        #expect(try await client.revoke(.token(sessions[0].sessionToken!)) == 1)

        let snapshot = try daemon.tokenctl(["snapshot", "--json"])
        #expect(snapshot.status == 0, "\(snapshot.error)")
        let written = try json(snapshot.output)
        #expect(written["status"] as? String == "ok")
        #expect((written["records"] as? Int ?? 0) > 0, "\(snapshot.output)")
        #expect((written["message"] as? String)?.isEmpty == false)

        // More changes, which only the new journal holds.
        _ = try await secrets.issue(client, .session, subject: "check-session-subject-3", fingerprint: "check-fp-session-3")
        let late = try await secrets.issue(client, .pair, subject: "check-pair-subject-2", fingerprint: "check-fp-pair-2")
        try await secrets.refresh(client, late, fingerprint: "check-fp-pair-2")
        #expect(try await client.revoke(.token(sessions[1].sessionToken!)) == 1)
        await client.close()

        // What a crash now would leave: every reply above waited for its fsync, and the daemon
        // writes nothing while idle.
        let crashImage = scratch.appendingPathComponent("crash")
        try FileManager.default.copyItem(at: daemon.stateDirectory, to: crashImage)
        #expect(daemon.stop() == 0)

        // The stopped daemon's directory: a final snapshot and an empty journal.
        let clean = try check(daemon.stateDirectory)
        #expect(clean.status == 0, "\(clean.output)\(clean.error)")
        #expect(clean.output.contains("snapshot.tks") && clean.output.contains("put_login") && clean.output.contains("clean"), "\(clean.output)")
        try secrets.expectAbsent(from: clean.output, checking: daemon.stateDirectory)
        let cleanJSON = try check(daemon.stateDirectory, json: true)
        #expect(cleanJSON.status == 0)
        try secrets.expectAbsent(from: cleanJSON.output, checking: daemon.stateDirectory)
        let cleanReport = try json(cleanJSON.output)
        #expect(cleanReport["status"] as? String == "ok")
        #expect(cleanReport["problem"] is NSNull)
        let cleanFiles = try files(cleanReport)
        #expect(cleanFiles.first?["name"] as? String == "snapshot.tks")
        #expect(cleanFiles.first?["version"] as? Int == 2)
        #expect((cleanFiles.first?["created_at"] as? String)?.hasSuffix("Z") == true)
        #expect(try records(cleanFiles.first, "put_login") == 7, "every login, the revoked ones too")
        #expect(try records(cleanFiles.first, "snapshot_end") == 1)

        // The crash image: the snapshot, and a journal with the later changes.
        let crashed = try check(crashImage, json: true)
        #expect(crashed.status == 0, "\(crashed.output)\(crashed.error)")
        try secrets.expectAbsent(from: crashed.output, checking: crashImage)
        try secrets.expectAbsent(from: try check(crashImage).output, checking: crashImage)
        let crashFiles = try files(try json(crashed.output))
        let journal = try #require(crashFiles.last { ($0["name"] as? String)?.hasPrefix("journal-") == true })
        #expect(try records(journal, "put_login") == 2)
        #expect(try records(journal, "rotate") == 1)
        #expect(try records(journal, "revoke") == 1)
        #expect(journal["sequence"] as? Int == crashFiles.first?["sequence"] as? Int, "the journal starts where the snapshot ends")

        // One flipped byte in the middle of the snapshot: damage, which stops tokend.
        let flipped = scratch.appendingPathComponent("flipped")
        try FileManager.default.copyItem(at: daemon.stateDirectory, to: flipped)
        let snapshotFile = flipped.appendingPathComponent("snapshot.tks")
        var bytes = try Data(contentsOf: snapshotFile)
        let middle = bytes.count / 2
        bytes[middle] ^= 0x5A
        try bytes.write(to: snapshotFile)
        let damaged = try check(flipped)
        #expect(damaged.status == 1)
        #expect(damaged.output.contains("problem: snapshot.tks at byte offset"), "\(damaged.output)")
        #expect(damaged.output.contains("damage:") && damaged.output.contains("--repair"))
        try secrets.expectAbsent(from: damaged.output, checking: flipped)
        let damagedJSON = try check(flipped, json: true)
        #expect(damagedJSON.status == 1)
        let damagedReport = try json(damagedJSON.output)
        #expect(damagedReport["status"] as? String == "damaged")
        let damage = try #require(damagedReport["problem"] as? [String: Any], "\(damagedJSON.output)")
        #expect(damage["file"] as? String == "snapshot.tks")
        #expect(damage["torn"] as? Bool == false)
        let damageOffset = try #require(damage["offset"] as? Int)
        #expect(damageOffset >= 32 && damageOffset <= middle)
        // tokend agrees: it refuses to start, naming the same offset.
        let refused = try #require(try DaemonProcess.startFailure(stateDirectory: flipped), "tokend started on a damaged snapshot")
        #expect(refused.status != 0)
        #expect(refused.output.contains("snapshot.tks") && refused.output.contains("byte offset \(damageOffset)"), "\(refused.output)")

        // The crash image's journal cut inside its last record: a torn tail.
        let torn = scratch.appendingPathComponent("torn")
        try FileManager.default.copyItem(at: crashImage, to: torn)
        let journalName = try #require(journal["name"] as? String)
        let journalFile = torn.appendingPathComponent(journalName)
        let lastRecord = try lastRecordOffset(try Data(contentsOf: journalFile))
        let handle = try FileHandle(forWritingTo: journalFile)
        try handle.truncate(atOffset: UInt64(lastRecord + 5))
        try handle.close()
        let tornText = try check(torn)
        #expect(tornText.status == 1)
        #expect(tornText.output.contains("problem: \(journalName) at byte offset \(lastRecord)"), "\(tornText.output)")
        #expect(tornText.output.contains("torn tail"))
        try secrets.expectAbsent(from: tornText.output, checking: torn)
        let tornJSON = try check(torn, json: true)
        #expect(tornJSON.status == 1)
        let tornReport = try json(tornJSON.output)
        #expect(tornReport["status"] as? String == "torn_tail")
        let tail = try #require(tornReport["problem"] as? [String: Any], "\(tornJSON.output)")
        #expect(tail["file"] as? String == journalName)
        #expect(tail["offset"] as? Int == lastRecord)
        #expect(tail["torn"] as? Bool == true)
        // tokend agrees: it cuts the tail off and starts.
        let restarted = try DaemonProcess(["--fsync", "always"], stateDirectory: torn)
        #expect(restarted.log.contains("torn"), "\(restarted.log)")
        #expect(restarted.stop() == 0)
        #expect(try check(torn).status == 0)
    }

    // MARK: Helpers

    private func check(_ directory: URL, json: Bool = false) throws -> (status: Int32, output: String, error: String) {
        try runProcess(DaemonProcess.executable("tokenctl"), ["store", "check", "--state-dir", directory.path] + (json ? ["--json"] : []))
    }

    private func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
    }

    private func files(_ report: [String: Any]) throws -> [[String: Any]] {
        try #require(report["files"] as? [[String: Any]], "no files in \(report)")
    }

    private func records(_ file: [String: Any]?, _ kind: String) throws -> Int {
        let records = try #require(file?["records"] as? [String: Any], "no records in \(String(describing: file))")
        return try #require(records[kind] as? Int, "no \(kind) count in \(records)")
    }

    /// Where the last record of a journal starts, walking its `length | type | crc` frames.
    private func lastRecordOffset(_ bytes: Data) throws -> Int {
        let bytes = [UInt8](bytes)
        var offset = 32, last: Int?
        while offset + 9 <= bytes.count {
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            last = offset
            offset += 9 + length
        }
        try #require(offset == bytes.count, "the journal does not end on a record boundary")
        return try #require(last, "the journal holds no records")
    }
}

/// Everything secret the test handed out or got back, which `store check` must never print.
private struct Secrets {
    var values: [String] = []

    mutating func issue(_ client: TokenClient, _ mode: TokenMode, subject: String, fingerprint: String) async throws -> IssueResult {
        let issued = try await client.issue(IssueRequest(mode: mode, subject: subject, fingerprint: .text(fingerprint)))
        values += [subject, issued.sessionID] + [issued.sessionToken, issued.accessToken, issued.refreshToken].compactMap { $0 }
        remember(fingerprint: fingerprint)
        return issued
    }

    mutating func refresh(_ client: TokenClient, _ pair: IssueResult, fingerprint: String) async throws {
        let rotated = try await client.refresh(token: try #require(pair.refreshToken), fingerprint: .text(fingerprint))
        values += [rotated.accessToken, rotated.refreshToken].compactMap { $0 }
    }

    private mutating func remember(fingerprint: String) {
        let bytes = Array(fingerprint.utf8)
        values += [fingerprint, bytes.map { String(format: "%02x", $0) }.joined(), Data(bytes).base64EncodedString()]
    }

    /// Fails when `output` (of a check of `directory`) holds a secret, or any long run of token
    /// characters with a digit in it (a hex or base64 digest, a token, a key) other than the
    /// directory's path and a journal's name.
    func expectAbsent(from output: String, checking directory: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for value in values {
            #expect(!output.contains(value), "store check printed a secret", sourceLocation: sourceLocation)
        }
        let output = output.replacingOccurrences(of: directory.path, with: "DIR")
        let opaque = try Regex("[A-Za-z0-9_+/=-]{16,}")
        for match in output.matches(of: opaque) {
            let text = String(output[match.range])
            guard !text.hasPrefix("journal-"), text.contains(where: \.isNumber) else { continue }
            Issue.record("store check printed something opaque: \(text)", sourceLocation: sourceLocation)
        }
    }
}
