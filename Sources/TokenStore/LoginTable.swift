/// The logins by key, stored compactly: a dictionary from key to a slot number, and the
/// records themselves packed in one array of 80-byte slots (times as 32-bit seconds, optional
/// digests as flags). A dictionary holding the records directly would keep a 128-byte value
/// for every bucket of a table that is, after growing, often half empty.
///
/// Times are Unix seconds up to 2106, TTLs up to 136 years and generations up to 2³²−1; larger
/// values are clamped.
struct LoginTable: Sendable, Equatable, Sequence {
    private var index: [SessionKey: UInt32] = [:]
    private var slots: [Slot] = []
    /// Slots freed by removals, reused first.
    private var free: [UInt32] = []

    fileprivate struct Slot: Sendable {
        var subject: String
        var fingerprint: Digest128
        var refreshID: SessionKey
        var createdAt: UInt32
        var ttl: UInt32
        var expiresAt: UInt32
        var maxExpiresAt: UInt32
        var refreshTTL: UInt32
        var generation: UInt32
        var flags: UInt8

        static let family: UInt8 = 1, revoked: UInt8 = 2, hasFingerprint: UInt8 = 4, hasRefreshID: UInt8 = 8, generationUsed: UInt8 = 16

        init(_ record: LoginRecord) {
            subject = record.subject
            fingerprint = record.fingerprint ?? Digest128(high: 0, low: 0)
            refreshID = record.currentRefreshID ?? SessionKey(high: 0, low: 0)
            createdAt = UInt32(clamping: record.createdAt)
            ttl = UInt32(clamping: record.ttl)
            expiresAt = UInt32(clamping: record.expiresAt)
            maxExpiresAt = UInt32(clamping: record.maxExpiresAt)
            refreshTTL = UInt32(clamping: record.refreshTTL)
            generation = UInt32(clamping: record.generation)
            flags = (record.kind == .family ? Self.family : 0) | (record.revoked ? Self.revoked : 0)
                | (record.fingerprint != nil ? Self.hasFingerprint : 0) | (record.currentRefreshID != nil ? Self.hasRefreshID : 0)
                | (record.generationUsed ? Self.generationUsed : 0)
        }

        var record: LoginRecord {
            LoginRecord(kind: flags & Self.family != 0 ? .family : .session, subject: subject,
                        fingerprint: flags & Self.hasFingerprint != 0 ? fingerprint : nil,
                        createdAt: Int64(createdAt), ttl: Int64(ttl), expiresAt: Int64(expiresAt), maxExpiresAt: Int64(maxExpiresAt),
                        refreshTTL: Int64(refreshTTL), currentRefreshID: flags & Self.hasRefreshID != 0 ? refreshID : nil,
                        generation: Int64(generation), generationUsed: flags & Self.generationUsed != 0, revoked: flags & Self.revoked != 0)
        }
    }

    var count: Int { index.count }
    var isEmpty: Bool { index.isEmpty }
    var keys: Dictionary<SessionKey, UInt32>.Keys { index.keys }

    subscript(key: SessionKey) -> LoginRecord? {
        get { index[key].map { slots[Int($0)].record } }
        set {
            if let newValue { updateValue(newValue, forKey: key) } else { removeValue(forKey: key) }
        }
    }

    /// Stores `record`; returns the one it replaced.
    @discardableResult
    mutating func updateValue(_ record: LoginRecord, forKey key: SessionKey) -> LoginRecord? {
        if let slot = index[key] {
            let previous = slots[Int(slot)].record
            slots[Int(slot)] = Slot(record)
            return previous
        }
        if let slot = free.popLast() {
            slots[Int(slot)] = Slot(record)
            index[key] = slot
        } else {
            index[key] = UInt32(slots.count)
            slots.append(Slot(record))
        }
        return nil
    }

    @discardableResult
    mutating func removeValue(forKey key: SessionKey) -> LoginRecord? {
        guard let slot = index.removeValue(forKey: key) else { return nil }
        let record = slots[Int(slot)].record
        // Keep the slot's storage small until it is reused.
        slots[Int(slot)].subject = ""
        free.append(slot)
        return record
    }

    struct Iterator: IteratorProtocol {
        fileprivate var base: Dictionary<SessionKey, UInt32>.Iterator
        fileprivate let slots: [Slot]

        mutating func next() -> (key: SessionKey, value: LoginRecord)? {
            guard let (key, slot) = base.next() else { return nil }
            return (key, slots[Int(slot)].record)
        }
    }

    func makeIterator() -> Iterator { Iterator(base: index.makeIterator(), slots: slots) }

    static func == (a: LoginTable, b: LoginTable) -> Bool {
        a.count == b.count && a.allSatisfy { b[$0.key] == $0.value }
    }
}
