import NIOConcurrencyHelpers
import TokenJWT

/// The live key ring: which key signs, which keys verify. Swapped whole on rotation, so a
/// request always sees one consistent ring.
public final class SigningKeys: Sendable {
    struct Ring: Sendable {
        var entries: [KeyDirectory.Entry]
        var verifier: JWTVerifier
        var signing: JWTKey
    }

    private let ring: NIOLockedValueBox<Ring>
    /// Held across a whole rotation, so that two at once cannot pick the same file name.
    private let rotation = NIOLockedValueBox(())
    let directory: KeyDirectory
    let policy: JWTValidationPolicy

    init(directory: KeyDirectory, entries: [KeyDirectory.Entry], policy: JWTValidationPolicy) {
        self.directory = directory
        self.policy = policy
        self.ring = NIOLockedValueBox(Self.makeRing(entries, policy: policy))
    }

    private static func makeRing(_ entries: [KeyDirectory.Entry], policy: JWTValidationPolicy) -> Ring {
        let keyRing = JWTKeyRing(keys: entries.map(\.key), signingKid: entries.last?.key.kid)
        return Ring(entries: entries, verifier: JWTVerifier(keyRing: keyRing, policy: policy), signing: entries.last!.key)
    }

    var verifier: JWTVerifier { ring.withLockedValue { $0.verifier } }
    var signingKey: JWTKey { ring.withLockedValue { $0.signing } }
    var entries: [KeyDirectory.Entry] { ring.withLockedValue { $0.entries } }

    /// Writes a new key of `algorithm`, which signs from now on.
    func rotate(algorithm: JWSAlgorithm, now: Int64) throws -> KeyDirectory.Entry {
        try rotation.withLockedValue { _ in
            let newest = ring.withLockedValue { $0.entries.last?.createdAt ?? 0 }
            let entry = try directory.create(algorithm: algorithm, now: max(now, newest + 1))
            ring.withLockedValue { $0 = Self.makeRing($0.entries + [entry], policy: policy) }
            return entry
        }
    }

    /// The public keys as a JWK Set (HMAC keys have none).
    func jwks() throws -> String {
        let keys = try entries.compactMap { try $0.key.publicJWK()?.json }
        return #"{"keys":["# + keys.joined(separator: ",") + "]}"
    }
}
