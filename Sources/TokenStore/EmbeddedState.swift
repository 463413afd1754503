/// The embedded store's state and every rule that changes it, as plain synchronous code with
/// the time passed in. `EmbeddedStore` serializes access; tests drive this directly.
struct EmbeddedState: Sendable {
    var policy: RenewalPolicy
    private(set) var logins = LoginTable()
    /// Keyed by the subject's UTF-8 bytes: Swift's `String` equality would take canonically
    /// equivalent subjects ("Kate" and "\u{212A}ate", NFC and NFD) for one, and the Redis store
    /// keys by bytes.
    private(set) var bySubject: [SubjectKey: Set<SessionKey>] = [:]
    private(set) var dedup: [Digest128: DedupEntry] = [:]
    private var loginExpiry: ExpiryQueue<SessionKey>
    /// Dedup entries by the second their keeping ends (rounded up): a rotation's grace
    /// follows its family's access TTL, so insertion order is not expiry order.
    private var dedupExpiry: ExpiryQueue<Digest128>
    /// Each family's latest rotation entry. Once the family rotates again, or its pair is used,
    /// that entry can answer nothing but a repeat within its window (after it, the rules say
    /// reuse with or without it), so it is kept only that long: a family holds at most one
    /// entry for the grace, however fast it is refreshed. Rebuilt by replaying journals; the
    /// entries a snapshot brings back simply run out their time.
    private var latestRotation: [SessionKey: Digest128] = [:]
    private(set) var counts = Counts()
    /// Changes made since the owner last took them, for the journal.
    var changes: [JournalRecord] = []
    /// Whether to record changes at all (off while replaying).
    var recordsChanges = true

    struct Counts: Hashable {
        var sessions = 0
        var families = 0
        var revoked = 0
    }

    init(policy: RenewalPolicy, now: Int64) {
        self.policy = policy
        self.loginExpiry = ExpiryQueue(start: now)
        self.dedupExpiry = ExpiryQueue(start: now)
    }

    // MARK: Expiry

    /// Forgets logins past their maximum lifetime and dedup entries past their keeping, at
    /// most `budget` logins per call; returns how many logins it removed.
    @discardableResult
    mutating func expire(now: Int64, budget: Int = 10_000) -> Int {
        dedupExpiry.drain(now: now) { digest in
            // Unless the entry was replaced by one kept longer (queued again for its own time).
            if let entry = dedup[digest], entry.expiresAt <= now * 1000 { dedup[digest] = nil }
        }
        var expired: [SessionKey] = []
        let removed = loginExpiry.drain(now: now, budget: budget) { expired.append($0) }
        for key in expired { remove(key) }
        return removed
    }

    private mutating func remove(_ key: SessionKey) {
        guard let record = logins.removeValue(forKey: key) else { return }
        adjustCounts(record, by: -1)
        latestRotation[key] = nil
        let subject = SubjectKey(record.subject)
        bySubject[subject]?.remove(key)
        if bySubject[subject]?.isEmpty == true { bySubject[subject] = nil }
    }

    private mutating func adjustCounts(_ record: LoginRecord, by delta: Int) {
        if record.revoked {
            counts.revoked += delta
        } else if record.kind == .session {
            counts.sessions += delta
        } else {
            counts.families += delta
        }
    }

    /// A login still held: records outlive their maximum lifetime by `tombstoneGrace`, so
    /// that a late caller hears "maximum lifetime reached" instead of "unknown".
    private func live(_ key: SessionKey, now: Int64) -> LoginRecord? {
        guard let record = logins[key], now < record.forgetAt(policy: policy) else { return nil }
        return record
    }

    /// `now` in seconds: an entry kept past its start is kept (lookups compare milliseconds).
    private mutating func insertDedup(_ put: JournalRecord.DedupPut, now: Int64) {
        guard put.entry.expiresAt > now * 1000 else { return }
        hold(put.entry, at: put.digest)
    }

    /// Keeps the entry of `digest` no longer than its window (`latestRotation`).
    private mutating func keepOnlyForTheWindow(_ digest: Digest128, now: Int64) {
        guard var entry = dedup[digest], entry.expiresAt > entry.windowEndsAt else { return }
        entry.expiresAt = entry.windowEndsAt
        guard entry.expiresAt > now * 1000 else {
            dedup[digest] = nil
            return
        }
        hold(entry, at: digest)
    }

    /// Holds `entry` until its keeping ends, queued for the second that ends it (rounded up).
    private mutating func hold(_ entry: DedupEntry, at digest: Digest128) {
        dedup[digest] = entry
        let (second, part) = entry.expiresAt.quotientAndRemainder(dividingBy: 1000)
        dedupExpiry.insert(digest, at: part == 0 ? second : second + 1)
    }

    /// The dedup entry of `digest` if it is still kept at `milliseconds`.
    private func kept(_ digest: Digest128, at milliseconds: Int64) -> DedupEntry? {
        guard let entry = dedup[digest], milliseconds < entry.expiresAt else { return nil }
        return entry
    }

    private mutating func revoke(_ key: SessionKey, now: Int64) -> Bool {
        guard let record = logins[key], !record.revoked else { return false }
        apply(.revoke(key), now: now)
        return true
    }

    // MARK: Operations

    mutating func create(_ login: NewLogin, at milliseconds: Int64) -> CreateOutcome {
        let now = milliseconds / 1000
        if let idempotency = login.idempotency, let entry = kept(idempotency.key, at: milliseconds) {
            return entry.requestDigest == idempotency.requestDigest ? .existing(entry.sealed) : .conflict
        }
        let dedup = login.idempotency.map {
            JournalRecord.DedupPut(digest: $0.key, entry: DedupEntry(sealed: $0.sealed, fingerprint: login.record.fingerprint, requestDigest: $0.requestDigest,
                                                                       windowEndsAt: milliseconds + policy.dedupWindowMilliseconds))
        }
        apply(.putLogin(login.key, login.record, dedup: dedup), now: now)
        return .created
    }

    /// Applies a change: every mutation goes through here, live or replayed, so replay
    /// rebuilds exactly the state the journal describes.
    mutating func apply(_ change: JournalRecord, now: Int64) {
        switch change {
        case .putLogin(let key, let record, let dedup):
            if let previous = logins.updateValue(record, forKey: key) {
                adjustCounts(previous, by: -1)
            } else {
                bySubject[SubjectKey(record.subject), default: []].insert(key)
                // From the stored record, whose times the table keeps within 32 bits, so that
                // hostile values from a state file cannot overflow the arithmetic.
                loginExpiry.insert(key, at: logins[key]!.forgetAt(policy: policy))
            }
            adjustCounts(record, by: 1)
            if let dedup { insertDedup(dedup, now: now) }
        case .setExpiry(let key, let expiresAt):
            logins[key]?.expiresAt = expiresAt
        case .rotate(let key, let refreshID, let expiresAt, let generation, let dedup):
            if var record = logins[key] {
                record.currentRefreshID = refreshID
                record.expiresAt = expiresAt
                record.generation = generation
                record.generationUsed = false
                logins[key] = record
                if let previous = latestRotation.updateValue(dedup.digest, forKey: key) { keepOnlyForTheWindow(previous, now: now) }
            }
            insertDedup(dedup, now: now)
        case .markUsed(let key, let generation):
            if var record = logins[key], record.kind == .family, record.generation == generation {
                record.generationUsed = true
                logins[key] = record
                if let latest = latestRotation[key] { keepOnlyForTheWindow(latest, now: now) }
            }
        case .revoke(let key):
            guard var record = logins[key], !record.revoked else { return }
            adjustCounts(record, by: -1)
            record.revoked = true
            adjustCounts(record, by: 1)
            logins[key] = record
        case .putDedup(let dedup):
            insertDedup(dedup, now: now)
        }
        if recordsChanges { changes.append(change) }
    }



    mutating func touchSession(_ key: SessionKey, fingerprint: Digest128?, subject: String? = nil, explicit: Bool, now: Int64) -> SessionOutcome {
        guard var record = live(key, now: now) else { return .unknown }
        if let refusal = record.sessionRefusal(fingerprint: fingerprint, subject: subject, now: now) { return refusal }
        let target = record.renewalTarget(now: now, explicit: explicit, policy: policy)
        let renewed = target > record.expiresAt
        if renewed {
            record.expiresAt = target
            apply(.setExpiry(key, target), now: now)
        }
        return .active(LoginInfo(subject: record.subject, expiresAt: record.expiresAt, maxExpiresAt: record.maxExpiresAt), renewed: renewed)
    }

    /// A family's checks, for a verify of its access token or before a rotation.
    private func family(_ key: SessionKey, fingerprint: Digest128?, now: Int64) -> FamilyOutcome {
        guard let record = live(key, now: now) else { return .unknown }
        return record.familyRefusal(fingerprint: fingerprint, now: now) ?? .active(record)
    }

    /// An access token's verify: the family's checks; an access token of the current
    /// generation marks its pair used, which ends lost-response retries of the refresh that
    /// made it.
    mutating func checkFamily(_ key: SessionKey, fingerprint: Digest128?, generation: Int64? = nil, now: Int64) -> FamilyOutcome {
        let outcome = family(key, fingerprint: fingerprint, now: now)
        if case .active(var record) = outcome, record.marksUsed(generation) {
            apply(.markUsed(key, generation: record.generation), now: now)
            record.generationUsed = true
            return .active(record)
        }
        return outcome
    }

    /// What presenting a refresh token to `record` comes to (`LoginRecord.presentation`),
    /// with the kept pair's own rule: it goes back only to the fingerprint its rotation came
    /// from, bound family or not. A reuse is a reuse whoever presents it.
    private func decide(_ record: LoginRecord, _ presented: PresentedRefresh, fingerprint: Digest128?, at milliseconds: Int64) -> Decision {
        let entry = kept(presented.digest, at: milliseconds)
        switch record.presentation(of: presented.id, generation: presented.generation, kept: entry, at: milliseconds) {
        case .rotate: return .rotate
        case .reuse: return .reuse
        case .repeat:
            guard let entry, Digest128.constantTimeEquals(entry.fingerprint, fingerprint) else { return .fingerprintMismatch }
            return .repeated(entry.sealed)
        }
    }

    private enum Decision {
        case rotate, reuse, fingerprintMismatch
        case repeated([UInt8])
    }

    func prepareRotation(_ key: SessionKey, presented: PresentedRefresh, fingerprint: Digest128?, at milliseconds: Int64) -> RotationCheck {
        let outcome = family(key, fingerprint: fingerprint, now: milliseconds / 1000)
        guard case .active(let record) = outcome else { return .family(outcome) }
        switch decide(record, presented, fingerprint: fingerprint, at: milliseconds) {
        case .repeated(let sealed): return .repeated(sealed)
        case .fingerprintMismatch: return .family(.fingerprintMismatch)
        case .rotate, .reuse: return .family(outcome)
        }
    }

    mutating func rotate(_ rotation: Rotation, at milliseconds: Int64) -> RotationOutcome {
        let now = milliseconds / 1000
        guard let record = live(rotation.family, now: now) else { return .unknown }
        if let refusal = record.familyRefusal(fingerprint: rotation.fingerprint, now: now) { return RotationOutcome(refusal) }
        switch decide(record, rotation.presented, fingerprint: rotation.fingerprint, at: milliseconds) {
        case .repeated(let sealed):
            return .deduplicated(sealed)
        case .fingerprintMismatch:
            return .fingerprintMismatch
        case .reuse:
            // RFC 9700 §4.14.2: a spent refresh token is a stolen one; end the family.
            _ = revoke(rotation.family, now: now)
            return .reuseDetected
        case .rotate:
            let generation = record.generation + 1
            let kept = policy.rotationEntry(sealed: rotation.sealedCandidate, fingerprint: rotation.fingerprint, family: record,
                                            generation: generation, at: milliseconds)
            apply(.rotate(rotation.family, refreshID: rotation.newRefreshID, expiresAt: rotation.newRefreshExpiresAt, generation: generation,
                          dedup: JournalRecord.DedupPut(digest: rotation.presented.digest, entry: kept)), now: now)
            return .rotated
        }
    }

    mutating func revoke(_ target: RevokeTarget, now: Int64) -> Int? {
        switch target {
        case .login(let key):
            guard live(key, now: now) != nil else { return nil }
            return revoke(key, now: now) ? 1 : 0
        case .subject(let subject):
            var count = 0
            for key in bySubject[SubjectKey(subject)] ?? [] where live(key, now: now) != nil {
                if revoke(key, now: now) { count += 1 }
            }
            return count
        }
    }

    func list(_ query: ListQuery, now: Int64) -> ListPage {
        let limit = max(1, query.limit)
        var keys: [SessionKey]
        if let subject = query.subject {
            keys = (bySubject[SubjectKey(subject)] ?? []).filter { key in query.after.map { key > $0 } ?? true }
        } else {
            keys = logins.keys.filter { key in query.after.map { key > $0 } ?? true }
        }
        keys = keys.filter { live($0, now: now) != nil }
        keys.sort()
        let page = keys.prefix(limit)
        let logins = page.map { key in
            let record = self.logins[key]!
            return ListedLogin(key: key, record: record, idleExpired: now >= record.expiresAt)
        }
        return ListPage(logins: logins, next: keys.count > limit ? page.last : nil)
    }

    var statistics: StoreStatistics {
        StoreStatistics(sessionsActive: counts.sessions, familiesActive: counts.families, revoked: counts.revoked,
                        dedupEntries: dedup.count, records: logins.count)
    }
}

/// A subject as the index keys it: its UTF-8 bytes, compared byte for byte.
struct SubjectKey: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ subject: String) { bytes = Array(subject.utf8) }
}
