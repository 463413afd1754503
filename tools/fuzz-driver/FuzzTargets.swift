import NIOCore
import RedisClient
import TokenRedisStore
import TokenCrypto
import TokenJWT
import TokenProtocol
import TokenStore

/// Each target must never crash, hang or leak, whatever the bytes.
enum FuzzTargets {
    static func frames(_ data: UnsafeRawBufferPointer) {
        var decoder = FrameDecoder(maximumFrameSize: 64 * 1024)
        var buffer = ByteBuffer(bytes: data)
        while true {
            let body: ByteBuffer?
            do {
                body = try decoder.decode(buffer: &buffer)
            } catch {
                return // too large: the daemon replies and closes
            }
            guard let body else { return }
            if let request = try? Request(body: body) {
                _ = try? HelloRequest(fields: request.fields)
                _ = try? IssueRequest(fields: request.fields)
                _ = try? TokenRequest(fields: request.fields)
                _ = try? RevokeRequest(fields: request.fields)
                _ = try? SessionsRequest(fields: request.fields)
                var again = ByteBuffer()
                again.writeFrame(request)
            }
            if let response = try? Response(body: body) {
                _ = try? IssueResult(fields: response.fields)
                _ = try? VerifyResult(fields: response.fields)
                _ = try? response.fields.records(.sessionRecord).map { try SessionInfo(fields: $0) }
                _ = try? response.fields.records(.keyRecord).map { try KeyInfo(fields: $0) }
            }
        }
    }

    /// Held here as a plain reference: inside JWTKey it sits in an enum payload whose spare
    /// bits hide the pointer from LeakSanitizer, which then reports the key as leaked at exit.
    static let ecKey = try! AsymmetricKey.generate(.p256)

    static let verifier: JWTVerifier = {
        let hmac = try! JWTKey(hmacSecret: [UInt8](repeating: 7, count: 32), algorithm: .hs256, kid: "k1")
        let ec = try! JWTKey(asymmetric: ecKey, algorithm: .es256, kid: "k2")
        return JWTVerifier(keyRing: JWTKeyRing(keys: [hmac, ec]))
    }()

    static func jwt(_ data: UnsafeRawBufferPointer) {
        _ = try? verifier.verify(bytes: data, now: 1_800_000_000)
        _ = try? StrictJSONParser().parseObject(data)
        _ = try? StrictJSONParser().parseValue(data)
        if let text = String(validating: data, as: UTF8.self) {
            _ = try? JWTDecoder.decodeUnverified(text)
            _ = Base64URL.decode(text)
        }
    }

    static func state(_ data: UnsafeRawBufferPointer) {
        let reader = RecordReader(path: "fuzz-input", bytes: Array(data))
        for kind in [FileHeader.Kind.snapshot, .journal] {
            _ = try? reader.header(kind)
            _ = try? reader.forEachRecord(snapshot: kind == .snapshot) { _, _ in }
        }
    }

    /// Redis replies: the RESP decoder over the input as a stream of replies, and the login
    /// record parser over each reply (what a compromised or confused Redis could send).
    static func resp(_ data: UnsafeRawBufferPointer) {
        var buffer = ByteBuffer(bytes: data)
        while let reply = try? RESPDecoder.decode(&buffer) {
            _ = RedisStore.record(reply)
            _ = reply.integer
            _ = reply.string
        }
    }
}
