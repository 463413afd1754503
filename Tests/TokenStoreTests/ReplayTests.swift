import NIOCore
import Testing
@testable import TokenStore

/// The journal describes the state exactly: replaying the changes of a run, encoded and
/// decoded, rebuilds the same tables, and replaying twice changes nothing.
@Suite struct ReplayTests {
    let policy = RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindowMilliseconds: 5000)

    func run() -> EmbeddedState {
        var state = EmbeddedState(policy: policy, now: 1000)
        let fp = Digest128(high: 5, low: 6)
        var families: [(SessionKey, SessionKey)] = []
        for index in 0..<30 {
            let key = SessionKey.random()
            if index % 2 == 0 {
                let record = LoginRecord(kind: .session, subject: "user\(index % 7)", fingerprint: fp, createdAt: 1000, ttl: 100,
                                         expiresAt: 1100, maxExpiresAt: 2000)
                _ = state.create(NewLogin(key: key, record: record), at: 1000_000)
                _ = state.touchSession(key, fingerprint: fp, explicit: true, now: 1050)
            } else {
                let refresh = SessionKey.random()
                let record = LoginRecord(kind: .family, subject: "user\(index % 7)", fingerprint: nil, createdAt: 1000, ttl: 30,
                                         expiresAt: 1060, maxExpiresAt: 2000, refreshTTL: 60, currentRefreshID: refresh)
                var login = NewLogin(key: key, record: record)
                login.idempotency = .init(key: Digest128(high: UInt64(index), low: 1), requestDigest: Digest128(high: 0, low: 0), sealed: [UInt8(index)])
                _ = state.create(login, at: 1000_000)
                families.append((key, refresh))
            }
        }
        for (index, (family, refresh)) in families.enumerated() {
            let rotation = Rotation(family: family, presented: PresentedRefresh(id: refresh, digest: Digest128(high: 99, low: UInt64(index)), generation: 0),
                                    fingerprint: nil, newRefreshID: .random(), newRefreshExpiresAt: 1070, sealedCandidate: [9])
            _ = state.rotate(rotation, at: 1001_000)
            // Every other new pair used: a mark_used record.
            if index % 2 == 0 { _ = state.checkFamily(family, fingerprint: nil, generation: 1, now: 1001) }
        }
        _ = state.revoke(.subject("user3"), now: 1002)
        return state
    }

    @Test func replayingTheEncodedJournalRebuildsTheState() throws {
        let original = run()
        var buffer = ByteBuffer()
        for change in original.changes { RecordCodec.append(change, to: &buffer) }
        var decoded: [JournalRecord] = []
        while buffer.readableBytes > 0 {
            let length = Int(buffer.readInteger(as: UInt32.self)!)
            let kind = JournalRecord.Kind(rawValue: buffer.readInteger(as: UInt8.self)!)!
            _ = buffer.readInteger(as: UInt32.self)
            decoded.append(try RecordCodec.decode(kind: kind, payload: buffer.readSlice(length: length)!))
        }
        #expect(decoded == original.changes)
        #expect(decoded.contains { if case .markUsed = $0 { true } else { false } })
        #expect(original.logins.filter { $0.1.kind == .family && $0.1.generationUsed }.count == 8, "the families marked, 15 of them every other")

        var replayed = EmbeddedState(policy: policy, now: 1000)
        replayed.recordsChanges = false
        for record in decoded { replayed.apply(record, now: 1002) }
        #expect(replayed.logins == original.logins)
        #expect(replayed.dedup == original.dedup)
        #expect(replayed.counts == original.counts)
        #expect(replayed.bySubject == original.bySubject)

        // Applying everything again (a fuzzy snapshot plus its journal) changes nothing.
        for record in decoded { replayed.apply(record, now: 1002) }
        #expect(replayed.logins == original.logins)
        #expect(replayed.counts == original.counts)
    }
}

/// Files of format version 1 (no generations; dedup times in seconds) are still read.
@Suite struct FormatVersionOneTests {
    static func key(_ n: UInt64) -> [UInt8] { withUnsafeBytes(of: UInt64(0).bigEndian, Array.init) + withUnsafeBytes(of: n.bigEndian, Array.init) }
    static func int(_ n: Int64) -> [UInt8] { withUnsafeBytes(of: n.bigEndian, Array.init) }

    /// A version 1 dedup entry: key, expiry in seconds, no fingerprint, no request digest, sealed.
    static let dedup = key(9) + int(1005) + [0, 0] + [0, 0, 0, 2, 0xAA, 0xBB]

    @Test func aVersionOneRotationReadsAsGenerationZeroWithItsWindowInMilliseconds() throws {
        let payload = Self.key(1) + Self.key(2) + Self.int(1070) + Self.dedup
        let record = try RecordCodec.decode(kind: .rotate, payload: ByteBuffer(bytes: payload), version: 1)
        let entry = DedupEntry(sealed: [0xAA, 0xBB], fingerprint: nil, requestDigest: nil, windowEndsAt: 1_005_000)
        #expect(record == .rotate(SessionKey(high: 0, low: 1), refreshID: SessionKey(high: 0, low: 2), expiresAt: 1070, generation: 0,
                                  dedup: JournalRecord.DedupPut(digest: Digest128(high: 0, low: 9), entry: entry)))
        #expect(entry.expiresAt == 1_005_000 && entry.generation == 0)
        // The same bytes are too short for version 2, which has the generation and two more times.
        #expect(throws: RecordError.self) { try RecordCodec.decode(kind: .rotate, payload: ByteBuffer(bytes: payload), version: 2) }
    }

    @Test func aVersionOneLoginReadsAsGenerationZeroUnused() throws {
        let subject = Array("ann".utf8)
        let login = [2, 0] + Self.int(1000) + Self.int(30) + Self.int(1060) + Self.int(2000) + Self.int(60) + [0] + [1] + Self.key(3)
            + [0, UInt8(subject.count)] + subject
        let record = try RecordCodec.decode(kind: .putLogin, payload: ByteBuffer(bytes: Self.key(1) + login + [0]), version: 1)
        let expected = LoginRecord(kind: .family, subject: "ann", fingerprint: nil, createdAt: 1000, ttl: 30, expiresAt: 1060, maxExpiresAt: 2000,
                                   refreshTTL: 60, currentRefreshID: SessionKey(high: 0, low: 3))
        #expect(record == .putLogin(SessionKey(high: 0, low: 1), expected, dedup: nil))
    }

    /// Generations are 0 to 2³²−1, what the login table holds: anything else is damage.
    @Test(arguments: [Int64(-1), Int64(UInt32.max) + 1, .max])
    func aGenerationOutOfRangeIsDamage(_ generation: Int64) {
        let payload = ByteBuffer(bytes: Self.key(1) + Self.int(generation))
        #expect(throws: RecordError.self) { try RecordCodec.decode(kind: .markUsed, payload: payload, version: 2) }
    }

    @Test func markUsedIsNoRecordOfVersionOne() {
        let payload = ByteBuffer(bytes: Self.key(1) + Self.int(0))
        #expect(throws: RecordError.self) { try RecordCodec.decode(kind: .markUsed, payload: payload, version: 1) }
        #expect((try? RecordCodec.decode(kind: .markUsed, payload: payload, version: 2)) == .markUsed(SessionKey(high: 0, low: 1), generation: 0))
    }
}

@Suite struct JournalGapTests {
    @Test func theJournalsAfterTheSnapshotMustRunUnbroken() {
        #expect(StateLoader.missingJournals(snapshot: 5, journals: [3, 5, 6, 7]) == nil, "older journals are covered by the snapshot")
        #expect(StateLoader.missingJournals(snapshot: 5, journals: []) == nil)
        #expect(StateLoader.missingJournals(snapshot: nil, journals: [1, 2, 3]) == nil)
        #expect(StateLoader.missingJournals(snapshot: nil, journals: []) == nil)
        #expect(StateLoader.missingJournals(snapshot: 5, journals: [6, 7])?.contains("journal 5 is missing") == true)
        #expect(StateLoader.missingJournals(snapshot: 5, journals: [5, 8])?.contains("journals 6 to 7 are missing") == true)
        #expect(StateLoader.missingJournals(snapshot: nil, journals: [4, 5])?.contains("there is no snapshot") == true)
        // Numbers tokend never writes are refused, not crashed on.
        #expect(StateLoader.missingJournals(snapshot: nil, journals: [0])?.contains("journal 0 is not a number tokend writes") == true)
        #expect(StateLoader.missingJournals(snapshot: nil, journals: [0, 1])?.contains("journal 0 is not a number tokend writes") == true)
        #expect(StateLoader.journalSequence(fileName: "journal-000000000000000a.tkj") == 10)
        #expect(StateLoader.journalSequence(fileName: "journal-000000000000000A.tkj") == nil, "one number, one name")
        #expect(StateLoader.journalSequence(fileName: "journal-a.tkj") == nil)
    }
}
