import NIOCore
import TokenJWT
import TokenProtocol
import TokenStore

extension TokenService {
    /// A token that verified against our keys, with the ids tokend puts in every token.
    struct Presented: Sendable {
        let jwt: VerifiedJWT
        let key: SessionKey
        let subject: String
        let expiration: Int64
        /// The complete claims set as JSON, for verify replies.
        let claimsJSON: String
        /// Which of tokend's tokens it is, by its `typ` (compared without regard to case), read
        /// once when the token is first verified.
        let kind: Kind
        /// A pair's generation (`tokend_gen`), absent from tokens issued before generations.
        var generation: Int64? { jwt.claims.generation }

        enum Kind: Sendable {
            case session, access, refresh, other
        }

        /// Whether the token's own `exp` has passed at `now`, `leeway` seconds of clock skew allowed.
        func hasExpired(at now: Int64, leeway: Int64) -> Bool {
            now >= expiration + leeway
        }

        /// Whether the token's `sub` is `subject`, compared as UTF-8 bytes (never as Swift
        /// strings, which equate canonically equivalent text: "K" and the Kelvin sign).
        func names(subject stored: String) -> Bool {
            subject.utf8.elementsEqual(stored.utf8)
        }

        static func kind(of type: String?) -> Kind {
            switch (type ?? "").lowercased() {
            case TokenType.session.lowercased(): .session
            case TokenType.access: .access
            case TokenType.refresh: .refresh
            default: .other
            }
        }
    }

    /// Signature, shape and tokend's own claims; time is judged by the caller, who knows
    /// which kind of expiry to report. Tokens seen before come from the verified-token cache.
    func authenticate(_ token: String) -> Result<Presented, Refusal> {
        authenticate(VerifiedTokenCache.key(token)) { token }
    }

    /// `authenticate` for a token still in the request's bytes: one seen before is found by
    /// their digest, and never made a `String`.
    func authenticate(_ token: TokenBytes) -> Result<Presented, Refusal> {
        authenticate(token.withUnsafeReadableBytes(VerifiedTokenCache.key)) { token.string }
    }

    private func authenticate(_ key: Digest128, _ token: () -> String) -> Result<Presented, Refusal> {
        let now = clock.now()
        let (verifier, generation) = keys.current
        if let cached = cache.lookup(key, now: now, generation: generation) { return .success(cached.presented) }
        let result = authenticateUncached(token(), verifier: verifier)
        // Refresh tokens are spent by their one use, and expired ones are refused anyway:
        // caching either would only take room.
        if case .success(let presented) = result, presented.kind != .refresh, now < presented.expiration {
            cache.insert(key, VerifiedTokenCache.Entry(presented: presented, claimsJSON: presented.claimsJSON, generation: generation))
        }
        return result
    }

    private func authenticateUncached(_ token: String, verifier: JWTVerifier) -> Result<Presented, Refusal> {
        let jwt: VerifiedJWT
        do {
            jwt = try verifier.verifyIgnoringTime(token)
        } catch {
            return .failure(.token(error))
        }
        guard let sid = jwt.claims.sessionID, let key = SessionKey(sid), let subject = jwt.claims.subject,
              let expiration = jwt.claims.expiration
        else { return .failure(.lacksTokendClaims) }
        return .success(Presented(jwt: jwt, key: key, subject: subject, expiration: expiration, claimsJSON: jwt.claims.json,
                                   kind: Presented.kind(of: jwt.header.type)))
    }

    /// `verify` (renewing below the threshold) and `renew` (`explicit`: an unconditional touch).
    /// `grantsCache`: the answer may say until when it can be reused (`cacheable_until`).
    func verify(_ request: VerifyRequest, explicit: Bool, grantsCache: Bool, on eventLoop: any EventLoop) -> Answer {
        let presented: Presented
        switch authenticate(request.token) {
        case .success(let value): presented = value
        case .failure(let refusal): return .ready(.refused(refusal))
        }
        let now = clock.now()
        let fingerprint = digester.fingerprint(request.fingerprint)
        switch presented.kind {
        case .session:
            // A session token's exp is the end of the login's maximum lifetime.
            guard !presented.hasExpired(at: now, leeway: configuration.leeway) else {
                return .ready(.refused(.sessionMaxLifetime))
            }
            // Spelled out rather than `map`ped: a closure would be allocated even for an answer
            // that is ready, which is nearly every one.
            switch store.touchSessionAnswer(presented.key, fingerprint: fingerprint, subject: presented.subject, explicit: explicit, on: eventLoop) {
            case .ready(let outcome): return .ready(sessionVerified(outcome, presented, grantsCache: grantsCache))
            case .failed(let error): return .failed(error)
            case .pending(let future): return .pending(future.map { self.sessionVerified($0, presented, grantsCache: grantsCache) })
            }
        case .access:
            guard !explicit else {
                return .ready(.refused(.renewOfPair))
            }
            guard !presented.hasExpired(at: now, leeway: configuration.leeway) else {
                if !explicit, let refreshToken = request.refreshToken {
                    return .pending(verifyByRefreshing(presented, refreshToken: refreshToken, fingerprint: request.fingerprint, on: eventLoop))
                }
                return .ready(.refused(.accessTokenExpired))
            }
            switch store.checkFamilyAnswer(presented.key, fingerprint: fingerprint, generation: presented.generation, on: eventLoop) {
            case .ready(let outcome): return .ready(accessVerified(outcome, presented, grantsCache: grantsCache))
            case .failed(let error): return .failed(error)
            case .pending(let future): return .pending(future.map { self.accessVerified($0, presented, grantsCache: grantsCache) })
            }
        case .refresh:
            return .ready(.refused(.refreshTokenOutsideRefresh))
        case .other:
            return .ready(.refused(.foreignTokenType))
        }
    }

    /// A sliding session's verify, once the store has looked at its session.
    private func sessionVerified(_ outcome: SessionOutcome, _ presented: Presented, grantsCache: Bool) -> Outcome {
        logger.trace("verified a session token", metadata: ["session.id": "\(presented.key)", "outcome": "\(outcome.name)"])
        switch outcome {
        case .active(let info, let renewed):
            // From `expires_at - renew_below` on, a verify renews: it must reach the daemon.
            let quietUntil = min(info.expiresAt - configuration.renewBelow, info.maxExpiresAt, presented.expiration)
            return .verified(VerifyResult(mode: .session, subject: info.subject, sessionID: presented.key.text, claimsJSON: presented.claimsJSON,
                                          expiresAt: UInt64(info.expiresAt), tokenExpiresAt: UInt64(presented.expiration), renewed: renewed,
                                          cacheableUntil: grantsCache ? cacheable(until: quietUntil) : nil))
        case let other: return .refused(Refusal(other))
        }
    }

    /// An access token's verify, once the store has looked at its family.
    private func accessVerified(_ outcome: FamilyOutcome, _ presented: Presented, grantsCache: Bool) -> Outcome {
        logger.trace("verified an access token", metadata: ["session.id": "\(presented.key)", "outcome": "\(outcome.name)"])
        switch outcome {
        case .active(let record):
            guard presented.names(subject: record.subject) else { return .refused(.loginMismatch) }
            var result = Self.verifyResult(presented)
            if grantsCache { result.cacheableUntil = cacheable(until: min(presented.expiration, record.maxExpiresAt)) }
            return .verified(result)
        case let other: return .refused(Refusal(other))
        }
    }

    /// `cacheable_until` for an answer that stays the same until `time`: absent unless that is
    /// after the current second.
    private func cacheable(until time: Int64) -> UInt64? {
        time > clock.now() ? UInt64(time) : nil
    }

    /// An access token's verify result: its own expiry is the pair's.
    static func verifyResult(_ access: Presented) -> VerifyResult {
        VerifyResult(mode: .pair, subject: access.subject, sessionID: access.key.text, claimsJSON: access.claimsJSON,
                     expiresAt: UInt64(access.expiration), tokenExpiresAt: UInt64(access.expiration), renewed: false)
    }

    func refresh(_ request: TokenRequest, on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        let presented: Presented
        switch authenticate(request.token) {
        case .success(let value): presented = value
        case .failure(let refusal): return eventLoop.makeSucceededFuture(.refused(refusal))
        }
        return rotate(presented, token: request.token, fingerprint: request.fingerprint, on: eventLoop).map { rotated in
            switch rotated {
            case .success(let pair): .issued(Self.result(pair))
            case .failure(let refusal): .refused(refusal)
            }
        }
    }

    /// What a rotation came to: the new pair (or the one a repeat gets again), or the refusal.
    typealias Rotated = Result<IssuedTokens, Refusal>

    /// Spends a refresh token for a new pair: `refresh`, and verify-or-refresh.
    func rotate(_ presented: Presented, token: String, fingerprint presentedFingerprint: [UInt8], on eventLoop: any EventLoop) -> EventLoopFuture<Rotated> {
        guard presented.kind == .refresh else {
            return eventLoop.makeSucceededFuture(.failure(.refreshWithoutRefreshToken))
        }
        guard let refreshID = presented.jwt.claims.jwtID.flatMap(SessionKey.init) else {
            return eventLoop.makeSucceededFuture(.failure(.refreshTokenWithoutID))
        }
        let now = clock.now()
        let fingerprint = digester.fingerprint(presentedFingerprint)
        let presentedDigest = digester.refreshToken(token)
        // Only a caller presenting this same refresh token can derive the key that opens the
        // pair kept for repeats.
        let sealKey = digester.sealKey("tokend.refresh-seal.v1", [Array(token.utf8)])
        let presentedRefresh = PresentedRefresh(id: refreshID, digest: presentedDigest, generation: presented.generation)
        // The family first: a revoked or finished login says so even when the token has also
        // expired. A repeat (within the dedup window, or a lost-response retry within the
        // grace) gets its pair back here, signing nothing.
        let expired = presented.hasExpired(at: now, leeway: configuration.leeway)
        return store.prepareRotation(presented.key, presented: presentedRefresh, fingerprint: fingerprint, on: eventLoop).flatMap { check in
            let record: LoginRecord
            switch check {
            case .repeated(let sealed):
                // The very token whose rotation this repeats (same bytes): its subject was checked
                // then; its expiry is checked as for any rotation.
                return eventLoop.makeSucceededFuture(expired ? .failure(.refreshTokenExpired) : self.repeated(sealed, key: sealKey))
            case .family(.active(let active)):
                record = active
            case .family(let outcome):
                return eventLoop.makeSucceededFuture(.failure(Refusal(outcome)))
            }
            // The new pair copies the presented token's claims: they must be the login's own.
            guard presented.names(subject: record.subject) else { return eventLoop.makeSucceededFuture(.failure(.loginMismatch)) }
            guard !expired else { return eventLoop.makeSucceededFuture(.failure(.refreshTokenExpired)) }
            var base = presented.jwt.claims
            base.issuer = self.configuration.issuer
            let newRefreshID = SessionKey.random()
            let candidate: IssuedTokens
            let sealed: [UInt8]
            do {
                // The family's next generation: the rotation succeeds only while the presented
                // token is its current one, so while its generation is still `record`'s.
                candidate = try self.signPair(base, now: now, accessTTL: record.ttl, refreshTTL: record.refreshTTL, refreshID: newRefreshID,
                                              generation: record.generation + 1, maxExpiresAt: record.maxExpiresAt, key: presented.key)
                sealed = try candidate.sealed(with: sealKey)
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
            let rotation = Rotation(family: presented.key, presented: presentedRefresh, fingerprint: fingerprint, newRefreshID: newRefreshID,
                                    newRefreshExpiresAt: candidate.refreshExpiresAt!, sealedCandidate: sealed)
            return self.store.rotate(rotation, on: eventLoop).flatMap { outcome -> EventLoopFuture<Rotated> in
                self.logger.trace("refresh", metadata: ["session.id": "\(presented.key)", "outcome": "\(outcome.name)"])
                switch outcome {
                case .rotated:
                    return eventLoop.makeSucceededFuture(.success(candidate))
                case .deduplicated(let sealed):
                    // A repeat that raced the rotation it repeats: the pair signed for it is
                    // dropped unused.
                    return eventLoop.makeSucceededFuture(self.repeated(sealed, key: sealKey))
                case .reuseDetected:
                    self.metrics.reuseDetected.increment()
                    self.logger.warning("refresh token reuse detected; family revoked", metadata: ["session.id": "\(presented.key)"])
                    // The family is revoked: near caches hear of it before anyone hears this answer.
                    return self.invalidations.push(.session(presented.key.text), on: eventLoop).map { .failure(.reuseDetected) }
                default:
                    return eventLoop.makeSucceededFuture(.failure(Refusal(outcome)))
                }
            }
        }
    }

    /// The pair a repeat gets again.
    private func repeated(_ sealed: [UInt8], key: [UInt8]) -> Rotated {
        metrics.dedupHits.increment()
        guard let pair = try? IssuedTokens(sealed: sealed, key: key) else {
            return .failure(.internalError("the earlier rotation could not be read back"))
        }
        return .success(pair)
    }

    /// verify-or-refresh: the access token expired, and nothing else was wrong with it; the
    /// refresh token of its pair is rotated as `refresh` would, and the reply is the verify of
    /// the new access token with the new pair (`refreshed`).
    func verifyByRefreshing(_ access: Presented, refreshToken: String, fingerprint: [UInt8], on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        let refresh: Presented
        switch authenticate(refreshToken) {
        case .success(let value): refresh = value
        case .failure(let refusal): return eventLoop.makeSucceededFuture(.refused(refusal))
        }
        guard refresh.kind == .refresh, refresh.key == access.key else {
            return eventLoop.makeSucceededFuture(.refused(.notThePairsRefreshToken))
        }
        return rotate(refresh, token: refreshToken, fingerprint: fingerprint, on: eventLoop).map { rotated in
            switch rotated {
            case .failure(let refusal):
                return .refused(refusal)
            case .success(let pair):
                guard case .success(let new) = self.authenticate(pair.token) else {
                    return .refused(.internalError("the new access token does not verify"))
                }
                return .refreshed(RefreshedResult(verify: Self.verifyResult(new), pair: Self.result(pair)))
            }
        }
    }
}

/// A token as the request carried it: UTF-8 without NUL (checked), not yet a `String`.
struct TokenBytes {
    private let buffer: ByteBuffer

    /// Checks what `Fields.string` checks, without making a string of the (ASCII) token.
    init(_ buffer: ByteBuffer, tag: FieldTag) throws(ProtocolError) {
        let ascii = buffer.withUnsafeReadableBytes { bytes in bytes.allSatisfy { $0 != 0 && $0 < 0x80 } }
        if !ascii {
            let view = buffer.readableBytesView
            guard !view.contains(0), String(validating: view, as: UTF8.self) != nil else {
                throw .badRequest("field \(tag.rawValue) is not valid UTF-8 text")
            }
        }
        self.buffer = buffer
    }

    func withUnsafeReadableBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { buffer.withUnsafeReadableBytes(body) }

    var string: String { String(decoding: buffer.readableBytesView, as: UTF8.self) }
}

/// A `verify` or `renew`: `TokenRequest`'s fields, with the token left in the request's bytes.
struct VerifyRequest {
    var token: TokenBytes
    var fingerprint: [UInt8]
    var refreshToken: String?

    /// The checks and their order are `TokenRequest(fields:)`'s.
    init(fields: Fields) throws(ProtocolError) {
        guard let token = try fields.value(.token) else { throw .badRequest("missing field token (\(FieldTag.token.rawValue))") }
        guard token.readableBytes <= FieldLimits.token else {
            throw .badRequest("field \(FieldTag.token.rawValue) is longer than \(FieldLimits.token) bytes")
        }
        self.token = try TokenBytes(token, tag: .token)
        fingerprint = try fields.bytes(.fingerprint, maximumLength: FieldLimits.fingerprint) ?? []
        refreshToken = try fields.string(.refreshToken, maximumLength: FieldLimits.token)
    }

    /// A verify made from another face's input (HTTP headers), checked as the wire's would be.
    init(token: String, fingerprint: [UInt8], refreshToken: String?) throws(ProtocolError) {
        try self.init(fields: TokenRequest(token: token, fingerprint: fingerprint, refreshToken: refreshToken).fields)
    }
}

// Outcome names for trace logs: never the records themselves (subjects, digests, sealed pairs).
extension SessionOutcome {
    var name: String {
        switch self {
        case .active(_, let renewed): renewed ? "renewed" : "active"
        case .idleExpired: "idle_expired"
        case .revoked: "revoked"
        case .maxLifetimeReached: "max_lifetime_reached"
        case .unknown: "unknown"
        case .fingerprintMismatch: "fingerprint_mismatch"
        case .subjectMismatch: "subject_mismatch"
        case .wrongKind: "wrong_kind"
        }
    }
}

extension FamilyOutcome {
    var name: String {
        switch self {
        case .active: "active"
        case .revoked: "revoked"
        case .maxLifetimeReached: "max_lifetime_reached"
        case .unknown: "unknown"
        case .fingerprintMismatch: "fingerprint_mismatch"
        case .wrongKind: "wrong_kind"
        }
    }
}

extension RotationOutcome {
    var name: String {
        switch self {
        case .rotated: "rotated"
        case .deduplicated: "deduplicated"
        case .reuseDetected: "reuse_detected"
        case .revoked: "revoked"
        case .maxLifetimeReached: "max_lifetime_reached"
        case .unknown: "unknown"
        case .fingerprintMismatch: "fingerprint_mismatch"
        }
    }
}
