// tokenbench: JWT sign/verify throughput per algorithm on one core, beside OpenSSL's own
// figure for the same primitive measured in the same run (`openssl speed`), as a ratio.
//
//   swift run -c release tokenbench [seconds-per-measurement]
//
// Also compares the strict JSON reader with Foundation's JSONSerialization on the same
// payload, which is how the reader was chosen.

import Foundation
import NIOEmbedded
import Synchronization
import TokenCrypto
import TokenJWT
import TokenStore

if CommandLine.arguments.count >= 2, CommandLine.arguments[1] == "expiry" {
    measureMassExpiry(count: CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2])! : 1_000_000)
    exit(0)
}

/// `tokenbench expiry N`: N sessions in the embedded store that all reach their end in the
/// same second; how long each sweep of 1,000 holds the store's lock while they are dropped (the
/// longest a verify can wait behind it), and how long dropping all of them takes.
func measureMassExpiry(count: Int) {
    final class ManualClock: TokenClock {
        let time = Atomic<Int64>(1_800_000_000)
        func milliseconds() -> Int64 { time.load(ordering: .relaxed) * 1000 }
    }
    let clock = ManualClock()
    let policy = RenewalPolicy(tombstoneGrace: 0)
    let store = EmbeddedStore(policy: policy, clock: clock)
    let loop = EmbeddedEventLoop()
    let start = clock.now()
    for index in 0..<count {
        let record = LoginRecord(kind: .session, subject: "user\(index % 50_000)", fingerprint: nil, createdAt: start, ttl: 7200,
                                 expiresAt: start + 60, maxExpiresAt: start + 60)
        _ = store.create(NewLogin(key: .random(), record: record), on: loop)
    }
    clock.time.store(start + 61, ordering: .relaxed)
    var longest: Duration = .zero
    var sweeps = 0
    let clockStart = ContinuousClock.now
    while true {
        let before = ContinuousClock.now
        let removed = store.sweep(budget: 1000)
        let took = ContinuousClock.now - before
        if removed == 0 { break }
        sweeps += 1
        longest = max(longest, took)
    }
    let total = ContinuousClock.now - clockStart
    print("\(count) sessions expired in \(sweeps) sweeps of at most 1,000 (tokend sweeps ten times a second); longest lock hold \(longest), all dropped in \(total)")
}

let seconds = CommandLine.arguments.dropFirst().first.flatMap(Double.init) ?? 2
/// `tokenbench profile ALG N`: only N verifications of ALG, for valgrind --tool=callgrind.
let profileAlgorithm = CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "profile" ? JWSAlgorithm(name: CommandLine.arguments[2]) : nil

/// Calls `body` in batches for about `seconds`; returns operations per second.
func measure(_ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<100 { try body() } // warm up
    let clock = ContinuousClock()
    let start = clock.now
    var count = 0
    var elapsed: Duration = .zero
    repeat {
        for _ in 0..<50 { try body() }
        count += 50
        elapsed = clock.now - start
    } while elapsed < .seconds(seconds)
    let total = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(count) / total
}

/// OpenSSL's raw figures for the primitives, parsed from `openssl speed -mr`.
struct OpenSSLSpeed {
    var hmacSHA256: Double?
    var ecdsaP256: (sign: Double, verify: Double)?
    var ed25519: (sign: Double, verify: Double)?
    var rsa2048: (sign: Double, verify: Double)?

    static func run(tokenLength: Int) -> OpenSSLSpeed {
        var speed = OpenSSLSpeed()
        let seconds = String(Int(max(1, seconds)))
        for line in openssl(["speed", "-elapsed", "-seconds", seconds, "-mr", "ecdsap256", "ed25519", "rsa2048"]) {
            let f = line.split(separator: ":").map(String.init)
            if f.first == "+F2", f.count >= 5, f[2] == "2048" { speed.rsa2048 = (Double(f[3])!, Double(f[4])!) }
            if f.first == "+F4", f.count >= 5, f[2] == "256" { speed.ecdsaP256 = (Double(f[3])!, Double(f[4])!) }
            if f.first == "+F6", f.count >= 6, f[3] == "Ed25519" { speed.ed25519 = (Double(f[4])!, Double(f[5])!) }
        }
        // The signing input HMAC sees is the token minus its signature.
        for line in openssl(["speed", "-elapsed", "-seconds", seconds, "-mr", "-bytes", String(tokenLength), "-hmac", "sha256"]) {
            let f = line.split(separator: ":").map(String.init)
            if f.first == "+F", f.count >= 4, let bytesPerSecond = Double(f[3]) { speed.hmacSHA256 = bytesPerSecond / Double(tokenLength) }
        }
        return speed
    }

    static func openssl(_ arguments: [String]) -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return [] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

let now: Int64 = 1_800_000_000
let claims = JWTClaims(
    issuer: "tokend", subject: "user-1234567890", audience: ["orders-api"], issuedAt: now, expiration: now + 1800,
    jwtID: Base64URL.encode(SecureRandom.bytes(16)), sessionID: Base64URL.encode(SecureRandom.bytes(16)),
    extra: [.init(name: "roles", value: .array([.string("reader"), .string("writer")]))]
)

func makeKey(_ algorithm: JWSAlgorithm) throws -> JWTKey {
    switch algorithm {
    case .es256: try JWTKey(asymmetric: .generate(.p256), algorithm: .es256)
    case .ed25519, .eddsa: try JWTKey(asymmetric: .generate(.ed25519), algorithm: algorithm)
    case .rs256: try JWTKey(asymmetric: .generate(.rsa(bits: 2048)), algorithm: .rs256)
    default: try JWTKey(hmacSecret: SecureRandom.bytes(algorithm.hmacHash!.byteCount), algorithm: algorithm)
    }
}

if let profileAlgorithm {
    let key = try makeKey(profileAlgorithm)
    let token = try JWTSigner.sign(claims, with: key)
    let verifier = JWTVerifier(keyRing: JWTKeyRing(keys: [key]))
    for _ in 0..<Int(CommandLine.arguments[3])! { _ = try verifier.verify(token, now: now) }
    exit(0)
}

let keys = try [JWSAlgorithm.hs256, .es256, .ed25519, .rs256].map(makeKey)

let hsToken = try JWTSigner.sign(claims, with: keys[0])
let signingInputLength = hsToken.utf8.count - 44
print("Measuring OpenSSL's raw primitives (openssl speed)...")
let raw = OpenSSLSpeed.run(tokenLength: signingInputLength)

func ratio(_ ours: Double, _ reference: Double?) -> String {
    guard let reference else { return "      n/a" }
    return String(format: "%8.2fx", ours / reference)
}

func row(_ cells: [String]) { print(cells.joined(separator: "  ")) }
func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - s.count))
    return left ? s + padding : padding + s
}

print("")
print("JWT operations on one core, token of about \(hsToken.utf8.count) bytes (\(signingInputLength)-byte signing input)")
row([pad("operation", 16, left: true), pad("tokend ops/s", 13), pad("OpenSSL raw ops/s", 18), pad("ratio", 9)])
for key in keys {
    let token = try JWTSigner.sign(claims, with: key)
    let verifier = JWTVerifier(keyRing: JWTKeyRing(keys: [key]))
    let sign = try measure { _ = try JWTSigner.sign(claims, with: key) }
    let verify = try measure { _ = try verifier.verify(token, now: now) }
    let reference: (sign: Double, verify: Double)? = switch key.algorithm {
    case .hs256: raw.hmacSHA256.map { ($0, $0) }
    case .es256: raw.ecdsaP256
    case .ed25519, .eddsa: raw.ed25519
    case .rs256: raw.rsa2048
    default: nil
    }
    row([pad("\(key.algorithm.name) sign", 16, left: true), pad(String(format: "%.0f", sign), 13), pad(reference.map { String(format: "%.0f", $0.sign) } ?? "n/a", 18), ratio(sign, reference?.sign)])
    row([pad("\(key.algorithm.name) verify", 16, left: true), pad(String(format: "%.0f", verify), 13), pad(reference.map { String(format: "%.0f", $0.verify) } ?? "n/a", 18), ratio(verify, reference?.verify)])
}

print("")
print("Payload JSON parsing (\(claims.json.utf8.count) bytes), ops/s:")
let payload = Array(claims.json.utf8)
let strict = measure { _ = try! StrictJSONParser().parseObject(payload) }
let data = Data(payload)
let foundation = measure { _ = try! JSONSerialization.jsonObject(with: data) }
row([pad("StrictJSONParser", 24, left: true), pad(String(format: "%.0f", strict), 12)])
row([pad("Foundation JSONSerialization", 24, left: true), pad(String(format: "%.0f", foundation), 12), String(format: "(strict/foundation %.2fx; Foundation also cannot see duplicate names)", strict / foundation)])

// A hostile header: as many members as fit in a token of the largest size a verifier accepts
// (8 KiB), sent by any peer of the socket and parsed before any key or signature is looked at.
// Its verify is refused; what matters is what the refusal costs next to a normal verify: once
// at the cap on header members, and once with the cap lifted, where only the linear duplicate
// check stands between the peer and quadratic work.
print("")
do {
    let key = keys[0]
    let token = try JWTSigner.sign(claims, with: key)
    let parts = token.split(separator: ".")
    var count = 16
    func hostile(_ count: Int) -> String {
        let members = (0..<count).map { #""m\#($0)":0"# }.joined(separator: ",")
        return Base64URL.encode(Array(#"{"alg":"HS256",\#(members)}"#.utf8)) + "." + parts[1] + "." + parts[2]
    }
    while hostile(count + 16).utf8.count <= JWTValidationPolicy().maximumTokenSize { count += 16 }
    let hostileToken = hostile(count)
    var uncapped = JWTValidationPolicy()
    uncapped.maximumHeaderMembers = .max
    let verifier = JWTVerifier(keyRing: JWTKeyRing(keys: [key]))
    let uncappedVerifier = JWTVerifier(keyRing: JWTKeyRing(keys: [key]), policy: uncapped)
    let normal = measure { _ = try? verifier.verify(token, now: now) }
    let refused = measure { _ = try? verifier.verify(hostileToken, now: now) }
    let refusedUncapped = measure { _ = try? uncappedVerifier.verify(hostileToken, now: now) }
    print("Hostile header: a \(hostileToken.utf8.count)-byte token whose header has \(count + 1) members, verifies/s:")
    row([pad("normal HS256 verify", 28, left: true), pad(String(format: "%.0f", normal), 12)])
    row([pad("hostile, refused at the cap", 28, left: true), pad(String(format: "%.0f", refused), 12),
         String(format: "(costs %.2fx a normal verify; goal under 10x)", normal / refused)])
    row([pad("hostile, cap lifted", 28, left: true), pad(String(format: "%.0f", refusedUncapped), 12),
         String(format: "(costs %.2fx a normal verify: the linear duplicate check alone)", normal / refusedUncapped)])
}
