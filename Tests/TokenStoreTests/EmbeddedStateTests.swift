import Testing
@testable import TokenStore

@Suite struct EmbeddedStateTests {
    let policy = RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindowMilliseconds: 5000)
    let fingerprint = Digest128(high: 1, low: 2)
    let other = Digest128(high: 3, low: 4)

    func session(_ key: SessionKey, subject: String = "alice", now: Int64, idle: Int64 = 120, max: Int64 = 300, bound: Bool = true) -> NewLogin {
        let record = LoginRecord(kind: .session, subject: subject, fingerprint: bound ? fingerprint : nil, createdAt: now, ttl: idle,
                                 expiresAt: now + idle, maxExpiresAt: now + max)
        return NewLogin(key: key, record: record)
    }

    func family(_ key: SessionKey, refreshID: SessionKey, subject: String = "alice", now: Int64) -> NewLogin {
        let record = LoginRecord(kind: .family, subject: subject, fingerprint: fingerprint, createdAt: now, ttl: 30,
                                 expiresAt: now + 60, maxExpiresAt: now + 300, refreshTTL: 60, currentRefreshID: refreshID)
        return NewLogin(key: key, record: record)
    }

    func rotation(_ family: SessionKey, presented: SessionKey, digest: Digest128, new: SessionKey, fingerprint: Digest128?, now: Int64) -> Rotation {
        Rotation(family: family, presented: PresentedRefresh(id: presented, digest: digest, generation: nil), fingerprint: fingerprint, newRefreshID: new,
                 newRefreshExpiresAt: now + 60, sealedCandidate: new.bytes)
    }

    /// A session issued with a short idle TTL is never renewed past now plus that TTL, however
    /// large the daemon's renew-by.
    @Test func aRenewalNeverOutrunsTheLoginsOwnIdleTTL() {
        var state = EmbeddedState(policy: RenewalPolicy(renewBelow: 3600, renewBy: 3600, dedupWindowMilliseconds: 5000), now: 1000)
        let key = SessionKey.random()
        #expect(state.create(session(key, now: 1000, idle: 60, max: 43200), at: 1000_000) == .created)
        guard case .active(let info, let renewed) = state.touchSession(key, fingerprint: fingerprint, explicit: false, now: 1010) else {
            Issue.record("not active"); return
        }
        #expect(renewed && info.expiresAt == 1070, "renewed to \(info.expiresAt), not 1010 + 60")
    }

    /// A token naming another subject for a session changes nothing: no renewal, and it is told
    /// so before it learns whether the session has gone idle.
    @Test func aTokenOfAnotherSubjectRenewsNothing() {
        var state = EmbeddedState(policy: RenewalPolicy(renewBelow: 3600, renewBy: 3600, dedupWindowMilliseconds: 5000), now: 1000)
        let key = SessionKey.random()
        #expect(state.create(session(key, subject: "alice", now: 1000, idle: 120, max: 43200), at: 1000_000) == .created)
        #expect(state.touchSession(key, fingerprint: fingerprint, subject: "root", explicit: false, now: 1010) == .subjectMismatch)
        #expect(state.touchSession(key, fingerprint: fingerprint, subject: "root", explicit: true, now: 1010) == .subjectMismatch)
        #expect(state.logins[key]?.expiresAt == 1120, "a refused token renewed the session")
        #expect(state.changes.count == 1, "only the creation was recorded")
        #expect(state.touchSession(key, fingerprint: fingerprint, subject: "root", explicit: false, now: 2000) == .subjectMismatch)
        #expect(state.touchSession(key, fingerprint: fingerprint, subject: "alice", explicit: false, now: 2000) == .idleExpired)
    }

    /// Subjects are compared as bytes: canonically equivalent strings are different subjects.
    @Test(arguments: [("Kate", "\u{212A}ate"), ("Jos\u{E9}", "Jose\u{301}")])
    func lookAlikeSubjectsDoNotShareSessions(_ subjects: (String, String)) {
        let (one, other) = subjects
        #expect(one == other, "Swift's String equality takes these for one subject")
        var state = EmbeddedState(policy: policy, now: 1000)
        let first = SessionKey.random(), second = SessionKey.random()
        #expect(state.create(session(first, subject: one, now: 1000), at: 1000_000) == .created)
        #expect(state.create(session(second, subject: other, now: 1000), at: 1000_000) == .created)
        #expect(state.list(ListQuery(subject: other, limit: 10), now: 1001).logins.map(\.key) == [second])
        #expect(state.revoke(.subject(other), now: 1001) == 1)
        guard case .active = state.touchSession(first, fingerprint: fingerprint, explicit: false, now: 1002) else {
            Issue.record("revoking \(Array(other.unicodeScalars)) revoked \(Array(one.unicodeScalars))'s session"); return
        }
    }

    @Test func slidingSessionRenewsOnlyBelowTheThresholdByTheStep() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let key = SessionKey.random()
        #expect(state.create(session(key, now: 1000), at: 1000_000) == .created)
        // 120 s idle TTL, 60 s threshold: at 1050, 70 s remain: no renewal.
        guard case .active(let info, let renewed) = state.touchSession(key, fingerprint: fingerprint, explicit: false, now: 1050) else {
            Issue.record("not active"); return
        }
        #expect(!renewed && info.expiresAt == 1120)
        // At 1070, 50 s remain: renewed by exactly 60 s from the old expiry.
        guard case .active(let renewedInfo, true) = state.touchSession(key, fingerprint: fingerprint, explicit: false, now: 1070) else {
            Issue.record("not renewed"); return
        }
        #expect(renewedInfo.expiresAt == 1180)
        // Idle past the expiry: session_expired.
        #expect(state.touchSession(key, fingerprint: fingerprint, explicit: false, now: 1180) == .idleExpired)
    }

    @Test func renewalNeverPassesTheMaximumLifetime() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let key = SessionKey.random()
        _ = state.create(session(key, now: 1000, idle: 120, max: 150), at: 1000_000)
        guard case .active(let info, true) = state.touchSession(key, fingerprint: fingerprint, explicit: false, now: 1100) else {
            Issue.record("not renewed"); return
        }
        #expect(info.expiresAt == 1150)
        guard case .active(_, false) = state.touchSession(key, fingerprint: fingerprint, explicit: true, now: 1140) else {
            Issue.record("renewed past the maximum"); return
        }
        #expect(state.touchSession(key, fingerprint: fingerprint, explicit: false, now: 1150) == .maxLifetimeReached)
        // The tombstone is forgotten after the grace period.
        state.expire(now: 1150 + policy.tombstoneGrace)
        #expect(state.touchSession(key, fingerprint: fingerprint, explicit: false, now: 1150 + policy.tombstoneGrace) == .unknown)
    }

    @Test func explicitRenewTouchesToTheIdleTTL() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let key = SessionKey.random()
        _ = state.create(session(key, now: 1000), at: 1000_000)
        guard case .active(let info, true) = state.touchSession(key, fingerprint: fingerprint, explicit: true, now: 1010) else {
            Issue.record("not renewed"); return
        }
        #expect(info.expiresAt == 1130)
    }

    @Test func fingerprintsBindAndUnboundSessionsAcceptAny() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let bound = SessionKey.random(), unbound = SessionKey.random()
        _ = state.create(session(bound, now: 1000), at: 1000_000)
        _ = state.create(session(unbound, now: 1000, bound: false), at: 1000_000)
        #expect(state.touchSession(bound, fingerprint: other, explicit: false, now: 1001) == .fingerprintMismatch)
        #expect(state.touchSession(bound, fingerprint: nil, explicit: false, now: 1001) == .fingerprintMismatch)
        guard case .active = state.touchSession(unbound, fingerprint: other, explicit: false, now: 1001) else {
            Issue.record("unbound session refused"); return
        }
    }

    @Test func rotationDedupAndReuseDetection() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let fam = SessionKey.random(), r0 = SessionKey.random(), r1 = SessionKey.random(), r2 = SessionKey.random()
        let d0 = Digest128(high: 10, low: 0)
        _ = state.create(family(fam, refreshID: r0, now: 1000), at: 1000_000)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r1, fingerprint: fingerprint, now: 1001), at: 1001_000) == .rotated)
        #expect(state.logins[fam]?.generation == 1 && state.logins[fam]?.generationUsed == false)
        let pair = r1.bytes
        // A concurrent repeat with another candidate gets the first pair back.
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r2, fingerprint: fingerprint, now: 1002), at: 1002_000) == .deduplicated(pair))
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r2, fingerprint: other, now: 1002), at: 1002_000) == .fingerprintMismatch)
        // After the window, while the new pair is unused: a lost response, the same pair again
        // (to its own fingerprint only).
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r2, fingerprint: other, now: 1007), at: 1007_000) == .fingerprintMismatch)
        state.expire(now: 1007)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r2, fingerprint: fingerprint, now: 1007), at: 1007_000) == .deduplicated(pair))
        // An access token of an older generation marks nothing; one of the new pair does.
        guard case .active(let unmarked) = state.checkFamily(fam, fingerprint: fingerprint, generation: 0, now: 1008), !unmarked.generationUsed else {
            Issue.record("an old generation's access token marked the new pair used"); return
        }
        guard case .active(let marked) = state.checkFamily(fam, fingerprint: fingerprint, generation: 1, now: 1008), marked.generationUsed else {
            Issue.record("the new pair's access token did not mark it used"); return
        }
        #expect(state.changes.last == .markUsed(fam, generation: 1))
        // Once it is used, the spent token is theft: the family is revoked.
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r2, fingerprint: fingerprint, now: 1009), at: 1009_000) == .reuseDetected)
        #expect(state.checkFamily(fam, fingerprint: fingerprint, now: 1009) == .revoked)
        // The current refresh token is dead too.
        #expect(state.rotate(rotation(fam, presented: r1, digest: Digest128(high: 11, low: 0), new: r2, fingerprint: fingerprint, now: 1010), at: 1010_000) == .revoked)
    }

    /// The grace ends: after it a retry is reuse even when the new pair was never used; a
    /// grace of 0 leaves the dedup window alone, honoured to the millisecond.
    @Test(arguments: [(Int64?.none, Int64(30_000)), (Int64(0), Int64(1500)), (Int64(10_000), Int64(10_000))])
    func aRetryIsAReuseOnceTheGraceHasEnded(_ setting: (grace: Int64?, ends: Int64)) {
        var state = EmbeddedState(policy: RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindowMilliseconds: 1500, rotationGraceMilliseconds: setting.grace),
                                  now: 1000)
        let fam = SessionKey.random(), r0 = SessionKey.random(), r1 = SessionKey.random()
        let d0 = Digest128(high: 10, low: 0)
        _ = state.create(family(fam, refreshID: r0, now: 1000), at: 1000_000)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r1, fingerprint: fingerprint, now: 1000), at: 1000_250) == .rotated)
        let last = 1000_250 + setting.ends - 1
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: .random(), fingerprint: fingerprint, now: 1000), at: last) == .deduplicated(r1.bytes),
                "\(setting): still a repeat 1 ms before the end")
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: .random(), fingerprint: fingerprint, now: 1000), at: last + 1) == .reuseDetected,
                "\(setting): a reuse from the end on")
    }

    /// However fast a family is refreshed, it holds one entry beyond the dedup window.
    @Test func aFamilyRefreshedOftenHoldsOneEntryBeyondTheWindow() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let fam = SessionKey.random()
        var current = SessionKey.random()
        _ = state.create(family(fam, refreshID: current, now: 1000), at: 1000_000)
        for step in 0..<100 {
            let next = SessionKey.random()
            let rotation = Rotation(family: fam, presented: PresentedRefresh(id: current, digest: Digest128(high: 9, low: UInt64(step)), generation: Int64(step)),
                                    fingerprint: fingerprint, newRefreshID: next, newRefreshExpiresAt: 1070, sealedCandidate: next.bytes)
            #expect(state.rotate(rotation, at: 1000_000 + Int64(step) * 1000) == .rotated)
            current = next
        }
        // Past every window, within the latest rotation's grace (30 s from 1099): that one only.
        state.expire(now: 1110)
        #expect(state.dedup.count == 1, "\(state.dedup.count) entries")
    }

    /// The new pair refreshed is the new pair used: a retry of the token before it is reuse.
    @Test func aRetryAfterTheNextRotationIsAReuse() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let fam = SessionKey.random(), r0 = SessionKey.random(), r1 = SessionKey.random(), r2 = SessionKey.random()
        let d0 = Digest128(high: 10, low: 0), d1 = Digest128(high: 11, low: 0)
        _ = state.create(family(fam, refreshID: r0, now: 1000), at: 1000_000)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r1, fingerprint: fingerprint, now: 1001), at: 1001_000) == .rotated)
        let next = Rotation(family: fam, presented: PresentedRefresh(id: r1, digest: d1, generation: 1), fingerprint: fingerprint, newRefreshID: r2,
                            newRefreshExpiresAt: 1070, sealedCandidate: r2.bytes)
        #expect(state.rotate(next, at: 1010_000) == .rotated)
        #expect(state.logins[fam]?.generation == 2)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: .random(), fingerprint: fingerprint, now: 1011), at: 1011_000) == .reuseDetected)
    }

    /// A token naming another generation than its family's is not the current one, whatever
    /// its `jti`.
    @Test func aTokenOfAnotherGenerationIsAReuse() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let fam = SessionKey.random(), r0 = SessionKey.random()
        _ = state.create(family(fam, refreshID: r0, now: 1000), at: 1000_000)
        let forged = Rotation(family: fam, presented: PresentedRefresh(id: r0, digest: Digest128(high: 1, low: 1), generation: 7), fingerprint: fingerprint,
                              newRefreshID: .random(), newRefreshExpiresAt: 1070, sealedCandidate: [1])
        #expect(state.rotate(forged, at: 1001_000) == .reuseDetected)
    }

    @Test func dedupHitsNeedTheSameFingerprintEvenWhenUnbound() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let fam = SessionKey.random(), r0 = SessionKey.random(), r1 = SessionKey.random()
        var login = family(fam, refreshID: r0, now: 1000)
        login.record.fingerprint = nil
        _ = state.create(login, at: 1000_000)
        let d0 = Digest128(high: 7, low: 7)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: r1, fingerprint: fingerprint, now: 1001), at: 1001_000) == .rotated)
        let pair = r1.bytes
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: .random(), fingerprint: other, now: 1002), at: 1002_000) == .fingerprintMismatch)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: .random(), fingerprint: nil, now: 1002), at: 1002_000) == .fingerprintMismatch)
        #expect(state.rotate(rotation(fam, presented: r0, digest: d0, new: .random(), fingerprint: fingerprint, now: 1002), at: 1002_000) == .deduplicated(pair))
    }

    @Test func aClockJumpDoesNotWalkEverySecond() {
        var state = EmbeddedState(policy: policy, now: 1000)
        _ = state.create(session(.random(), now: 1000, max: 10), at: 1000_000)
        // A year later: one expiry pass, no 31-million-step walk.
        #expect(state.expire(now: 1000 + 365 * 86400) == 1)
    }

    @Test func revokeBySubjectLeavesOthers() {
        var state = EmbeddedState(policy: policy, now: 1000)
        let a1 = SessionKey.random(), a2 = SessionKey.random(), b = SessionKey.random()
        _ = state.create(session(a1, now: 1000), at: 1000_000)
        _ = state.create(family(a2, refreshID: .random(), now: 1000), at: 1000_000)
        _ = state.create(session(b, subject: "bob", now: 1000), at: 1000_000)
        #expect(state.revoke(.subject("alice"), now: 1001) == 2)
        #expect(state.revoke(.subject("alice"), now: 1001) == 0)
        #expect(state.touchSession(a1, fingerprint: fingerprint, explicit: false, now: 1001) == .revoked)
        guard case .active = state.touchSession(b, fingerprint: fingerprint, explicit: false, now: 1001) else {
            Issue.record("bob's session was revoked"); return
        }
        #expect(state.revoke(.login(.random()), now: 1001) == nil)
        #expect(state.counts.revoked == 2 && state.counts.sessions == 1)
    }

    @Test func expiryRemovesOnlyWhatIsDueWithinABudget() {
        var noGrace = policy
        noGrace.tombstoneGrace = 0
        var state = EmbeddedState(policy: noGrace, now: 1000)
        for _ in 0..<100 { _ = state.create(session(.random(), now: 1000, max: 10), at: 1000_000) }
        let late = SessionKey.random()
        _ = state.create(session(late, now: 1000, max: 20), at: 1000_000)
        #expect(state.expire(now: 1009) == 0)
        #expect(state.expire(now: 1010, budget: 30) == 30)
        #expect(state.expire(now: 1010, budget: 1000) == 70)
        #expect(state.logins.count == 1 && state.logins[late] != nil)
        #expect(state.bySubject[SubjectKey("alice")]?.count == 1)
        #expect(state.expire(now: 5000) == 1)
        #expect(state.logins.isEmpty && state.bySubject.isEmpty)
    }

    @Test func idempotentCreate() {
        var state = EmbeddedState(policy: policy, now: 1000)
        var keyed = session(.random(), now: 1000)
        keyed.idempotency = .init(key: Digest128(high: 9, low: 9), requestDigest: Digest128(high: 1, low: 1), sealed: [1, 2, 3])
        #expect(state.create(keyed, at: 1000_000) == .created)
        var again = session(.random(), now: 1001)
        again.idempotency = .init(key: Digest128(high: 9, low: 9), requestDigest: Digest128(high: 1, low: 1), sealed: [4, 5, 6])
        #expect(state.create(again, at: 1001_000) == .existing([1, 2, 3]))
        again.idempotency?.requestDigest = Digest128(high: 2, low: 2)
        #expect(state.create(again, at: 1001_000) == .conflict)
        #expect(state.logins.count == 1)
    }

    @Test func listingPagesInKeyOrder() {
        var state = EmbeddedState(policy: policy, now: 1000)
        var keys: [SessionKey] = []
        for _ in 0..<25 {
            let key = SessionKey.random()
            keys.append(key)
            _ = state.create(session(key, now: 1000), at: 1000_000)
        }
        var seen: [SessionKey] = []
        var after: SessionKey?
        repeat {
            let page = state.list(ListQuery(after: after, limit: 10), now: 1000)
            seen += page.logins.map(\.key)
            after = page.next
        } while after != nil
        #expect(seen == keys.sorted())
    }
}
