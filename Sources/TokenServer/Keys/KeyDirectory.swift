import NIOCore
import Foundation
import Logging
import TokenCrypto
import TokenJWT

/// The signing keys and the digest secret, kept as files in `<state>/keys/` (mode 0700, files
/// 0600): `<created-unix-time>-<ALG>.key` (a PEM private key, or a raw secret for HS*), and
/// `digest.secret`, the key of the fingerprint and refresh-token digests.
///
/// The newest key file whose time has come signs; every key verifies. Rotation writes a new
/// file, so a restart or another host with the same files agrees on the ring.
public struct KeyDirectory: Sendable {
    public struct Entry: Sendable {
        public let key: JWTKey
        public let createdAt: Int64
        public let file: String
    }

    public let path: String

    public init(path: String) { self.path = path }

    /// Loads every key, creating the directory, the digest secret and a first key of
    /// `algorithm` when missing. When the newest key has another algorithm, a key of
    /// `algorithm` is added and signs from now on.
    ///
    /// With `create` false (a shared store, whose hosts must all hold the same files), nothing
    /// is created: missing files are an error that says how to provision them.
    public func loadOrCreate(algorithm: JWSAlgorithm, now: Int64, create: Bool = true, logger: Logger) throws -> (entries: [Entry], digestSecret: [UInt8]) {
        try FileSystem.makeDirectory(path, mode: 0o700)
        let secretPath = path + "/digest.secret"
        let provision = "with a shared store every host needs the same key files: copy \(path)/ from a host that has them, or create them on the first host with --init-keys"
        if !create {
            guard FileManager.default.fileExists(atPath: secretPath) else { throw ConfigurationError("\(secretPath) is missing; \(provision)") }
            let entries = try load()
            guard !entries.isEmpty else { throw ConfigurationError("\(path) holds no key files; \(provision)") }
            let secret = try FileSystem.read(secretPath)
            guard secret.count >= 32 else { throw ConfigurationError("\(secretPath) holds \(secret.count) bytes; it needs 32 or more") }
            if !entries.contains(where: { $0.key.algorithm == algorithm }) {
                logger.warning("no key of the configured algorithm; the provisioned keys are used", metadata: ["key.alg": "\(algorithm.name)"])
            }
            return (entries, secret)
        }
        if !FileManager.default.fileExists(atPath: secretPath) {
            try FileSystem.writeNew(SecureRandom.bytes(32), to: secretPath)
            logger.info("created digest secret", metadata: ["file": "\(secretPath)"])
        }
        let secret = try FileSystem.read(secretPath)
        guard secret.count >= 32 else { throw ConfigurationError("\(secretPath) holds \(secret.count) bytes; it needs 32 or more") }
        var entries = try load()
        if entries.last?.key.algorithm != algorithm {
            entries.append(try self.create(algorithm: algorithm, now: max(now, (entries.last?.createdAt ?? 0) + 1)))
            logger.notice("created signing key", metadata: ["key.kid": "\(entries.last!.key.kid)", "key.alg": "\(algorithm.name)"])
        }
        return (entries, secret)
    }

    /// Every key file, oldest first.
    public func load() throws -> [Entry] {
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".key") }
        var entries: [Entry] = []
        for name in names {
            let stem = name.dropLast(4)
            guard let dash = stem.firstIndex(of: "-"), let createdAt = Int64(stem[..<dash]),
                  let algorithm = JWSAlgorithm(name: String(stem[stem.index(after: dash)...]))
            else { throw ConfigurationError("\(path)/\(name): key files are named <unix-time>-<ALG>.key") }
            let file = path + "/" + name
            let bytes = try FileSystem.read(file)
            do {
                let key = algorithm.isHMAC
                    ? try JWTKey(hmacSecret: bytes, algorithm: algorithm)
                    : try JWTKey(asymmetric: AsymmetricKey(pem: String(decoding: bytes, as: UTF8.self)), algorithm: algorithm)
                entries.append(Entry(key: key, createdAt: createdAt, file: file))
            } catch let error as CryptoError {
                throw ConfigurationError("\(file): \(error.reason)")
            }
        }
        return entries.sorted { $0.createdAt < $1.createdAt }
    }

    /// Generates and writes a new key; it becomes the newest.
    public func create(algorithm: JWSAlgorithm, now: Int64) throws -> Entry {
        let bytes: [UInt8]
        let key: JWTKey
        if let hash = algorithm.hmacHash {
            bytes = SecureRandom.bytes(max(32, hash.byteCount))
            key = try JWTKey(hmacSecret: bytes, algorithm: algorithm)
        } else {
            let kind: AsymmetricKey.Kind = switch algorithm {
            case .es256: .p256
            case .rs256: .rsa(bits: 2048)
            default: .ed25519
            }
            let generated = try AsymmetricKey.generate(kind)
            bytes = Array(try generated.privateKeyPEM().utf8)
            key = try JWTKey(asymmetric: generated, algorithm: algorithm)
        }
        let file = "\(path)/\(now)-\(algorithm.name).key"
        try FileSystem.writeNew(bytes, to: file)
        return Entry(key: key, createdAt: now, file: file)
    }
}

/// A configuration or state-directory problem that stops the start, with what to do.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// A system error in plain words: the errno's text, not the Swift call that failed.
    static func plain(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        return "\(error)"
    }
}
