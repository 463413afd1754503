import Logging
import NIOConcurrencyHelpers
import NIOCore
import RedisClient
import TokenCrypto
import TokenStore

/// The shared store: every host's tokend keeps its logins, revocations and dedup entries in
/// one Redis (or Redis Cluster), so a token issued on one host verifies, renews, rotates and
/// revokes on any other.
///
/// Every read-modify-write is one Lua script (`RedisScripts`) over the keys of one login, which
/// share the hash tag `{sid}`: atomic across hosts, and on Redis Cluster a single node's work.
/// A verify is one round trip. Expiry is Redis's: each key expires when the embedded store
/// would forget it. When Redis cannot answer in time, calls fail with `StoreUnavailable` and
/// nothing is assumed: the daemon fails closed.
///
/// Keys (`P` is the prefix, `tokend:` by default):
/// - `P{sid}`: a login (hash); `P{sid}:r:<digest>`: a rotation's dedup entry;
/// - `Pi:{digest}`: an idempotent issue's dedup entry;
/// - `Ps:{digest}`: a subject's login keys, a sorted set scored by when each is forgotten, for
///   revoke and list by subject.
public final class RedisStore: TokenStateStore {
    public let client: RedisClient
    private let policy: RenewalPolicy
    private let clock: any TokenClock
    private let prefix: String
    private let logger: Logger

    public init(configuration: RedisClient.Configuration, policy: RenewalPolicy, clock: any TokenClock, prefix: String = "tokend:", logger: Logger) {
        var configuration = configuration
        configuration.scripts = RedisScripts.all
        self.client = RedisClient(configuration: configuration, logger: logger)
        self.policy = policy
        self.clock = clock
        self.prefix = prefix
        self.logger = logger
    }

    public func close() { client.close() }

    /// Where the revoke and rotate scripts publish the session id of every login they revoke,
    /// for the near caches of every daemon (proto-spec 12.16), as `origin:id`.
    public var invalidationChannel: [UInt8] { Array("\(prefix)invalidations".utf8) }

    /// This store's mark on what it publishes, so that a daemon can tell its own revocations
    /// (already pushed to its clients) from other daemons'.
    public let origin = SessionKey.random().text

    /// A published message: the session id, unless this store published it.
    public func revokedElsewhere(_ message: [UInt8]) -> String? {
        let text = String(decoding: message, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return text }
        return text[..<colon] == origin ? nil : String(text[text.index(after: colon)...])
    }

    private func published(_ id: some StringProtocol) -> [UInt8] { Array("\(origin):\(id)".utf8) }

    /// Asks Redis (a PING within the store timeout) at most once a second; between asks, the
    /// last answer. Never the outcome of the last request alone: with no traffic that would
    /// stay whatever it was, and a readiness check would keep a recovered daemon out.
    public func health(on eventLoop: any EventLoop) -> EventLoopFuture<Bool> {
        let now = ContinuousClock.now
        if let (at, healthy) = lastProbe.withLockedValue({ $0 }), now - at < .seconds(1) {
            return eventLoop.makeSucceededFuture(healthy)
        }
        return check(on: eventLoop).map { true }.recover { _ in false }.map { healthy in
            self.lastProbe.withLockedValue { $0 = (now, healthy) }
            return healthy
        }
    }

    private let lastProbe = NIOLockedValueBox<(ContinuousClock.Instant, Bool)?>(nil)

    /// Asks Redis once (connecting, authenticating and checking its version as every connection
    /// does): at start, so that a wrong address or password stops the start instead of failing
    /// every request after READY.
    public func check(on loop: any EventLoop) -> EventLoopFuture<Void> {
        client.send(RedisCommand("PING"), key: nil, on: loop).flatMapThrowing { reply in
            if case .error(let message) = reply { throw StoreUnavailable("Redis refused PING: \(message)") }
        }
    }

    // MARK: Keys

    func loginKey(_ key: SessionKey) -> [UInt8] { Array("\(prefix){\(key.text)}".utf8) }

    private func rotationKey(_ key: SessionKey, _ digest: Digest128) -> [UInt8] { Array("\(prefix){\(key.text)}:r:\(Self.hex(digest))".utf8) }

    private func idempotencyKey(_ digest: Digest128) -> [UInt8] { Array("\(prefix)i:{\(Self.hex(digest))}".utf8) }

    private func subjectKey(_ subject: String) -> [UInt8] {
        Array("\(prefix)s:{\(Self.hex(Digest128(prefixOf: HashFunction.sha256.hash(Array(subject.utf8)))))}".utf8)
    }

    static func hex(_ digest: Digest128) -> String {
        let high = String(digest.high, radix: 16), low = String(digest.low, radix: 16)
        return String(repeating: "0", count: 16 - high.count) + high + String(repeating: "0", count: 16 - low.count) + low
    }

    private static func bytes(_ digest: Digest128?) -> [UInt8] {
        guard let digest else { return [] }
        return withUnsafeBytes(of: digest.high.bigEndian, Array.init) + withUnsafeBytes(of: digest.low.bigEndian, Array.init)
    }

    /// Who may have a rotated pair again: '0' for an unbound caller, '1' and the digest for a bound one.
    private static func dedupTag(_ fingerprint: Digest128?) -> [UInt8] {
        fingerprint.map { [UInt8(ascii: "1")] + bytes($0) } ?? [UInt8(ascii: "0")]
    }

    // MARK: Calls

    /// Runs a script and reads its reply with `read`, in one step: no reply, an error reply, or
    /// one `read` refuses all become `StoreUnavailable`.
    private func run<T: Sendable>(_ script: RedisScript, keys: [[UInt8]], _ arguments: [RedisArgument], on eventLoop: any EventLoop,
                                  _ read: @escaping @Sendable (RESPValue) throws -> T) -> EventLoopFuture<T> {
        client.evaluate(script, keys: keys, arguments: arguments, on: eventLoop).flatMapThrowing { reply in
            if case .error(let message) = reply { throw StoreUnavailable("Redis refused the \(script.name) script: \(message)") }
            return try read(reply)
        }.failingAsUnavailable()
    }

    private func fields(_ record: LoginRecord) -> [RedisArgument] {
        var fields: [RedisArgument] = [
            "k", .integer(Int64(record.kind.rawValue)), "s", .string(record.subject), "c", .integer(record.createdAt),
            "t", .integer(record.ttl), "e", .integer(record.expiresAt), "m", .integer(record.maxExpiresAt),
            "r", .integer(record.refreshTTL), "v", record.revoked ? "1" : "0",
        ]
        if let fingerprint = record.fingerprint { fields += ["f", .bytes(Self.bytes(fingerprint))] }
        if let refreshID = record.currentRefreshID { fields += ["n", .bytes(refreshID.bytes)] }
        if record.kind == .family { fields += ["g", .integer(record.generation), "u", record.generationUsed ? "1" : "0"] }
        return fields
    }

    public func create(_ login: NewLogin, on eventLoop: any EventLoop) -> EventLoopFuture<CreateOutcome> {
        let forget = login.record.forgetAt(policy: policy)
        // The index first in intent, but both at once: no token is handed out until both are
        // written, so a crash between them leaves at worst an unreachable login that expires.
        let indexed = run(RedisScripts.index, keys: [subjectKey(login.record.subject)],
                          [.bytes(loginKey(login.key)), .integer(forget), .integer(clock.now())], on: eventLoop) { _ in }
        let created = run(RedisScripts.create, keys: [loginKey(login.key)], fields(login.record) + [.integer(forget)], on: eventLoop) { _ in }
        let written = indexed.and(created)
        // With a dedup window of 0 nothing is remembered: every request creates a login.
        guard let idempotency = login.idempotency, policy.dedupWindowMilliseconds > 0 else { return written.map { _ in .created } }
        // The dedup entry lives in another slot than the new login, so it is claimed after the
        // login exists (SET NX GET, atomic): the loser of a race deletes its own login, which
        // nobody has seen, and answers with the winner's tokens.
        return written.flatMap { _ in
            let claim = RedisCommand("SET", .bytes(self.idempotencyKey(idempotency.key)), .bytes(Self.bytes(idempotency.requestDigest) + idempotency.sealed),
                                     "NX", "GET", "PX", .integer(self.policy.dedupWindowMilliseconds))
            return self.client.send(claim, key: self.idempotencyKey(idempotency.key), on: eventLoop).flatMapThrowing { reply -> CreateOutcome in
                switch reply {
                case .null:
                    return .created
                case .bulkString(let earlier) where earlier.count >= 16:
                    _ = self.client.send(RedisCommand("DEL", .bytes(self.loginKey(login.key))), key: self.loginKey(login.key), on: eventLoop)
                    let digest = Digest128(prefixOf: Array(earlier.prefix(16)))
                    return digest.constantTimeEquals(idempotency.requestDigest) ? .existing(Array(earlier.dropFirst(16))) : .conflict
                default:
                    throw StoreUnavailable("unexpected reply to the idempotency claim: \(reply)")
                }
            }.failingAsUnavailable()
        }
    }

    public func touchSession(_ key: SessionKey, fingerprint: Digest128?, subject: String, explicit: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<SessionOutcome> {
        run(RedisScripts.touch, keys: [loginKey(key)],
            [.integer(clock.now()), .bytes(Self.bytes(fingerprint)), explicit ? "1" : "0", .integer(policy.renewBelow), .integer(policy.renewBy),
             .bytes(Array(subject.utf8))],
            on: eventLoop) { reply in
            let values = try Self.values(reply)
            switch values[0].string {
            case "active":
                guard values.count == 5, let subject = values[1].string, let expires = values[2].integer, let maximum = values[3].integer,
                      let renewed = values[4].integer
                else { throw StoreUnavailable("unexpected reply from the touch script") }
                return .active(LoginInfo(subject: subject, expiresAt: expires, maxExpiresAt: maximum), renewed: renewed == 1)
            case "unknown": return .unknown
            case "wrong_kind": return .wrongKind
            case "revoked": return .revoked
            case "max_lifetime": return .maxLifetimeReached
            case "fingerprint": return .fingerprintMismatch
            case "subject": return .subjectMismatch
            case "idle": return .idleExpired
            default: throw StoreUnavailable("unexpected reply from the touch script")
            }
        }
    }

    public func checkFamily(_ key: SessionKey, fingerprint: Digest128?, generation: Int64?, on eventLoop: any EventLoop) -> EventLoopFuture<FamilyOutcome> {
        let milliseconds = clock.milliseconds()
        return run(RedisScripts.check, keys: [loginKey(key)], [
            .integer(milliseconds / 1000), .bytes(Self.bytes(fingerprint)), Self.optional(generation), .integer(milliseconds),
        ], on: eventLoop) { reply in
            try Self.familyOutcome(try Self.values(reply), script: "check")
        }
    }

    /// An optional number as the scripts take it: '' for none (a token without a generation,
    /// a grace left to each family's TTL).
    private static func optional(_ value: Int64?) -> RedisArgument {
        value.map { .integer($0) } ?? .string("")
    }

    public func prepareRotation(_ key: SessionKey, presented: PresentedRefresh, fingerprint: Digest128?, on eventLoop: any EventLoop) -> EventLoopFuture<RotationCheck> {
        let milliseconds = clock.milliseconds()
        return run(RedisScripts.prepare, keys: [loginKey(key), rotationKey(key, presented.digest)], [
            .integer(milliseconds / 1000), .bytes(Self.bytes(fingerprint)), .bytes(Self.dedupTag(fingerprint)), .integer(milliseconds),
            .bytes(presented.id.bytes), Self.optional(presented.generation),
        ], on: eventLoop) { reply in
            let values = try Self.values(reply)
            if values[0].string == "dedup" {
                guard values.count == 2, let sealed = values[1].bytes else { throw StoreUnavailable("unexpected reply from the prepare script") }
                return .repeated(sealed)
            }
            return .family(try Self.familyOutcome(values, script: "prepare"))
        }
    }

    /// The reply of `check` (and of `prepare` when it found no repeat).
    private static func familyOutcome(_ values: [RESPValue], script: String) throws -> FamilyOutcome {
        switch values[0].string {
        case "active":
            guard values.count == 11, let subject = values[1].string, let fingerprint = values[2].bytes,
                  let created = values[3].integer, let ttl = values[4].integer, let expires = values[5].integer,
                  let maximum = values[6].integer, let refreshTTL = values[7].integer, let refreshID = values[8].bytes,
                  let generation = values[9].integer, let used = values[10].string
            else { throw StoreUnavailable("unexpected reply from the \(script) script") }
            return .active(LoginRecord(kind: .family, subject: subject, fingerprint: fingerprint.count == 16 ? Digest128(prefixOf: fingerprint) : nil,
                                       createdAt: created, ttl: ttl, expiresAt: expires, maxExpiresAt: maximum, refreshTTL: refreshTTL,
                                       currentRefreshID: SessionKey(bytes: refreshID), generation: generation, generationUsed: used == "1"))
        case "unknown": return .unknown
        case "wrong_kind": return .wrongKind
        case "revoked": return .revoked
        case "max_lifetime": return .maxLifetimeReached
        case "fingerprint": return .fingerprintMismatch
        default: throw StoreUnavailable("unexpected reply from the \(script) script")
        }
    }

    public func rotate(_ rotation: Rotation, on eventLoop: any EventLoop) -> EventLoopFuture<RotationOutcome> {
        let milliseconds = clock.milliseconds()
        return run(RedisScripts.rotate, keys: [loginKey(rotation.family), rotationKey(rotation.family, rotation.presented.digest)], [
            .integer(milliseconds / 1000), .bytes(Self.bytes(rotation.fingerprint)), .bytes(rotation.presented.id.bytes),
            .bytes(rotation.newRefreshID.bytes), .integer(rotation.newRefreshExpiresAt), .bytes(rotation.sealedCandidate),
            .integer(policy.dedupWindowMilliseconds), .bytes(Self.dedupTag(rotation.fingerprint)),
            .bytes(invalidationChannel), .bytes(published(rotation.family.text)),
            .integer(milliseconds), Self.optional(policy.rotationGraceMilliseconds), Self.optional(rotation.presented.generation),
        ], on: eventLoop) { reply in
            let values = try Self.values(reply)
            switch values[0].string {
            case "rotated": return .rotated
            case "dedup":
                guard values.count == 2, let sealed = values[1].bytes else { throw StoreUnavailable("unexpected reply from the rotate script") }
                return .deduplicated(sealed)
            case "reuse": return .reuseDetected
            case "unknown": return .unknown
            case "revoked": return .revoked
            case "max_lifetime": return .maxLifetimeReached
            case "fingerprint": return .fingerprintMismatch
            default: throw StoreUnavailable("unexpected reply from the rotate script")
            }
        }
    }

    public func revoke(_ target: RevokeTarget, on eventLoop: any EventLoop) -> EventLoopFuture<Int?> {
        switch target {
        case .login(let key):
            return revoke(loginKey: loginKey(key), on: eventLoop).map { $0 < 0 ? nil : Int($0) }
        case .subject(let subject):
            // Each login atomically; logins issued while this runs are not covered, as with a
            // revoke that comes just before an issue.
            return members(of: subject, on: eventLoop).flatMap { keys in
                let revocations = keys.map { self.revoke(loginKey: $0, on: eventLoop) }
                return EventLoopFuture.whenAllSucceed(revocations, on: eventLoop).map { results in
                    Optional(results.reduce(0) { $0 + ($1 > 0 ? 1 : 0) })
                }
            }
        }
    }

    private func revoke(loginKey: [UInt8], on eventLoop: any EventLoop) -> EventLoopFuture<Int64> {
        // The session id is the key's hash tag: `P{id}`.
        let id = loginKey.dropFirst(prefix.utf8.count + 1).dropLast()
        let text = String(decoding: id, as: UTF8.self)
        return run(RedisScripts.revoke, keys: [loginKey], [.bytes(invalidationChannel), .bytes(published(text))], on: eventLoop) { reply in
            guard let count = reply.integer else { throw StoreUnavailable("unexpected reply from the revoke script") }
            return count
        }
    }

    /// The subject's logins not yet forgotten.
    private func members(of subject: String, on eventLoop: any EventLoop) -> EventLoopFuture<[[UInt8]]> {
        let key = subjectKey(subject)
        return client.send(RedisCommand("ZRANGEBYSCORE", .bytes(key), .string("(\(clock.now())"), "+inf"), key: key, on: eventLoop).flatMapThrowing { reply in
            guard let members = reply.array else { throw StoreUnavailable("unexpected reply to ZRANGEBYSCORE") }
            return members.compactMap(\.bytes)
        }.failingAsUnavailable()
    }

    public func list(_ query: ListQuery, on eventLoop: any EventLoop) -> EventLoopFuture<ListPage> {
        let keys: EventLoopFuture<[[UInt8]]>
        if let subject = query.subject {
            keys = members(of: subject, on: eventLoop)
        } else {
            keys = scanLogins(on: eventLoop)
        }
        return keys.flatMap { loginKeys in
            let prefixLength = self.prefix.utf8.count + 1
            var sessionKeys = loginKeys.compactMap { key -> SessionKey? in
                guard key.count == prefixLength + 23 else { return nil }
                return SessionKey(String(decoding: key[prefixLength..<(prefixLength + 22)], as: UTF8.self))
            }
            if let after = query.after { sessionKeys = sessionKeys.filter { $0 > after } }
            // SCAN may return a key more than once.
            sessionKeys = Array(Set(sessionKeys)).sorted()
            let more = sessionKeys.count > max(1, query.limit)
            let limit = max(1, query.limit)
            let page = Array(sessionKeys.prefix(limit))
            let now = self.clock.now()
            let reads = page.map { key in
                self.client.send(RedisCommand("HGETALL", .bytes(self.loginKey(key))), key: self.loginKey(key), on: eventLoop).map { reply in
                    Self.record(reply).map { ListedLogin(key: key, record: $0, idleExpired: now >= $0.expiresAt) }
                }
            }
            return EventLoopFuture.whenAllSucceed(reads, on: eventLoop).map { logins in
                ListPage(logins: logins.compactMap { $0 }, next: more ? page.last : nil)
            }
        }.failingAsUnavailable()
    }

    /// Every login key, from SCAN on every master (admin listings only).
    private func scanLogins(on eventLoop: any EventLoop) -> EventLoopFuture<[[UInt8]]> {
        client.sendToMasters(RedisCommand("DBSIZE"), on: eventLoop).flatMap { masters in
            let scans = masters.map { address, _ in self.scan(address, cursor: "0", found: [], on: eventLoop) }
            return EventLoopFuture.whenAllSucceed(scans, on: eventLoop).map { $0.flatMap { $0 } }
        }
    }

    private func scan(_ address: RedisAddress, cursor: String, found: [[UInt8]], on eventLoop: any EventLoop) -> EventLoopFuture<[[UInt8]]> {
        let command = RedisCommand("SCAN", .string(cursor), "MATCH", .string("\(prefix){*}"), "TYPE", "hash", "COUNT", "1000")
        return client.send(command, to: address, on: eventLoop).flatMap { reply in
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let keys = parts[1].array else {
                return eventLoop.makeFailedFuture(StoreUnavailable("unexpected reply to SCAN"))
            }
            let found = found + keys.compactMap(\.bytes)
            return next == "0" ? eventLoop.makeSucceededFuture(found) : self.scan(address, cursor: next, found: found, on: eventLoop)
        }
    }

    /// A login from an HGETALL reply; nil when the reply is not one (a missing or foreign key).
    public static func record(_ reply: RESPValue) -> LoginRecord? {
        guard let items = reply.array, !items.isEmpty else { return nil }
        var fields: [String: [UInt8]] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let name = items[index].string, let value = items[index + 1].bytes { fields[name] = value }
        }
        func number(_ name: String) -> Int64? { fields[name].flatMap { Int64(String(decoding: $0, as: UTF8.self)) } }
        guard let kind = number("k").flatMap({ LoginKind(rawValue: UInt8(truncatingIfNeeded: $0)) }), let subject = fields["s"],
              let created = number("c"), let ttl = number("t"), let expires = number("e"), let maximum = number("m")
        else { return nil }
        return LoginRecord(kind: kind, subject: String(decoding: subject, as: UTF8.self),
                           fingerprint: fields["f"].flatMap { $0.count == 16 ? Digest128(prefixOf: $0) : nil },
                           createdAt: created, ttl: ttl, expiresAt: expires, maxExpiresAt: maximum, refreshTTL: number("r") ?? 0,
                           currentRefreshID: fields["n"].flatMap { SessionKey(bytes: $0) }, generation: number("g") ?? 0,
                           generationUsed: fields["u"] == [UInt8(ascii: "1")], revoked: fields["v"] == [UInt8(ascii: "1")])
    }

    /// Counting a shared store's logins would mean scanning it: `stats` reports its size and the
    /// client's health instead.
    public func statistics(on eventLoop: any EventLoop) -> EventLoopFuture<StoreStatistics> {
        let health = client.health
        let rows: [String: UInt64] = [
            "store_redis_healthy": health.healthy ? 1 : 0,
            "store_redis_cluster": health.mode == .cluster ? 1 : 0,
            "store_redis_commands": health.commands,
            "store_redis_failures": health.failures,
            "store_redis_redirections": health.redirections,
        ]
        return client.sendToMasters(RedisCommand("DBSIZE"), on: eventLoop).map { replies in
            var answered = rows
            answered["store_redis_masters"] = UInt64(replies.count)
            answered["store_redis_keys"] = UInt64(replies.reduce(0) { $0 + max(0, $1.1.integer ?? 0) })
            return StoreStatistics(extra: answered)
        }.recover { _ in
            var unanswered = rows
            unanswered["store_redis_healthy"] = 0
            return StoreStatistics(extra: unanswered)
        }
    }

    private static func values(_ reply: RESPValue) throws -> [RESPValue] {
        guard let values = reply.array, !values.isEmpty else { throw StoreUnavailable("unexpected reply from a script: \(reply)") }
        return values
    }
}

private extension EventLoopFuture {
    /// Any failure as `StoreUnavailable`: whatever went wrong with Redis, callers fail closed.
    func failingAsUnavailable() -> EventLoopFuture<Value> {
        flatMapErrorThrowing { throw $0 as? StoreUnavailable ?? StoreUnavailable("\($0)") }
    }
}
