import NIOCore
import TokenCrypto
import TokenJWT
import TokenProtocol
import TokenStore

extension TokenService {
    /// Header `typ` of each kind of token.
    enum TokenType {
        static let session = "JWT"
        static let access = "at+jwt"
        static let refresh = "rt+jwt"
    }

    func issue(_ request: IssueRequest, on eventLoop: any EventLoop) throws(ProtocolError) -> EventLoopFuture<Outcome> {
        let now = clock.now()
        let maxLifetime = try bounded(request.maxLifetime, configuration.maxLifetime, "max_lifetime")
        // Every override present is checked, whichever mode uses it.
        _ = try bounded(request.refreshTTL, configuration.refreshTTL, "refresh_ttl")
        _ = try bounded(request.ttl, request.mode == .session ? configuration.sessionIdle : configuration.accessTTL, "ttl")
        let maxExpiresAt = now + maxLifetime
        let extra = try extraClaims(request.claims)
        let key = SessionKey.random()
        let fingerprint = digester.fingerprint(request.fingerprint)
        let base = JWTClaims(issuer: configuration.issuer, subject: request.subject, audience: request.audience.map { [$0] },
                             issuedAt: now, sessionID: key.text, extra: extra)
        let record: LoginRecord
        let issued: IssuedTokens
        do {
            switch request.mode {
            case .session:
                let idle = try bounded(request.ttl, configuration.sessionIdle, "ttl")
                let idleExpiresAt = min(now + idle, maxExpiresAt)
                let token = try sign(base, expiration: maxExpiresAt, jwtID: .random(), type: TokenType.session)
                record = LoginRecord(kind: .session, subject: request.subject, fingerprint: fingerprint, createdAt: now, ttl: idle,
                                     expiresAt: idleExpiresAt, maxExpiresAt: maxExpiresAt)
                issued = IssuedTokens(key: key, kind: .session, token: token, refreshToken: nil, expiresAt: idleExpiresAt,
                                      refreshExpiresAt: nil, maxExpiresAt: maxExpiresAt)
            case .pair:
                let accessTTL = try bounded(request.ttl, configuration.accessTTL, "ttl")
                let refreshTTL = try bounded(request.refreshTTL, configuration.refreshTTL, "refresh_ttl")
                let refreshID = SessionKey.random()
                let pair = try signPair(base, now: now, accessTTL: accessTTL, refreshTTL: refreshTTL, refreshID: refreshID, generation: 0,
                                        maxExpiresAt: maxExpiresAt, key: key)
                record = LoginRecord(kind: .family, subject: request.subject, fingerprint: fingerprint, createdAt: now, ttl: accessTTL,
                                     expiresAt: pair.refreshExpiresAt!, maxExpiresAt: maxExpiresAt, refreshTTL: refreshTTL,
                                     currentRefreshID: refreshID)
                issued = pair
            }
        } catch let error as ProtocolError {
            throw error
        } catch {
            logger.error("signing failed", metadata: ["error": "\(error)"])
            throw ProtocolError(.internalError, "signing failed")
        }
        // A token no request could carry back would be useless to its holder.
        for token in [issued.token, issued.refreshToken].compactMap({ $0 }) where token.utf8.count > FieldLimits.token {
            throw .badRequest("the claims make a token of \(token.utf8.count) bytes, over the \(FieldLimits.token)-byte limit on tokens")
        }
        var login = NewLogin(key: key, record: record)
        var sealKey: [UInt8] = []
        if let idempotencyKey = request.idempotencyKey {
            let parts = [Array(request.subject.utf8), idempotencyKey]
            sealKey = digester.sealKey("tokend.idempotency-seal.v1", parts)
            let requestDigest = digester.digest("tokend.issue-request.v1", [
                // Absent and empty differ: a presence byte before each optional text.
                [request.mode.rawValue], request.fingerprint,
                request.audience.map { [1] + Array($0.utf8) } ?? [0], request.claims.map { [1] + Array($0.utf8) } ?? [0],
                Array("\(request.ttl ?? 0)/\(request.refreshTTL ?? 0)/\(request.maxLifetime ?? 0)".utf8),
            ])
            do {
                login.idempotency = .init(key: digester.digest("tokend.idempotency.v1", parts), requestDigest: requestDigest,
                                          sealed: try issued.sealed(with: sealKey))
            } catch {
                throw ProtocolError(.internalError, "sealing failed")
            }
        }
        return store.create(login, on: eventLoop).flatMap { [sealKey] outcome in
            switch outcome {
            case .created:
                self.logger.debug("issued", metadata: ["session.id": "\(key)", "session.mode": "\(request.mode.name)"])
                return eventLoop.makeSucceededFuture(.issued(Self.result(issued)))
            case .existing(let sealed):
                self.metrics.dedupHits.increment()
                guard let earlier = try? IssuedTokens(sealed: sealed, key: sealKey) else {
                    return eventLoop.makeSucceededFuture(.refused(.internalError("the earlier result could not be read back")))
                }
                // Never hand back a revoked login's tokens as if they were live.
                return self.store.list(ListQuery(subject: request.subject, limit: .max), on: eventLoop).map { page in
                    let revoked = page.logins.contains { $0.key == earlier.key && $0.record.revoked }
                    return revoked ? .refused(.idempotentLoginRevoked) : .issued(Self.result(earlier))
                }
            case .conflict:
                return eventLoop.makeSucceededFuture(.refused(.idempotencyConflict))
            }
        }
    }

    /// A TTL override: absent means the configured value; otherwise 1...configured.
    func bounded(_ value: UInt64?, _ configured: Int64, _ name: String) throws(ProtocolError) -> Int64 {
        guard let value else { return configured }
        guard value >= 1, value <= UInt64(configured) else {
            throw .badRequest("\(name) must be between 1 and \(configured) seconds")
        }
        return Int64(value)
    }

    /// The most members an object of the caller's claims may have: with the registered claims
    /// added, a token's claims stay within what a verifier accepts.
    static let maximumExtraClaimMembers = 1000

    /// The caller's extra claims: a strict JSON object without registered names.
    func extraClaims(_ json: String?) throws(ProtocolError) -> [JSONObject.Member] {
        guard let json else { return [] }
        let object: JSONObject
        do {
            object = try StrictJSONParser(maximumMembers: Self.maximumExtraClaimMembers).parseObject(Array(json.utf8))
        } catch {
            throw .badRequest("claims must be a JSON object: \(error)")
        }
        for member in object.members where JWTClaims.registeredNames.contains(member.name) {
            throw .badRequest("claims may not set the registered claim \"\(member.name)\"")
        }
        return object.members
    }

    func sign(_ base: JWTClaims, expiration: Int64, jwtID: SessionKey, type: String) throws -> String {
        var claims = base
        claims.expiration = expiration
        claims.jwtID = jwtID.text
        metrics.tokensSigned.increment()
        return try JWTSigner.sign(claims, with: keys.signingKey, type: type)
    }

    /// An access + refresh pair of `generation` for family `key`, both capped at the maximum
    /// lifetime.
    func signPair(_ base: JWTClaims, now: Int64, accessTTL: Int64, refreshTTL: Int64, refreshID: SessionKey, generation: Int64,
                  maxExpiresAt: Int64, key: SessionKey) throws -> IssuedTokens {
        var base = base
        base.issuedAt = now
        base.generation = generation
        let accessExpiresAt = min(now + accessTTL, maxExpiresAt)
        let refreshExpiresAt = min(now + refreshTTL, maxExpiresAt)
        let access = try sign(base, expiration: accessExpiresAt, jwtID: .random(), type: TokenType.access)
        let refresh = try sign(base, expiration: refreshExpiresAt, jwtID: refreshID, type: TokenType.refresh)
        return IssuedTokens(key: key, kind: .family, token: access, refreshToken: refresh, expiresAt: accessExpiresAt,
                            refreshExpiresAt: refreshExpiresAt, maxExpiresAt: maxExpiresAt)
    }

    static func result(_ issued: IssuedTokens) -> IssueResult {
        switch issued.kind {
        case .session:
            IssueResult(mode: .session, sessionID: issued.key.text, sessionToken: issued.token, expiresAt: UInt64(issued.expiresAt),
                        maxExpiresAt: UInt64(issued.maxExpiresAt))
        case .family:
            IssueResult(mode: .pair, sessionID: issued.key.text, accessToken: issued.token, refreshToken: issued.refreshToken,
                        expiresAt: UInt64(issued.expiresAt), refreshExpiresAt: issued.refreshExpiresAt.map(UInt64.init),
                        maxExpiresAt: UInt64(issued.maxExpiresAt))
        }
    }
}
