import Logging
import Foundation
import NIOCore
import TokenProtocol
import TokenStore

extension TokenService {
    func revoke(_ target: RevokeRequest, on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        let storeTarget: RevokeTarget
        switch target {
        case .token(let token):
            switch authenticate(token) {
            case .success(let presented): storeTarget = .login(presented.key)
            case .failure(let refusal): return eventLoop.makeSucceededFuture(.refused(refusal))
            }
        case .session(let text):
            guard let key = SessionKey(text) else {
                return eventLoop.makeSucceededFuture(.refused(.noSuchSession))
            }
            storeTarget = .login(key)
        case .subject(let subject):
            storeTarget = .subject(subject)
        }
        return store.revoke(storeTarget, on: eventLoop).flatMap { count in
            guard let count else { return eventLoop.makeSucceededFuture(.refused(.noSuchSession)) }
            // The login by its session id (never a token); a subject is caller data and stays out.
            var metadata: Logger.Metadata = ["revoke.count": "\(count)"]
            if case .login(let key) = storeTarget { metadata["session.id"] = "\(key)" }
            self.logger.info("revoked", metadata: metadata)
            // Near caches drop the login before the revoke is acknowledged (proto-spec 12.16).
            let invalidation: Invalidation = switch storeTarget {
            case .login(let key): .session(key.text)
            case .subject(let subject): .subject(subject)
            }
            return self.invalidations.push(invalidation, on: eventLoop).map { .revoked(count: count) }
        }
    }

    func stats(on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        store.statistics(on: eventLoop).map { store in
            let counts: [(String, Int?)] = [
                ("sessions_active", store.sessionsActive), ("families_active", store.familiesActive), ("revoked", store.revoked),
                ("dedup_entries", store.dedupEntries), ("records", store.records),
            ]
            var rows = counts.compactMap { name, value in value.map { (name, UInt64($0)) } }
            rows += store.extra.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            rows.append(("keys", UInt64(self.keys.entries.count)))
            let tracking = self.invalidations.statistics
            rows += [("tracking_connections", UInt64(tracking.tracking)), ("invalidations_pushed", tracking.pushed),
                     ("invalidation_flushes", tracking.flushes)]
            let cache = self.cache.statistics
            rows += [("cache_entries", UInt64(cache.entries)), ("cache_hits", cache.hits), ("cache_misses", cache.misses)]
            rows += self.statistics.snapshot(now: self.clock.now())
            return .statistics(rows.map { Statistic(name: $0.0, value: $0.1) })
        }
    }

    static let defaultPageSize: UInt64 = 100
    static let maximumPageSize: UInt64 = 1000

    func sessions(_ request: SessionsRequest, on eventLoop: any EventLoop) throws(ProtocolError) -> EventLoopFuture<Outcome> {
        if let subject = request.subject {
            // One subject's sessions come in one reply; cursor and limit do not apply.
            return list(ListQuery(subject: subject, limit: .max), on: eventLoop)
        }
        let limit = request.limit ?? Self.defaultPageSize
        guard limit >= 1, limit <= Self.maximumPageSize else { throw .badRequest("limit must be between 1 and \(Self.maximumPageSize)") }
        var after: SessionKey?
        if let cursor = request.cursor {
            guard let key = SessionKey(cursor) else { throw .badRequest("cursor is not one this daemon handed out") }
            after = key
        }
        return list(ListQuery(after: after, limit: Int(limit)), on: eventLoop)
    }

    private func list(_ query: ListQuery, on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        store.list(query, on: eventLoop).map { page in
            let sessions = page.logins.map { login in
                let state: SessionState = login.record.revoked ? .revoked : login.idleExpired ? .idleExpired : .active
                return SessionInfo(sessionID: login.key.text, subject: login.record.subject, mode: login.record.kind == .session ? .session : .pair,
                                   state: state, createdAt: UInt64(login.record.createdAt), expiresAt: UInt64(login.record.expiresAt),
                                   maxExpiresAt: UInt64(login.record.maxExpiresAt))
            }
            return .sessions(SessionPage(sessions: sessions, nextCursor: page.next?.text))
        }
    }

    func keysList() -> Outcome {
        .keys(keyInfo(keys.entries))
    }

    private func keyInfo(_ entries: [KeyDirectory.Entry]) -> [KeyInfo] {
        let signing = keys.signingKey.kid
        return entries.map { entry in
            KeyInfo(kid: entry.key.kid, algorithm: entry.key.algorithm.name, signing: entry.key.kid == signing, createdAt: UInt64(entry.createdAt))
        }
    }

    /// Reads the key directory again (`keys reload`, SIGHUP). A key may be gone: near caches
    /// drop everything before the reload is answered.
    func keysReload(on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        let outcome = keysReload()
        guard case .keys = outcome else { return eventLoop.makeSucceededFuture(outcome) }
        return invalidations.push(.flush, on: eventLoop).map { outcome }
    }

    private func keysReload() -> Outcome {
        do {
            let entries = try keys.reload(now: clock.now())
            logger.notice("keys reloaded", metadata: ["keys.count": "\(entries.count)", "key.kid": "\(keys.signingKey.kid)"])
            return .keys(keyInfo(entries))
        } catch {
            logger.error("key reload failed; keeping the keys in use", metadata: ["error": "\(error)"])
            return .refused(.internalError("key reload failed, the keys in use are kept: \(error)"))
        }
    }

    func keysJWKS() -> Outcome {
        do {
            return .jwks(try keys.jwks())
        } catch {
            logger.error("JWKS export failed", metadata: ["error": "\(error)"])
            return .refused(.internalError("could not export the public keys"))
        }
    }

    func keysRotate() -> Outcome {
        guard !sharedStore else { return .refused(.rotationNeedsSharedKeys) }
        do {
            let entry = try keys.rotate(algorithm: configuration.algorithm, now: clock.now())
            logger.notice("rotated signing key", metadata: ["key.kid": "\(entry.key.kid)", "key.alg": "\(entry.key.algorithm.name)"])
            return .keys(keyInfo([entry]))
        } catch {
            logger.error("key rotation failed", metadata: ["error": "\(error)"])
            return .refused(.internalError("key rotation failed: \(error)"))
        }
    }
}

extension TokenService {
    /// Writes a snapshot now and answers when it is durable.
    func snapshot(on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        guard let snapshots else {
            return eventLoop.makeSucceededFuture(.refused(.noSnapshotFiles))
        }
        let promise = eventLoop.makePromise(of: Outcome.self)
        promise.completeWithTask {
            guard let report = try await snapshots.writeNow() else {
                return .refused(.snapshotInProgress)
            }
            return .snapshotWritten(records: report.records,
                                    summary: "snapshot written: \(report.records) records, \(report.bytes) bytes in \(String(format: "%.3f", report.seconds)) s")
        }
        return promise.futureResult
    }
}
