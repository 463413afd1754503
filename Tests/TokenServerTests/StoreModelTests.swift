import Foundation
import Logging
import NIOCore
import NIOPosix
import RedisClient
import TestSupport
import Testing
import TokenRedisStore
import TokenStore

/// The store's rules as a small reference model, written from proto-spec.md's rules and not
/// from the stores' code, and random operation sequences with clock jumps checked against both
/// stores step by step. A mismatch is shrunk to a short sequence, which the failure prints.
///
/// Sequences come from a seeded generator: the same seed gives the same sequences, and
/// `TOKEND_MODEL_SEED` runs others. Total clock travel stays under a login's tombstone time,
/// which Redis counts in real time (the key's expiry), so that no login is forgotten by one
/// store and not the other.
@Suite(.serialized, .enabled(if: RedisServer.installed, "redis-server is not installed (tools/test installs it); the model is checked on both stores or not at all"))
struct StoreModelTests {
    /// Policies that give the window and the grace each a turn: the family's access TTL as
    /// grace, no grace and no window at all, a grace shorter than the access TTL.
    static let policies = [
        RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindowMilliseconds: 1500, rotationGraceMilliseconds: nil, tombstoneGrace: 3600),
        RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindowMilliseconds: 0, rotationGraceMilliseconds: 0, tombstoneGrace: 3600),
        RenewalPolicy(renewBelow: 60, renewBy: 60, dedupWindowMilliseconds: 4000, rotationGraceMilliseconds: 10_000, tombstoneGrace: 3600),
    ]
    static let fingerprints: [Digest128?] = [Digest128(high: 1, low: 1), Digest128(high: 2, low: 2), nil]
    static let subjects = ["ann", "bo"]

    @Test(arguments: [StoreContractTests.Kind.embedded, .redis])
    func everyStepMatchesTheModel(_ kind: StoreContractTests.Kind) async throws {
        let server = kind == .redis ? try RedisServer() : nil
        defer { server?.stop() }
        let seed = ProcessInfo.processInfo.environment["TOKEND_MODEL_SEED"].flatMap(UInt64.init) ?? 0x70CE_2D
        let sequences = kind == .embedded ? 300 : 90
        var answers: [String: Int] = [:]
        for index in 0..<sequences {
            let policy = Self.policies[index % Self.policies.count]
            var generator = SeededGenerator(seed: seed &+ UInt64(index))
            let operations = Self.sequence(length: 40, policy: policy, using: &generator)
            guard let mismatch = try await Self.run(operations, policy: policy, kind: kind, server: server, answers: &answers) else { continue }
            let shrunk = try await Self.shrink(operations, policy: policy, kind: kind, server: server)
            let failure = try await Self.run(shrunk, policy: policy, kind: kind, server: server) ?? mismatch
            Issue.record("""
                \(kind) store differs from the model (seed \(seed), sequence \(index), policy window \(policy.dedupWindowMilliseconds) ms, \
                grace \(policy.rotationGraceMilliseconds.map { "\($0) ms" } ?? "access TTL")), shrunk from \(operations.count) to \(shrunk.count) steps:
                \(shrunk.enumerated().map { "  \($0.offset): \($0.element)" }.joined(separator: "\n"))
                at step \(failure.step): store \(failure.store), model \(failure.model)
                """)
            return
        }
        // The sequences reached every rule: repeats (in the window and after it), reuse,
        // fingerprints, revocations, idle and maximum lifetimes.
        for answer in ["rotated", "repeated", "reuseDetected", "fingerprintMismatch", "revoked", "maxLifetimeReached", "idleExpired", "renewed true"] {
            #expect(answers[answer, default: 0] >= 5, "\(answer): \(answers[answer, default: 0]) times in \(answers)")
        }
    }

    // MARK: Operations

    /// A refresh token as a client holds it.
    struct Token: Hashable, CustomStringConvertible {
        var family: SessionKey
        var id: SessionKey
        var digest: Digest128
        var generation: Int64?
        var description: String { "token(\(family.text.prefix(4)) \(id.text.prefix(4)) gen \(generation.map(String.init) ?? "-"))" }
    }

    enum Operation: CustomStringConvertible {
        case createSession(SessionKey, subject: String, fingerprint: Digest128?)
        case createFamily(SessionKey, first: Token, subject: String, fingerprint: Digest128?)
        case touch(SessionKey, subject: String, fingerprint: Digest128?, explicit: Bool)
        case check(SessionKey, fingerprint: Digest128?, generation: Int64?)
        case prepare(Token, fingerprint: Digest128?)
        /// A rotation whose new pair would be `next`.
        case rotate(Token, next: Token, fingerprint: Digest128?)
        case revoke(SessionKey)
        case revokeSubject(String)
        case advance(milliseconds: Int64)

        var description: String {
            func fp(_ digest: Digest128?) -> String { digest.map { "fp\($0.high)" } ?? "unbound" }
            switch self {
            case .createSession(let key, let subject, let fingerprint): return "createSession \(key.text.prefix(4)) \(subject) \(fp(fingerprint))"
            case .createFamily(let key, let first, let subject, let fingerprint): return "createFamily \(key.text.prefix(4)) \(first) \(subject) \(fp(fingerprint))"
            case .touch(let key, let subject, let fingerprint, let explicit): return "touch \(key.text.prefix(4)) \(subject) \(fp(fingerprint)) explicit \(explicit)"
            case .check(let key, let fingerprint, let generation): return "check \(key.text.prefix(4)) \(fp(fingerprint)) gen \(generation.map(String.init) ?? "-")"
            case .prepare(let token, let fingerprint): return "prepare \(token) \(fp(fingerprint))"
            case .rotate(let token, let next, let fingerprint): return "rotate \(token) -> \(next.id.text.prefix(4)) \(fp(fingerprint))"
            case .revoke(let key): return "revoke \(key.text.prefix(4))"
            case .revokeSubject(let subject): return "revokeSubject \(subject)"
            case .advance(let milliseconds): return "advance \(milliseconds) ms"
            }
        }
    }

    /// Clock jumps around every boundary: the windows (1.5 s, 4 s), the grace (10 s, 30 s),
    /// renew-below (60 s), a refresh token's and a session's lifetimes, the maximum lifetime.
    static let jumps: [Int64] = [0, 1, 499, 1000, 1499, 1501, 3999, 4001, 10_001, 29_999, 30_001, 61_000, 121_000, 150_000, 240_000]

    /// A random sequence, made while a model runs along, so that it presents the tokens a
    /// client would hold (the current one, spent ones, another family's) more often than not.
    static func sequence(length: Int, policy: RenewalPolicy, using generator: inout SeededGenerator) -> [Operation] {
        var model = Model(policy: policy)
        var operations: [Operation] = []
        var travelled: Int64 = 0
        func pick<T>(_ values: [T]) -> T { values[Int(generator.next() % UInt64(values.count))] }
        func newKey() -> SessionKey { SessionKey(high: generator.next(), low: generator.next()) }
        func newToken(_ family: SessionKey, generation: Int64?) -> Token {
            Token(family: family, id: newKey(), digest: Digest128(high: generator.next(), low: generator.next()), generation: generation)
        }
        while operations.count < length {
            // Sorted, so that the seed alone decides the sequence.
            let families = model.logins.filter { $0.value.kind == .family }.map(\.key).sorted()
            let sessions = model.logins.filter { $0.value.kind == .session }.map(\.key).sorted()
            let tokens = model.tokens.sorted { ($0.id.high, $0.id.low) < ($1.id.high, $1.id.low) }
            let operation: Operation
            let choice = generator.next() % 20
            if choice < 2 {
                let key = newKey()
                // One in four as issued before generations: a refresh token without one.
                operation = .createFamily(key, first: newToken(key, generation: generator.next() % 4 == 0 ? nil : 0), subject: pick(subjects),
                                          fingerprint: pick(fingerprints))
            } else if choice < 3 {
                operation = .createSession(newKey(), subject: pick(subjects), fingerprint: pick(fingerprints))
            } else if choice < 5, !sessions.isEmpty {
                operation = .touch(pick(sessions), subject: pick(subjects + [model.logins[pick(sessions)]!.subject]), fingerprint: pick(fingerprints),
                                   explicit: generator.next() % 2 == 0)
            } else if choice < 8, !families.isEmpty {
                let family = pick(families)
                let current = model.logins[family]!.generation
                operation = .check(pick(families + sessions), fingerprint: model.logins[family]!.fingerprint ?? pick(fingerprints),
                                   generation: pick([current, current, current - 1, nil, 7]))
            } else if choice < 13, !tokens.isEmpty {
                let token = pick(tokens)
                // Mostly the family's own fingerprint: the rules past the fingerprint get exercised.
                let fingerprint = generator.next() % 4 == 0 ? pick(fingerprints) : model.logins[token.family]?.fingerprint ?? pick(fingerprints)
                operation = .rotate(token, next: newToken(token.family, generation: (token.generation ?? 0) + 1), fingerprint: fingerprint)
            } else if choice < 14, !tokens.isEmpty {
                let token = pick(tokens)
                operation = .prepare(token, fingerprint: model.logins[token.family]?.fingerprint ?? pick(fingerprints))
            } else if choice < 15, !families.isEmpty || !sessions.isEmpty {
                operation = generator.next() % 5 == 0 ? .revokeSubject(pick(subjects)) : .revoke(pick(families + sessions + [newKey()]))
            } else if choice < 18 {
                let jump = pick(jumps)
                guard travelled + jump < 550_000 else { continue }
                travelled += jump
                operation = .advance(milliseconds: jump)
            } else {
                continue
            }
            _ = model.apply(operation, at: 1_800_000_000_000 + travelled)
            operations.append(operation)
        }
        return operations
    }

    // MARK: Running

    struct Mismatch { var step: Int; var store: String; var model: String }

    /// Runs `operations` on a fresh store of `kind` and on the model; the first step where they
    /// answer differently, or nil.
    static func run(_ operations: [Operation], policy: RenewalPolicy, kind: StoreContractTests.Kind, server: RedisServer?) async throws -> Mismatch? {
        var answers: [String: Int] = [:]
        return try await run(operations, policy: policy, kind: kind, server: server, answers: &answers)
    }

    /// `run`, counting the model's answers by their first word (`renewed` with its flag).
    static func run(_ operations: [Operation], policy: RenewalPolicy, kind: StoreContractTests.Kind, server: RedisServer?,
                    answers: inout [String: Int]) async throws -> Mismatch? {
        let clock = ManualClock(Int64(Date().timeIntervalSince1970))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let store: any TokenStateStore
        var redis: RedisStore?
        if let server {
            let settings = try RedisClient.Configuration(endpoint: RedisEndpoint(url: server.unixURL), timeout: .seconds(5))
            redis = RedisStore(configuration: settings, policy: policy, clock: clock, prefix: "m\(UUID().uuidString.prefix(8)):", logger: Logger(label: "test"))
            store = redis!
        } else {
            store = try EmbeddedStore(policy: policy, clock: clock, persistence: nil, logger: Logger(label: "test"))
        }
        defer { redis?.close() }
        var model = Model(policy: policy)
        for (step, operation) in operations.enumerated() {
            let expected = model.apply(operation, at: clock.milliseconds())
            let words = expected.split(separator: " ")
            answers[words.first.map(String.init) ?? "", default: 0] += 1
            if let renewed = words.firstIndex(of: "renewed"), renewed + 1 < words.count { answers["renewed \(words[renewed + 1])", default: 0] += 1 }
            let answered = try await perform(operation, on: store, clock: clock, loop: loop)
            if answered != expected { return Mismatch(step: step, store: answered, model: expected) }
        }
        return nil
    }

    /// Removes steps, one at a time and then in halves, as long as a mismatch remains.
    static func shrink(_ operations: [Operation], policy: RenewalPolicy, kind: StoreContractTests.Kind, server: RedisServer?) async throws -> [Operation] {
        var current = operations
        var chunk = max(1, current.count / 2)
        while chunk >= 1 {
            var index = 0
            var removedAny = false
            while index < current.count {
                var candidate = current
                candidate.removeSubrange(index..<min(index + chunk, candidate.count))
                if try await run(candidate, policy: policy, kind: kind, server: server) != nil {
                    current = candidate
                    removedAny = true
                } else {
                    index += chunk
                }
            }
            if !removedAny { chunk /= 2 }
        }
        return current
    }

    static func perform(_ operation: Operation, on store: any TokenStateStore, clock: ManualClock, loop: any EventLoop) async throws -> String {
        let now = clock.now()
        switch operation {
        case .createSession(let key, let subject, let fingerprint):
            let record = LoginRecord(kind: .session, subject: subject, fingerprint: fingerprint, createdAt: now, ttl: 120, expiresAt: now + 120,
                                     maxExpiresAt: now + 300)
            return "\(try await store.create(NewLogin(key: key, record: record), on: loop).get())"
        case .createFamily(let key, let first, let subject, let fingerprint):
            let record = LoginRecord(kind: .family, subject: subject, fingerprint: fingerprint, createdAt: now, ttl: 30, expiresAt: now + 60,
                                     maxExpiresAt: now + 300, refreshTTL: 60, currentRefreshID: first.id)
            return "\(try await store.create(NewLogin(key: key, record: record), on: loop).get())"
        case .touch(let key, let subject, let fingerprint, let explicit):
            return Model.describe(try await store.touchSession(key, fingerprint: fingerprint, subject: subject, explicit: explicit, on: loop).get())
        case .check(let key, let fingerprint, let generation):
            return Model.describe(try await store.checkFamily(key, fingerprint: fingerprint, generation: generation, on: loop).get())
        case .prepare(let token, let fingerprint):
            let presented = PresentedRefresh(id: token.id, digest: token.digest, generation: token.generation)
            switch try await store.prepareRotation(token.family, presented: presented, fingerprint: fingerprint, on: loop).get() {
            case .family(let outcome): return Model.describe(outcome)
            case .repeated(let sealed): return "repeated \(SessionKey(bytes: sealed)?.text.prefix(4) ?? "?")"
            }
        case .rotate(let token, let next, let fingerprint):
            let rotation = Rotation(family: token.family, presented: PresentedRefresh(id: token.id, digest: token.digest, generation: token.generation),
                                    fingerprint: fingerprint, newRefreshID: next.id, newRefreshExpiresAt: now + 60,
                                    sealedCandidate: next.id.bytes)
            switch try await store.rotate(rotation, on: loop).get() {
            case .deduplicated(let sealed): return "repeated \(SessionKey(bytes: sealed)?.text.prefix(4) ?? "?")"
            case let outcome: return "\(outcome)"
            }
        case .revoke(let key):
            return "revoked \(try await store.revoke(.login(key), on: loop).get().map(String.init) ?? "unknown")"
        case .revokeSubject(let subject):
            return "revoked \(try await store.revoke(.subject(subject), on: loop).get().map(String.init) ?? "unknown")"
        case .advance(let milliseconds):
            clock.advance(milliseconds: milliseconds)
            return "advanced"
        }
    }

    // MARK: The model

    /// The rules, from the spec: what each operation answers and how it changes the state.
    struct Model {
        struct Login {
            var kind: LoginKind
            var subject: String
            var fingerprint: Digest128?
            var ttl: Int64
            var expiresAt: Int64
            var maxExpiresAt: Int64
            var current: SessionKey?
            var generation: Int64 = 0
            var used = false
            var revoked = false
        }

        /// A rotation remembered for the spent token's repeats.
        struct Kept {
            var pair: SessionKey
            var fingerprint: Digest128?
            var generation: Int64
            var windowEndsAt: Int64
            var keptUntil: Int64
        }

        let policy: RenewalPolicy
        var logins: [SessionKey: Login] = [:]
        var kept: [Digest128: Kept] = [:]
        /// Every refresh token a client was given (for the generator).
        var tokens: Set<Token> = []

        init(policy: RenewalPolicy) { self.policy = policy }

        mutating func apply(_ operation: Operation, at milliseconds: Int64) -> String {
            let now = milliseconds / 1000
            switch operation {
            case .createSession(let key, let subject, let fingerprint):
                logins[key] = Login(kind: .session, subject: subject, fingerprint: fingerprint, ttl: 120, expiresAt: now + 120, maxExpiresAt: now + 300)
                return "\(CreateOutcome.created)"
            case .createFamily(let key, let first, let subject, let fingerprint):
                logins[key] = Login(kind: .family, subject: subject, fingerprint: fingerprint, ttl: 30, expiresAt: now + 60, maxExpiresAt: now + 300,
                                    current: first.id)
                tokens.insert(first)
                return "\(CreateOutcome.created)"
            case .touch(let key, let subject, let fingerprint, let explicit):
                guard var login = logins[key] else { return "unknown" }
                guard login.kind == .session else { return "wrongKind" }
                guard !login.revoked else { return "revoked" }
                guard now < login.maxExpiresAt else { return "maxLifetimeReached" }
                guard login.fingerprint == nil || login.fingerprint == fingerprint else { return "fingerprintMismatch" }
                guard subject == login.subject else { return "subjectMismatch" }
                guard now < login.expiresAt else { return "idleExpired" }
                var target = login.expiresAt
                if explicit {
                    target = min(now + login.ttl, login.maxExpiresAt)
                } else if login.expiresAt - now < policy.renewBelow {
                    target = min(login.expiresAt + policy.renewBy, now + login.ttl, login.maxExpiresAt)
                }
                let renewed = target > login.expiresAt
                if renewed { login.expiresAt = target }
                logins[key] = login
                return "active \(login.subject) \(login.expiresAt) \(login.maxExpiresAt) renewed \(renewed)"
            case .check(let key, let fingerprint, let generation):
                if let refusal = familyRefusal(key, fingerprint: fingerprint, now: now) { return refusal }
                if generation == logins[key]!.generation { logins[key]!.used = true }
                return Self.describe(logins[key]!)
            case .prepare(let token, let fingerprint):
                if let refusal = familyRefusal(token.family, fingerprint: fingerprint, now: now) { return refusal }
                if let entry = kept[token.digest], milliseconds < entry.keptUntil, repeats(entry, logins[token.family]!, at: milliseconds) {
                    return entry.fingerprint == fingerprint ? "repeated \(entry.pair.text.prefix(4))" : "fingerprintMismatch"
                }
                return Self.describe(logins[token.family]!)
            case .rotate(let token, let next, let fingerprint):
                if let refusal = familyRefusal(token.family, fingerprint: fingerprint, now: now) {
                    return refusal == "wrongKind" ? "unknown" : refusal
                }
                var login = logins[token.family]!
                if let entry = kept[token.digest], milliseconds < entry.keptUntil {
                    // A repeat goes only to the fingerprint the pair was made for; a reuse is
                    // one whoever presents it.
                    if repeats(entry, login, at: milliseconds) {
                        return entry.fingerprint == fingerprint ? "repeated \(entry.pair.text.prefix(4))" : "fingerprintMismatch"
                    }
                    logins[token.family]!.revoked = true
                    return "\(RotationOutcome.reuseDetected)"
                }
                guard token.id == login.current, token.generation == nil || token.generation == login.generation else {
                    logins[token.family]!.revoked = true
                    return "\(RotationOutcome.reuseDetected)"
                }
                login.generation += 1
                login.used = false
                login.current = next.id
                login.expiresAt = now + 60
                logins[token.family] = login
                let keep = max(policy.rotationGraceMilliseconds ?? login.ttl * 1000, policy.dedupWindowMilliseconds)
                if keep > 0 {
                    kept[token.digest] = Kept(pair: next.id, fingerprint: fingerprint, generation: login.generation,
                                              windowEndsAt: milliseconds + policy.dedupWindowMilliseconds, keptUntil: milliseconds + keep)
                }
                tokens.insert(next)
                return "\(RotationOutcome.rotated)"
            case .revoke(let key):
                guard let login = logins[key] else { return "revoked unknown" }
                logins[key]!.revoked = true
                return "revoked \(login.revoked ? 0 : 1)"
            case .revokeSubject(let subject):
                var count = 0
                for (key, login) in logins where login.subject == subject && !login.revoked {
                    logins[key]!.revoked = true
                    count += 1
                }
                return "revoked \(count)"
            case .advance:
                return "advanced"
            }
        }

        /// Within the window any repeat; after it, within the grace, while the pair it holds
        /// is the family's current one and unused.
        func repeats(_ entry: Kept, _ login: Login, at milliseconds: Int64) -> Bool {
            milliseconds < entry.windowEndsAt || (entry.generation == login.generation && !login.used)
        }

        func familyRefusal(_ key: SessionKey, fingerprint: Digest128?, now: Int64) -> String? {
            guard let login = logins[key] else { return "unknown" }
            guard login.kind == .family else { return "wrongKind" }
            guard !login.revoked else { return "revoked" }
            guard now < login.maxExpiresAt else { return "maxLifetimeReached" }
            guard login.fingerprint == nil || login.fingerprint == fingerprint else { return "fingerprintMismatch" }
            return nil
        }

        static func describe(_ login: Login) -> String {
            "active \(login.subject) gen \(login.generation) used \(login.used) current \(login.current?.text.prefix(4) ?? "-") expires \(login.expiresAt)"
        }

        static func describe(_ outcome: FamilyOutcome) -> String {
            guard case .active(let record) = outcome else { return "\(outcome)" }
            return "active \(record.subject) gen \(record.generation) used \(record.generationUsed) current \(record.currentRefreshID?.text.prefix(4) ?? "-") expires \(record.expiresAt)"
        }

        static func describe(_ outcome: SessionOutcome) -> String {
            guard case .active(let info, let renewed) = outcome else { return "\(outcome)" }
            return "active \(info.subject) \(info.expiresAt) \(info.maxExpiresAt) renewed \(renewed)"
        }
    }
}

/// SplitMix64: a small seeded generator, so that a failing sequence can be made again.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_B9E5
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
