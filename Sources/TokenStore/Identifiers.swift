import TokenCrypto

/// A session or family id: 16 random bytes, written as 22 base64url characters in the `sid`
/// claim. Held as two words so that a table of a million of them stays small.
public struct SessionKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public static func random() -> SessionKey { SessionKey(bytes: SecureRandom.bytes(16))! }

    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Parses the 22-character base64url form; nil for anything else.
    public init?(_ text: String) {
        guard text.utf8.count == 22, let bytes = Base64URL.decode(text) else { return nil }
        self.init(bytes: bytes)
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    public var text: String { Base64URL.encode(bytes) }
    public var description: String { text }

    public static func < (a: SessionKey, b: SessionKey) -> Bool { (a.high, a.low) < (b.high, b.low) }
}

/// A 128-bit keyed digest (a truncated HMAC-SHA-256): of a fingerprint, a presented refresh
/// token, or an idempotency key. Compared in constant time; never reversible to its input.
public struct Digest128: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The first 16 bytes of `bytes`.
    public init(prefixOf bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { Digest128(prefixOf: $0) }
    }

    /// The first 16 bytes of `bytes`.
    public init(prefixOf bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 16)
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Equality whose time does not depend on where the digests differ.
    public func constantTimeEquals(_ other: Digest128) -> Bool {
        ((high ^ other.high) | (low ^ other.low)) == 0
    }

    /// Optional digests: equal when both are absent or both are present and equal.
    public static func constantTimeEquals(_ a: Digest128?, _ b: Digest128?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case (let a?, let b?): a.constantTimeEquals(b)
        default: false
        }
    }
}
