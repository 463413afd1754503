import NIOConcurrencyHelpers
import TokenProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a client's near cache behaves (proto-spec 12.16).
public struct NearCacheConfiguration: Sendable, Hashable {
    /// When invalidations are applied before a cached answer.
    public enum Mode: Sendable, Hashable {
        /// Before every answer from the cache, every invalidation already readable is read and
        /// applied (a non-blocking read on a tracking connection of the cache's own). A
        /// revocation acknowledged to anyone on this host before the verify began is always
        /// seen. Costs one system call per cached answer.
        case readYourRevocations
        /// Invalidations are applied by the connection's event loop as they arrive. A cached
        /// answer can be stale for as long as that loop takes to read a frame already sent:
        /// microseconds on an idle loop, longer on a busy one.
        case asDelivered
    }

    /// The most answers kept; the least recently used goes first.
    public var capacity: Int
    public var mode: Mode

    public init(capacity: Int = 10_000, mode: Mode = .readYourRevocations) {
        precondition(capacity > 0, "a near cache holds at least one answer")
        self.capacity = capacity
        self.mode = mode
    }
}

/// What a near cache has done since the client connected.
public struct NearCacheStatistics: Sendable, Hashable {
    /// Verifies answered from the cache.
    public var hits: UInt64 = 0
    /// Verifies that went to the daemon.
    public var misses: UInt64 = 0
    /// Invalidation frames applied.
    public var invalidations: UInt64 = 0
    /// Times everything was dropped: a `flush` frame, or a tracking connection lost.
    public var flushes: UInt64 = 0
    /// Answers held now.
    public var entries: Int = 0

    public init() {}
}

/// Verify answers the daemon said may be reused, until the time it said, LRU-bounded.
///
/// The rules are proto-spec 12.16's: only replies with `cacheable_until`; not a reply if an
/// invalidation was applied while it was in flight (`generation`); everything dropped when a
/// tracking connection ends, and from then on nothing is cached or answered.
final class NearCache: Sendable {
    struct Key: Hashable, Sendable {
        var token: String
        var fingerprint: [UInt8]

        /// Hashes the token's length and last 32 bytes (a JWT's signature, which no one can
        /// choose for a token that verifies, and only verified answers are kept) and the
        /// fingerprint; equality compares everything. Hashing the whole token cost a quarter
        /// of a cached verify.
        func hash(into hasher: inout Hasher) {
            var token = token
            token.withUTF8 { bytes in
                hasher.combine(bytes.count)
                hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes.suffix(32))))
            }
            hasher.combine(fingerprint)
        }
    }

    private struct Entry {
        var key: Key
        var result: VerifyResult
        var until: Double
    }

    /// The LRU list's links, apart from the entries so that moving one copies no strings.
    private struct Links {
        var newer: Int?
        var older: Int?
    }

    private struct State {
        var slots: [Key: Int] = [:]
        var entries: [Entry] = []
        var links: [Links] = []
        var free: [Int] = []
        var newest: Int?
        var oldest: Int?
        var generation: UInt64 = 0
        /// Set when a tracking connection was lost: the cache no longer knows what it missed.
        var broken = false
        /// Set for a daemon that does not know `track`: nothing is ever cached.
        var disabled = false
        var statistics = NearCacheStatistics()
    }

    let configuration: NearCacheConfiguration
    private let state = NIOLockedValueBox(State())
    private let clock: @Sendable () -> Double

    init(configuration: NearCacheConfiguration, clock: @escaping @Sendable () -> Double = NearCache.wallClock) {
        self.configuration = configuration
        self.clock = clock
    }

    /// The Unix time in seconds, as the daemon counts it.
    @Sendable static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    var statistics: NearCacheStatistics {
        state.withLockedValue { state in
            var statistics = state.statistics
            statistics.entries = state.slots.count
            return statistics
        }
    }

    /// The cached answer for `key`, if it is still good; counts a hit or a miss.
    func lookup(_ key: Key) -> VerifyResult? {
        let now = clock()
        return state.withLockedValue { state in
            guard !state.broken, let slot = state.slots[key] else {
                state.statistics.misses += 1
                return nil
            }
            guard now < state.entries[slot].until else {
                Self.remove(slot, from: &state)
                state.statistics.misses += 1
                return nil
            }
            Self.unlink(slot, in: &state)
            Self.linkNewest(slot, in: &state)
            state.statistics.hits += 1
            return state.entries[slot].result
        }
    }

    /// Taken before a verify is sent: the reply may be cached only if no invalidation came since.
    var generation: UInt64 { state.withLockedValue { $0.generation } }

    /// Keeps `result` for `key` if the daemon granted it and nothing was invalidated since
    /// `generation` was read.
    func insert(_ key: Key, _ result: VerifyResult, sentAt generation: UInt64) {
        guard let until = result.cacheableUntil else { return }
        var kept = result
        kept.renewed = false
        state.withLockedValue { state in
            guard !state.broken, state.generation == generation else { return }
            if let slot = state.slots[key] { Self.remove(slot, from: &state) }
            if state.slots.count >= configuration.capacity, let oldest = state.oldest { Self.remove(oldest, from: &state) }
            let entry = Entry(key: key, result: kept, until: Double(until))
            let slot: Int
            if let reused = state.free.popLast() {
                slot = reused
                state.entries[slot] = entry
            } else {
                slot = state.entries.count
                state.entries.append(entry)
                state.links.append(Links())
            }
            state.slots[key] = slot
            Self.linkNewest(slot, in: &state)
        }
    }

    /// Applies one invalidation frame.
    func apply(_ invalidation: Invalidation) {
        state.withLockedValue { state in
            state.generation &+= 1
            state.statistics.invalidations += 1
            switch invalidation {
            case .flush:
                Self.removeAll(&state)
            case .session(let id):
                Self.remove(where: { $0.result.sessionID.utf8.elementsEqual(id.utf8) }, from: &state)
            case .subject(let subject):
                Self.remove(where: { $0.result.subject.utf8.elementsEqual(subject.utf8) }, from: &state)
            }
        }
    }

    /// A tracking connection ended: drop everything, and answer nothing from the cache until
    /// `resume` says a new one is in place.
    func connectionLost() {
        state.withLockedValue { state in
            guard !state.broken else { return }
            state.broken = true
            state.generation &+= 1
            Self.removeAll(&state)
        }
    }

    /// A new tracking connection is in place (its `track` answered): caching starts again, from
    /// empty. Whatever was in flight before stays uncached (the generation moves on).
    func resume() {
        state.withLockedValue { state in
            guard !state.disabled else { return }
            state.broken = false
            state.generation &+= 1
        }
    }

    /// The daemon does not know `track` (it predates the near cache): every verify asks it.
    func disable() {
        connectionLost()
        state.withLockedValue { $0.disabled = true }
    }

    var isDisabled: Bool { state.withLockedValue { $0.disabled } }

    // MARK: The LRU list

    private static func removeAll(_ state: inout State) {
        state.statistics.flushes += 1
        state.slots.removeAll(keepingCapacity: true)
        state.entries.removeAll(keepingCapacity: true)
        state.links.removeAll(keepingCapacity: true)
        state.free.removeAll()
        state.newest = nil
        state.oldest = nil
    }

    private static func remove(where matches: (Entry) -> Bool, from state: inout State) {
        for (_, slot) in state.slots where matches(state.entries[slot]) {
            remove(slot, from: &state)
        }
    }

    private static func remove(_ slot: Int, from state: inout State) {
        unlink(slot, in: &state)
        state.slots.removeValue(forKey: state.entries[slot].key)
        state.free.append(slot)
    }

    private static func unlink(_ slot: Int, in state: inout State) {
        let links = state.links[slot]
        if let newer = links.newer { state.links[newer].older = links.older } else { state.newest = links.older }
        if let older = links.older { state.links[older].newer = links.newer } else { state.oldest = links.newer }
        state.links[slot] = Links()
    }

    private static func linkNewest(_ slot: Int, in state: inout State) {
        state.links[slot] = Links(newer: nil, older: state.newest)
        if let newest = state.newest { state.links[newest].newer = slot }
        state.newest = slot
        if state.oldest == nil { state.oldest = slot }
    }
}
