import NIOCore
import TokenCrypto
import TokenStore

/// Tokens the daemon handed out: what an issue or a refresh returns, and what the dedup map
/// keeps (sealed) so that a repeat gets the very same bytes.
struct IssuedTokens: Sendable, Hashable {
    var key: SessionKey
    var kind: LoginKind
    /// The session token, or the access token of a pair.
    var token: String
    var refreshToken: String?
    /// Session: idle expiry; pair: access token `exp`.
    var expiresAt: Int64
    var refreshExpiresAt: Int64?
    var maxExpiresAt: Int64

    /// AES-256-GCM under `key`, which only someone presenting the same request can derive.
    func sealed(with key: [UInt8]) throws -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(self.key.high)
        buffer.writeInteger(self.key.low)
        buffer.writeInteger(expiresAt)
        buffer.writeInteger(refreshExpiresAt ?? -1)
        buffer.writeInteger(maxExpiresAt)
        for text in [token, refreshToken ?? ""] {
            buffer.writeInteger(UInt32(text.utf8.count))
            buffer.writeString(text)
        }
        return try AESGCM.seal(Array(buffer.readableBytesView), key: key)
    }

    init(key: SessionKey, kind: LoginKind, token: String, refreshToken: String?, expiresAt: Int64, refreshExpiresAt: Int64?, maxExpiresAt: Int64) {
        self.key = key
        self.kind = kind
        self.token = token
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.refreshExpiresAt = refreshExpiresAt
        self.maxExpiresAt = maxExpiresAt
    }

    init(sealed: [UInt8], key sealKey: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: try AESGCM.open(sealed, key: sealKey))
        guard let rawKind = buffer.readInteger(as: UInt8.self), let kind = LoginKind(rawValue: rawKind),
              let high = buffer.readInteger(as: UInt64.self), let low = buffer.readInteger(as: UInt64.self),
              let expiresAt = buffer.readInteger(as: Int64.self), let refreshExpiresAt = buffer.readInteger(as: Int64.self),
              let maxExpiresAt = buffer.readInteger(as: Int64.self),
              let tokenLength = buffer.readInteger(as: UInt32.self), let token = buffer.readString(length: Int(tokenLength)),
              let refreshLength = buffer.readInteger(as: UInt32.self), let refresh = buffer.readString(length: Int(refreshLength))
        else { throw CryptoError(.authenticationFailure, "sealed tokens do not parse") }
        self.init(key: SessionKey(high: high, low: low), kind: kind, token: token, refreshToken: refresh.isEmpty ? nil : refresh,
                  expiresAt: expiresAt, refreshExpiresAt: refreshExpiresAt < 0 ? nil : refreshExpiresAt, maxExpiresAt: maxExpiresAt)
    }
}
