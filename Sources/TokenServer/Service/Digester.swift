import TokenCrypto
import TokenStore

/// Keyed digests (HMAC-SHA-256 under the daemon's digest secret, truncated to 128 bits) of
/// what the state must recognise but never hold: fingerprints, presented refresh tokens,
/// idempotency keys. Each use has its own label, so digests of one kind never match another.
struct Digester: Sendable {
    private let key: HMACKey

    init(secret: [UInt8]) throws {
        key = try HMACKey(secret: secret, hash: .sha256)
    }

    func digest(_ label: String, _ parts: [[UInt8]]) -> Digest128 {
        Digest128(prefixOf: mac(label, parts))
    }

    /// A 256-bit key for sealing what a repeat of the same request may read back.
    func sealKey(_ label: String, _ parts: [[UInt8]]) -> [UInt8] {
        mac(label, parts)
    }

    private func mac(_ label: String, _ parts: [[UInt8]]) -> [UInt8] {
        var message = Array(label.utf8)
        for part in parts {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            withUnsafeBytes(of: UInt32(part.count).bigEndian) { message.append(contentsOf: $0) }
            message.append(contentsOf: part)
        }
        return key.authenticationCode(for: message)
    }

    /// nil for an empty fingerprint: the login is not bound to a client.
    func fingerprint(_ bytes: [UInt8]) -> Digest128? {
        bytes.isEmpty ? nil : digest("tokend.fingerprint.v1", [bytes])
    }

    func refreshToken(_ token: String) -> Digest128 {
        digest("tokend.refresh-token.v1", [Array(token.utf8)])
    }
}
