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
                                    fingerprint: nil, newRefreshID: .random(), newRefreshExpiresAt: 1070, accessTTL: 30, sealedCandidate: [9])
            _ = state.rotate(rotation, at: 1001_000)
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
