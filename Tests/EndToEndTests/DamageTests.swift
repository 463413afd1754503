import Foundation
import TestSupport
import Testing
import TokenClient
import TokenProtocol

/// Damaged state files: a torn journal tail is cut off; anything else stops the start with
/// the file and offset, until `--repair` keeps the valid part and moves the file aside.
@Suite struct DamageTests {
    /// A state directory holding a snapshot (sessions 0..<4) and a journal (sessions 4..<8),
    /// left by a kill -9; returns the directory, the tokens, and the journal's path.
    func prepare() async throws -> (URL, [String], String) {
        let directory = DaemonProcess.temporaryStateDirectory()
        let daemon = try DaemonProcess(["--fsync", "always"], stateDirectory: directory)
        let client = try await daemon.client()
        var tokens: [String] = []
        for index in 0..<8 {
            if index == 4 {
                let snapshot = try await client.send(Request(opcode: .snapshot, id: 0))
                try #require(snapshot.status == .ok, "the snapshot was refused: \(snapshot.message ?? "")")
                #expect(try snapshot.fields.uint64(.count) == 4, "the snapshot holds sessions 0..<4")
            }
            tokens.append(try await client.issue(IssueRequest(mode: .session, subject: "user\(index)")).sessionToken!)
        }
        await client.close()
        daemon.kill()
        let journal = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tkj") }.sorted().last!
        return (directory, tokens, directory.appendingPathComponent(journal).path)
    }

    func statuses(_ directory: URL, _ tokens: [String], arguments: [String] = []) async throws -> [Status] {
        let daemon = try DaemonProcess(arguments, stateDirectory: directory)
        let client = try await daemon.client()
        var statuses: [Status] = []
        for token in tokens {
            statuses.append((await refusal { try await client.verify(token: token) }) ?? .ok)
        }
        await client.close()
        daemon.stop()
        return statuses
    }

    func modify(_ path: String, _ change: (inout [UInt8]) -> Void) throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        change(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func aTornLastRecordIsCutOff() async throws {
        let (directory, tokens, journal) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        try modify(journal) { $0.removeLast(7) }
        let statuses = try await statuses(directory, tokens)
        #expect(Array(statuses.prefix(7)) == Array(repeating: .ok, count: 7))
        #expect(statuses[7] == .sessionUnknown)
    }

    @Test func aZeroFilledTailIsCutOff() async throws {
        let (directory, tokens, journal) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        try modify(journal) { $0 += [UInt8](repeating: 0, count: 300) }
        #expect(try await statuses(directory, tokens) == Array(repeating: .ok, count: 8))
        // Appending after the cut works, and survives the next start.
        let daemon = try DaemonProcess(stateDirectory: directory)
        let client = try await daemon.client()
        let more = try await client.issue(IssueRequest(mode: .session, subject: "later")).sessionToken!
        await client.close()
        daemon.kill()
        #expect(try await statuses(directory, tokens + [more]) == Array(repeating: .ok, count: 9))
    }

    /// Where a crash can leave the state directory.
    enum CrashPoint: String, CaseIterable, CustomStringConvertible {
        /// A new journal was created but only part of its header reached the disk.
        case insideAJournalHeader
        /// The last record of the newest journal was cut short.
        case insideARecord
        /// A snapshot was renamed into place, but the journals it covers were not removed yet.
        case betweenSnapshotRenameAndJournalRemoval
        var description: String { rawValue }
    }

    /// No crash, at any of these points, can make a later start refuse: each is followed by two
    /// starts, the first ended by another kill -9 after new writes.
    @Test(arguments: CrashPoint.allCases)
    func aCrashNeverMakesALaterStartRefuse(_ point: CrashPoint) async throws {
        let (directory, tokens, journal) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        var expected = tokens
        switch point {
        case .insideAJournalHeader:
            // A clean stop first, so that the next start has no journal records to replay and
            // writes no snapshot of its own that would hide a wrongly numbered journal.
            #expect(try await statuses(directory, tokens) == Array(repeating: .ok, count: tokens.count))
            let newest = try #require(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tkj") }.max())
            let journal = directory.appendingPathComponent(newest).path
            let number = try #require(UInt64(newest.dropFirst(8).dropLast(4), radix: 16))
            let next = directory.appendingPathComponent(String(format: "journal-%016llx.tkj", number + 1))
            let partial = try Data(contentsOf: URL(fileURLWithPath: journal)).prefix(10)
            #expect(FileManager.default.createFile(atPath: next.path, contents: partial, attributes: [.posixPermissions: 0o600]))
        case .insideARecord:
            try modify(journal) { $0.removeLast(7) }
            expected.removeLast()
        case .betweenSnapshotRenameAndJournalRemoval:
            let saved = try Data(contentsOf: URL(fileURLWithPath: journal))
            let daemon = try DaemonProcess(stateDirectory: directory)
            #expect(try daemon.tokenctl(["snapshot"]).status == 0)
            daemon.kill()
            #expect(!FileManager.default.fileExists(atPath: journal), "the snapshot should have removed \(journal)")
            try saved.write(to: URL(fileURLWithPath: journal))
        }
        for round in 0..<2 {
            let daemon: DaemonProcess
            do {
                daemon = try DaemonProcess(["--fsync", "always"], stateDirectory: directory)
            } catch {
                Issue.record("start \(round + 1) after a crash \(point) refused: \(error)")
                return
            }
            let client = try await daemon.client()
            for token in expected {
                #expect(try await client.verify(token: token).status == .ok, "start \(round + 1) after a crash \(point)")
            }
            expected.append(try #require(try await client.issue(IssueRequest(mode: .session, subject: "round\(round)")).sessionToken))
            await client.close()
            daemon.kill()
        }
        #expect(try await statuses(directory, expected) == Array(repeating: .ok, count: expected.count))
    }

    /// The byte offsets of a state file's record frames (docs/state-format.md section 4: after
    /// the 32-byte header, each record is a u32 payload length, a type byte, a CRC and the payload).
    func recordOffsets(_ path: String) throws -> [Int] {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        var offsets: [Int] = []
        var offset = 32
        while offset + 9 <= bytes.count {
            offsets.append(offset)
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            offset += 9 + length
        }
        #expect(offset == bytes.count, "\(path) ends inside a record")
        return offsets
    }

    @Test func aFlippedByteMidJournalStopsTheStartUntilRepairKeepsTheRecordsBeforeIt() async throws {
        let (directory, tokens, journal) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The journal holds sessions 4..<8, one record each. Damage the third (session 6), with a
        // good record after it: damage, not a torn tail.
        let records = try recordOffsets(journal)
        try #require(records.count == 4, "one journal record per issue: \(records)")
        try modify(journal) { $0[records[2] + 9 + 10] ^= 0xFF }
        let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory), "tokend started on a damaged journal")
        #expect(failure.status != 0)
        #expect(failure.output.contains((journal as NSString).lastPathComponent) && failure.output.contains("offset \(records[2])"), "\(failure.output)")

        let statuses = try await statuses(directory, tokens, arguments: ["--repair"])
        // The snapshot's sessions, and the journal's valid prefix: the records before the damage.
        #expect(Array(statuses.prefix(6)) == Array(repeating: .ok, count: 6), "\(statuses)")
        // The damaged record and everything after it are lost.
        #expect(Array(statuses.suffix(2)) == [.sessionUnknown, .sessionUnknown], "\(statuses)")
        #expect(FileManager.default.fileExists(atPath: journal + ".broken"))
        // Appending after a repair.
        let daemon = try DaemonProcess(stateDirectory: directory)
        let client = try await daemon.client()
        let more = try await client.issue(IssueRequest(mode: .session, subject: "after-repair")).sessionToken!
        await client.close()
        daemon.kill()
        #expect(try await self.statuses(directory, [more]) == [.ok])
    }

    @Test(arguments: ["truncated", "checksum", "header", "empty"])
    func aDamagedSnapshotStopsTheStart(_ damage: String) async throws {
        let (directory, tokens, _) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        let snapshot = directory.appendingPathComponent("snapshot.tks").path
        try modify(snapshot) { bytes in
            switch damage {
            case "truncated": bytes.removeLast(bytes.count / 3)
            case "checksum": bytes[bytes.count - 2] ^= 0x01 // inside the end record's file checksum
            case "header": bytes = Array(bytes.prefix(20))
            default: bytes = []
            }
        }
        let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory), "tokend started on a damaged snapshot")
        #expect(failure.output.contains("snapshot.tks"), "\(failure.output)")
        let statuses = try await statuses(directory, tokens, arguments: ["--repair"])
        // The journal after the snapshot is still replayed.
        #expect(Array(statuses.suffix(4)) == Array(repeating: .ok, count: 4))
        #expect(FileManager.default.fileExists(atPath: snapshot + ".broken"))
    }

    @Test func aLeftoverTemporarySnapshotIsIgnoredAndRemoved() async throws {
        let (directory, tokens, _) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        let temporary = directory.appendingPathComponent("snapshot.tks.tmp").path
        FileManager.default.createFile(atPath: temporary, contents: Data("half a snapshot".utf8), attributes: [.posixPermissions: 0o600])
        #expect(try await statuses(directory, tokens) == Array(repeating: .ok, count: 8))
        #expect(!FileManager.default.fileExists(atPath: temporary))
    }

    @Test func missingFilesStartEmptyAndATruncatedJournalHeaderIsTorn() async throws {
        let (directory, tokens, journal) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.removeItem(atPath: directory.appendingPathComponent("snapshot.tks").path)
        try modify(journal) { $0 = Array($0.prefix(10)) }
        // No snapshot, and a journal cut inside its header: nothing to load, no damage.
        let statuses = try await statuses(directory, tokens)
        #expect(statuses.allSatisfy { $0 == .sessionUnknown })
    }

    @Test func aMissingJournalStopsTheStartAndStoreCheckNamesIt() async throws {
        // The snapshot names journal S as the first it does not cover; here journal S is gone
        // and S + 1 follows (as a backup copied in the wrong order can leave it): the changes of
        // S would silently be missing.
        let (directory, tokens, journal) = try await prepare()
        defer { try? FileManager.default.removeItem(at: directory) }
        let name = URL(fileURLWithPath: journal).lastPathComponent
        let sequence = try #require(UInt64(name.dropFirst(8).dropLast(4), radix: 16))
        let later = String(format: "journal-%016llx.tkj", sequence + 1)
        try FileManager.default.moveItem(atPath: journal, toPath: directory.appendingPathComponent(later).path)

        let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory), "tokend started with a journal missing")
        #expect(failure.status != 0)
        #expect(failure.output.contains("journal \(sequence) is missing") && failure.output.contains("--repair"), "\(failure.output)")
        let check = try runProcess(DaemonProcess.executable("tokenctl"), ["store", "check", "--state-dir", directory.path])
        #expect(check.status == 1)
        #expect(check.output.contains("journal \(sequence) is missing") && check.output.contains(later), "\(check.output)")

        // --repair loads what is there: the snapshot's sessions and those of the later journal.
        let statuses = try await statuses(directory, tokens, arguments: ["--repair"])
        #expect(statuses.allSatisfy { $0 == .ok }, "\(statuses)")
    }
}
