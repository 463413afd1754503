/// Keys grouped by the second at which they expire, drained in time order.
///
/// Draining costs work proportional to what expires (plus one lookup per elapsed second),
/// never a scan of the table, and it can stop after a budget so that a mass expiry is spread
/// over several calls instead of stalling everything else.
struct ExpiryQueue<Key: Hashable & Sendable>: Sendable {
    private var buckets: [Int64: [Key]] = [:]
    /// The earliest second that may still hold keys.
    private var cursor: Int64

    init(start: Int64) { cursor = start }

    var isEmpty: Bool { buckets.isEmpty }

    mutating func insert(_ key: Key, at second: Int64) {
        buckets[second, default: []].append(key)
        if second < cursor { cursor = second }
    }

    /// Removes and passes to `body` up to `budget` keys due at or before `now`; returns how
    /// many it removed.
    @discardableResult
    mutating func drain(now: Int64, budget: Int = .max, _ body: (Key) -> Void) -> Int {
        var removed = 0
        if buckets.isEmpty {
            cursor = max(cursor, now + 1)
            return 0
        }
        // After a long pause (or a clock jump) skip the empty seconds in one step.
        if now - cursor > Int64(buckets.count), let earliest = buckets.keys.min(), earliest > cursor {
            cursor = earliest
        }
        while cursor <= now, removed < budget {
            // Taken out of the dictionary, so that popping does not copy the whole bucket.
            guard var keys = buckets.removeValue(forKey: cursor) else {
                cursor += 1
                continue
            }
            while let key = keys.popLast() {
                body(key)
                removed += 1
                if removed == budget { break }
            }
            if keys.isEmpty {
                cursor += 1
            } else {
                buckets[cursor] = keys
            }
            if buckets.isEmpty { cursor = max(cursor, now + 1) }
        }
        return removed
    }
}
