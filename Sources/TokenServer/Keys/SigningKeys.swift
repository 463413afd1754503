import NIOConcurrencyHelpers
import TokenJWT

/// The live key ring: which key signs, which keys verify. Swapped whole on rotation and reload,
/// so a request always sees one consistent ring.
///
/// A key file's time is when it starts signing: a file dated in the future verifies at once
/// but signs only from then on. That is how a new key rolls out over several hosts: copy it
/// everywhere first, and every host switches to it at the same moment.
public final class SigningKeys: Sendable {
    struct Ring: Sendable {
        var entries: [KeyDirectory.Entry]
        var verifier: JWTVerifier
        var signing: JWTKey
        /// Counts the rings built: whatever was checked against an older ring (the verified-token
        /// cache's entries) is checked again, so a removed key verifies nothing more.
        var generation: UInt64 = 0
    }

    private let ring: NIOLockedValueBox<Ring>
    /// Held across a whole rotation, so that two at once cannot pick the same file name.
    private let rotation = NIOLockedValueBox(())
    let directory: KeyDirectory
    let policy: JWTValidationPolicy

    init(directory: KeyDirectory, entries: [KeyDirectory.Entry], policy: JWTValidationPolicy, now: Int64) {
        self.directory = directory
        self.policy = policy
        self.ring = NIOLockedValueBox(Self.makeRing(entries, signing: Self.active(entries, now: now), policy: policy))
    }

    /// The newest key whose time has come (the oldest when none has).
    private static func active(_ entries: [KeyDirectory.Entry], now: Int64) -> KeyDirectory.Entry {
        entries.last { $0.createdAt <= now } ?? entries[0]
    }

    private static func makeRing(_ entries: [KeyDirectory.Entry], signing: KeyDirectory.Entry, policy: JWTValidationPolicy, after previous: Ring? = nil) -> Ring {
        let keyRing = JWTKeyRing(keys: entries.map(\.key), signingKid: signing.key.kid)
        return Ring(entries: entries, verifier: JWTVerifier(keyRing: keyRing, policy: policy), signing: signing.key,
                    generation: (previous?.generation ?? 0) + 1)
    }

    var verifier: JWTVerifier { ring.withLockedValue { $0.verifier } }
    /// The verifier with the generation of the ring it belongs to, read together.
    var current: (verifier: JWTVerifier, generation: UInt64) { ring.withLockedValue { ($0.verifier, $0.generation) } }
    var signingKey: JWTKey { ring.withLockedValue { $0.signing } }
    var entries: [KeyDirectory.Entry] { ring.withLockedValue { $0.entries } }

    /// Switches to a key whose time has come since the ring was built (never back to an older
    /// one); returns it when it switched.
    func activate(now: Int64) -> KeyDirectory.Entry? {
        ring.withLockedValue { ring in
            let due = Self.active(ring.entries, now: now)
            guard due.key.kid != ring.signing.kid,
                  let current = ring.entries.first(where: { $0.key.kid == ring.signing.kid }), due.createdAt > current.createdAt
            else { return nil }
            ring = Self.makeRing(ring.entries, signing: due, policy: policy, after: ring)
            return due
        }
    }

    /// Reads the key directory again (SIGHUP, `keys reload`): keys added there verify from now
    /// on, and sign from their time; keys removed stop verifying.
    func reload(now: Int64) throws -> [KeyDirectory.Entry] {
        try rotation.withLockedValue { _ in
            let entries = try directory.load()
            guard !entries.isEmpty else { throw ConfigurationError("\(directory.path) holds no key files; keeping the keys in use") }
            ring.withLockedValue { $0 = Self.makeRing(entries, signing: Self.active(entries, now: now), policy: policy, after: $0) }
            return entries
        }
    }

    /// Writes a new key of `algorithm`, which signs from now on.
    func rotate(algorithm: JWSAlgorithm, now: Int64) throws -> KeyDirectory.Entry {
        try rotation.withLockedValue { _ in
            let newest = ring.withLockedValue { $0.entries.last?.createdAt ?? 0 }
            let entry = try directory.create(algorithm: algorithm, now: max(now, newest + 1))
            ring.withLockedValue { $0 = Self.makeRing($0.entries + [entry], signing: entry, policy: policy, after: $0) }
            return entry
        }
    }

    /// The public keys as a JWK Set (HMAC keys have none).
    func jwks() throws -> String {
        let keys = try entries.compactMap { try $0.key.publicJWK()?.json }
        return #"{"keys":["# + keys.joined(separator: ",") + "]}"
    }
}
