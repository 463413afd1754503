import NIOConcurrencyHelpers
import TokenCrypto
import TokenStore

/// Tokens whose signature and claims have already been checked, so that verifying the same
/// token again skips the signature (the costly part for ES256, EdDSA and RS256).
///
/// Keyed by a SHA-256 digest of the whole token; bounded (the oldest entry goes first); an
/// entry never outlives its token's `exp`, nor the key ring it was checked against (a key
/// removed by a reload verifies nothing it verified before). Only the cryptographic check is
/// cached: the store (revocation, the session table, fingerprints) is consulted on every hit.
final class VerifiedTokenCache: Sendable {
    struct Entry: Sendable {
        let presented: TokenService.Presented
        let claimsJSON: String
        /// The key ring's generation when the token was checked.
        let generation: UInt64
    }

    private struct State {
        var entries: [Digest128: Entry] = [:]
        /// Insertion order, for eviction: a ring of `capacity` slots.
        var order: [Digest128?]
        var next = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
    }

    let capacity: Int
    private let state: NIOLockedValueBox<State>

    init(capacity: Int) {
        self.capacity = capacity
        state = NIOLockedValueBox(State(order: Array(repeating: nil, count: max(capacity, 1))))
    }

    static func key(_ token: String) -> Digest128 {
        var token = token
        return token.withUTF8 { key(UnsafeRawBufferPointer($0)) }
    }

    static func key(_ token: UnsafeRawBufferPointer) -> Digest128 {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { digest in
            HashFunction.sha256.hash(token, into: digest)
            return Digest128(prefixOf: UnsafeRawBufferPointer(digest))
        }
    }

    func lookup(_ key: Digest128, now: Int64, generation: UInt64) -> Entry? {
        guard capacity > 0 else { return nil }
        return state.withLockedValue { state in
            guard let entry = state.entries[key] else {
                state.misses += 1
                return nil
            }
            guard now < entry.presented.expiration, entry.generation == generation else {
                state.entries[key] = nil
                state.misses += 1
                return nil
            }
            state.hits += 1
            return entry
        }
    }

    func insert(_ key: Digest128, _ entry: Entry) {
        guard capacity > 0 else { return }
        state.withLockedValue { state in
            guard state.entries.updateValue(entry, forKey: key) == nil else { return }
            if let evicted = state.order[state.next] { state.entries[evicted] = nil }
            state.order[state.next] = key
            state.next = (state.next + 1) % state.order.count
        }
    }

    var statistics: (entries: Int, hits: UInt64, misses: UInt64) {
        state.withLockedValue { ($0.entries.count, $0.hits, $0.misses) }
    }
}
