import Logging
import NIOConcurrencyHelpers
import NIOCore
import TokenJWT
import TokenProtocol
import TokenStore

/// tokend's operations: takes a parsed request and the peer's credentials, answers with a
/// response. Knows no sockets; the connection handler feeds it.
public final class TokenService: Sendable {
    public static let serverName = "tokend \(TokendVersion.current)"

    /// The `hello` reply: the daemon's version, limits and the settings clients see.
    func helloInfo(storeHealthy: Bool?) -> HelloInfo {
        HelloInfo(
            protocolVersion: ProtocolVersion.current,
            serverName: Self.serverName,
            maxFrameSize: configuration.maxFrameSize,
            settings: DaemonSettings(
                dedupWindowMilliseconds: UInt64(configuration.dedupWindowMilliseconds),
                idleTTL: UInt64(configuration.sessionIdle),
                renewBelow: UInt64(configuration.renewBelow),
                renewBy: UInt64(configuration.renewBy),
                accessTTL: UInt64(configuration.accessTTL),
                refreshTTL: UInt64(configuration.refreshTTL),
                maxLifetime: UInt64(configuration.maxLifetime),
                leeway: UInt64(configuration.leeway)
            ),
            storeHealthy: storeHealthy
        )
    }

    let configuration: TokendConfiguration
    let store: any TokenStateStore
    let keys: SigningKeys
    let digester: Digester
    /// Who may issue and administer; replaced by a configuration reload (SIGHUP).
    private let accessPolicy: NIOLockedValueBox<AccessPolicy>
    var access: AccessPolicy { accessPolicy.withLockedValue { $0 } }
    let clock: any TokenClock
    let statistics: ServerStatistics
    let logger: Logger
    let snapshots: SnapshotScheduler?
    let cache: VerifiedTokenCache
    let storeFailures = LogThrottle()
    let metrics: TokendMetrics
    /// Whether other daemons share the state (and so the key files).
    let sharedStore: Bool
    /// The tracking connections, told of every revocation before it is acknowledged.
    let invalidations: InvalidationHub
    /// With a shared store: whether revocations made by other daemons reach this one now. Near
    /// caches are granted answers only while they do.
    private let hearsOtherDaemons = NIOLockedValueBox(false)

    init(configuration: TokendConfiguration, store: any TokenStateStore, keys: SigningKeys, digester: Digester,
         clock: any TokenClock, logger: Logger, snapshots: SnapshotScheduler? = nil, metrics: TokendMetrics = TokendMetrics(),
         sharedStore: Bool = false) {
        self.sharedStore = sharedStore
        self.invalidations = InvalidationHub(logger: logger)
        self.snapshots = snapshots
        self.metrics = metrics
        self.cache = VerifiedTokenCache(capacity: configuration.verifiedTokenCacheSize)
        self.configuration = configuration
        self.store = store
        self.keys = keys
        self.digester = digester
        self.accessPolicy = NIOLockedValueBox(AccessPolicy(configuration: configuration))
        self.clock = clock
        self.statistics = ServerStatistics(startedAt: clock.now())
        self.logger = logger
    }

    /// Answers one request: at once when the answer needs no waiting (a verify or ping from
    /// memory), which costs no future and no callback; else with a future completed when the
    /// store has answered, on whichever thread that is.
    /// `tracking`: the request came on a tracking connection (`track`), whose verifies may be
    /// granted `cacheable_until`.
    public func respond(to request: Request, peer: PeerCredentials, tracking: Bool = false, on eventLoop: any EventLoop) -> Reply {
        let started = NIODeadline.now()
        let answer: Answer
        do throws(ProtocolError) {
            answer = try dispatch(request, peer: peer, tracking: tracking, on: eventLoop)
        } catch {
            answer = .ready(.refused(.request(error)))
        }
        switch settle(answer, request.opcode, started: started) {
        case .ready(let outcome): return .now(Response(opcode: request.opcode, id: request.id, outcome))
        case .failed: preconditionFailure("settle turns every failure into an outcome")
        case .pending(let future): return .later(future.map { Response(opcode: request.opcode, id: request.id, $0) })
        }
    }

    /// A response now, or a future one. Never a failure: every error becomes a status.
    public enum Reply: Sendable {
        case now(Response)
        case later(EventLoopFuture<Response>)
    }

    /// The future-returning form, for tests and callers off the hot path.
    public func handle(_ request: Request, peer: PeerCredentials, on eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        switch respond(to: request, peer: peer, on: eventLoop) {
        case .now(let response): eventLoop.makeSucceededFuture(response)
        case .later(let future): future
        }
    }

    /// `verify` with a typed answer, for the HTTP face: the socket's operation with the same
    /// checks, counted in the same statistics, answered at once when the store can. Never `.failed`.
    func verify(token: String, fingerprint: [UInt8], refreshToken: String?, on eventLoop: any EventLoop) -> Answer {
        let started = NIODeadline.now()
        let answer: Answer
        do throws(ProtocolError) {
            answer = verify(try VerifyRequest(token: token, fingerprint: fingerprint, refreshToken: refreshToken), explicit: false, grantsCache: false,
                            on: eventLoop)
        } catch {
            answer = .ready(.refused(.request(error)))
        }
        return settle(answer, .verify, started: started)
    }

    /// Turns failures into refusals and counts the outcome once it is known.
    private func settle(_ answer: Answer, _ opcode: Opcode, started: NIODeadline) -> Answer {
        switch answer {
        case .ready(let outcome):
            return .ready(record(opcode, outcome, started: started))
        case .failed(let error):
            return .ready(record(opcode, failure(error, opcode), started: started))
        case .pending(let future):
            return .pending(future.map { self.record(opcode, $0, started: started) }.recover { error in
                self.record(opcode, self.failure(error, opcode), started: started)
            })
        }
    }

    private func record(_ opcode: Opcode, _ outcome: Outcome, started: NIODeadline) -> Outcome {
        statistics.record(opcode, outcome.status)
        metrics.record(opcode, nanoseconds: (NIODeadline.now() - started).nanoseconds)
        return outcome
    }

    /// What an operation answers: at once, or once the store has (`StoreAnswer`).
    typealias Answer = StoreAnswer<Outcome>

    /// The reply to an operation that failed: `store_unavailable` (failing closed) or
    /// `internal_error`. The detail goes to the log only: peers never see the store's internals.
    private func failure(_ error: any Error, _ opcode: Opcode) -> Outcome {
        if let refusal = error as? Refusal { return .refused(refusal) }
        if let error = error as? StoreUnavailable {
            if let suppressed = storeFailures.admit() {
                logger.warning("state store unavailable; failing closed", metadata: ["error": "\(error)", "store.failures_suppressed": "\(suppressed)"])
            }
            return .refused(.storeUnavailable(error.reason))
        }
        logger.error("request failed", metadata: ["request.op": "\(opcode)", "error": "\(error)"])
        return .refused(.internalError("internal error"))
    }

    private func dispatch(_ request: Request, peer: PeerCredentials, tracking: Bool, on eventLoop: any EventLoop) throws(ProtocolError) -> Answer {
        func requireIssue() throws(ProtocolError) {
            guard access.mayIssue(peer) else {
                throw ProtocolError(.forbidden, "uid \(peer.uid) may not \(request.opcode.name); tokend's --issue-uids or --issue-gids grants it")
            }
        }
        func requireAdmin() throws(ProtocolError) {
            guard access.isAdmin(peer) else {
                throw ProtocolError(.forbidden, "uid \(peer.uid) may not \(request.opcode.name); tokend's --admin-uids or --admin-gids grants it")
            }
        }
        switch request.opcode {
        case .hello:
            _ = try HelloRequest(fields: request.fields)
            return .pending(store.health(on: eventLoop).map { .hello(self.helloInfo(storeHealthy: $0)) })
        case .ping:
            return store.healthAnswer(on: eventLoop).map { .pong(storeHealthy: $0) }
        case .issue:
            try requireIssue()
            return .pending(try issue(IssueRequest(fields: request.fields), on: eventLoop))
        case .verify:
            // With a shared store, a near cache is granted answers only while revocations
            // made by other daemons reach this one (proto-spec 12.16).
            return verify(try VerifyRequest(fields: request.fields), explicit: false,
                          grantsCache: tracking && (!sharedStore || hearsOtherDaemons.withLockedValue { $0 }), on: eventLoop)
        case .renew:
            return verify(try VerifyRequest(fields: request.fields), explicit: true, grantsCache: false,
                          on: eventLoop)
        case .refresh:
            return .pending(refresh(try TokenRequest(fields: request.fields), on: eventLoop))
        case .revoke:
            let target = try RevokeRequest(fields: request.fields)
            if case .token = target {} else { try requireIssue() }
            return .pending(revoke(target, on: eventLoop))
        case .track:
            // The connection registered itself with `invalidations` before it asked.
            return .ready(.tracking)
        case .stats:
            try requireAdmin()
            return .pending(stats(on: eventLoop))
        case .sessions:
            try requireAdmin()
            return .pending(try sessions(SessionsRequest(fields: request.fields), on: eventLoop))
        case .keysList:
            try requireAdmin()
            return .ready(keysList())
        case .keysJWKS:
            return .ready(keysJWKS())
        case .keysRotate:
            try requireAdmin()
            return .ready(keysRotate())
        case .snapshot:
            try requireAdmin()
            return .pending(snapshot(on: eventLoop))
        case .keysReload:
            try requireAdmin()
            return .pending(keysReload(on: eventLoop))
        case .metrics:
            try requireAdmin()
            return .pending(metricsText(on: eventLoop).map { .metrics($0) })
        default:
            throw ProtocolError(.unknownOperation, "unknown operation \(request.opcode.rawValue)")
        }
    }
}

extension TokenService {
    /// Every metric in the Prometheus text format (`metrics`, `--metrics-listen`).
    public func metricsText(on eventLoop: any EventLoop) -> EventLoopFuture<String> {
        store.statistics(on: eventLoop).map { store in
            let now = self.clock.now()
            let server = Dictionary(self.statistics.snapshot(now: now), uniquingKeysWith: { $1 })
            return self.metrics.render(TokendMetrics.Reading(store: store, server: server, responses: self.statistics.responses,
                                                             cache: self.cache.statistics, keys: self.keys.entries.count,
                                                             tracking: self.invalidations.statistics,
                                                             snapshot: self.snapshots?.lastSnapshot, now: now))
        }
    }
}

extension TokenService {
    /// A shared store's word on revocations made by other daemons: each goes to this daemon's
    /// tracking connections; while they may go unheard, near caches are flushed and granted
    /// nothing.
    func heard(_ event: RemoteRevocation, on eventLoop: any EventLoop) {
        switch event {
        case .session(let id):
            _ = invalidations.push(.session(id), on: eventLoop)
        case .listening:
            if !hearsOtherDaemons.withLockedValue({ hears in defer { hears = true }; return hears }) {
                logger.notice("hearing revocations made by other daemons; near caches may keep answers again")
            }
        case .deaf(let reason):
            // Stop granting first, then flush: an answer granted before the flush is dropped by
            // it, and none is granted after.
            if hearsOtherDaemons.withLockedValue({ hears in defer { hears = false }; return hears }) {
                logger.warning("not hearing revocations made by other daemons; near caches are flushed and granted nothing until it is back",
                               metadata: ["reason": "\(reason)"])
                _ = invalidations.push(.flush, on: eventLoop)
            } else {
                logger.debug("not hearing revocations made by other daemons", metadata: ["reason": "\(reason)"])
            }
        }
    }

    /// Applies what a configuration reload may change while serving: the access lists.
    func reconfigure(_ configuration: TokendConfiguration) {
        accessPolicy.withLockedValue { $0 = AccessPolicy(configuration: configuration) }
    }
}

extension Response {
    /// The one place an outcome becomes a reply on the wire.
    init(opcode: Opcode, id: UInt32, _ outcome: Outcome) {
        self.init(opcode: opcode, id: id, status: outcome.status, fields: outcome.fields)
    }
}
