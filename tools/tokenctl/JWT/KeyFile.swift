import Foundation
import TokenCrypto
import TokenJWT

/// Key files as tokenctl and tokend keep them: a raw random secret for HS*, PEM (PKCS#8
/// private or SPKI public) for the rest.
enum KeyFile {
    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read key file \(path)")
        }
        return Array(data)
    }

    /// The key in `path` pinned to `algorithm`.
    static func load(_ path: String, algorithm: JWSAlgorithm, kid: String?) throws -> JWTKey {
        let bytes = try read(path)
        do {
            if algorithm.isHMAC {
                return try JWTKey(hmacSecret: bytes, algorithm: algorithm, kid: kid)
            }
            return try JWTKey(asymmetric: AsymmetricKey(pem: String(decoding: bytes, as: UTF8.self)), algorithm: algorithm, kid: kid)
        } catch let error as CryptoError {
            throw UsageError("key file \(path): \(error.reason)")
        }
    }

    /// A new key for `algorithm`: a random secret of the hash's length for HS*, else PEM.
    static func generate(_ algorithm: JWSAlgorithm) throws -> [UInt8] {
        if let hash = algorithm.hmacHash { return SecureRandom.bytes(hash.byteCount) }
        let kind: AsymmetricKey.Kind = switch algorithm {
        case .es256: .p256
        case .rs256: .rsa(bits: 2048)
        default: .ed25519
        }
        return Array(try AsymmetricKey.generate(kind).privateKeyPEM().utf8)
    }

    /// Writes `bytes` to a new file readable by its owner only.
    static func writePrivate(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw UsageError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw UsageError("cannot write \(path): \(String(cString: strerror(errno)))") }
            written += n
        }
        guard fsync(fd) == 0 else { throw UsageError("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }
}
