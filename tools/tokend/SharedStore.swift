import Logging
import NIOConcurrencyHelpers
import NIOCore
import RedisClient
import TokenRedisStore
import TokenServer
import TokenStore

/// Where state lives: in this process (persisted to the state directory), or in Redis, shared
/// by every host's daemon.
enum StoreConfiguration: Sendable, Hashable {
    case embedded
    case redis(RedisEndpoint)

    /// Parses `embedded`, `redis://...`, `rediss://...` or `redis+unix://...`.
    init(_ text: String) throws(RedisEndpointError) {
        self = text == "embedded" ? .embedded : .redis(try RedisEndpoint(url: text))
    }

    /// A `rediss://` store.
    var usesTLS: Bool {
        if case .redis(let endpoint) = self { return endpoint.tls }
        return false
    }
}

/// The store settings, beside `TokendConfiguration` (which knows no particular shared store).
struct StoreSettings: Sendable {
    var store: StoreConfiguration = .embedded
    /// The Redis password (from a file or the environment, never a flag).
    var redisPassword: String?
    /// For a `rediss://` store: the CA, client certificate and name to verify.
    var redisTLS = RedisTLS()

    /// The backend the daemon is handed: the composition root's one choice.
    var factory: StateBackendFactory {
        switch store {
        case .embedded:
            return EmbeddedBackend.factory
        case .redis(let endpoint):
            let password = redisPassword
            let tls = redisTLS
            return StateBackendFactory(isShared: true) { context in
                let settings: RedisClient.Configuration
                do {
                    settings = try RedisClient.Configuration(endpoint: endpoint, password: password,
                                                             timeout: .milliseconds(context.configuration.storeTimeout), tls: tls)
                } catch {
                    throw ConfigurationError("\(error)")
                }
                context.logger.info("state in a shared Redis store", metadata: ["store.endpoint": "\(endpoint)"])
                return RedisBackend(RedisStore(configuration: settings, policy: context.policy, clock: context.clock, logger: context.logger),
                                    settings: settings, storeTimeout: context.configuration.storeTimeout, logger: context.logger)
            }
        }
    }
}

/// State in Redis, shared by every host's daemon.
final class RedisBackend: StateBackend {
    let redis: RedisStore
    private let settings: RedisClient.Configuration
    private let storeTimeout: Int64
    private let logger: Logger
    private let subscriber = NIOLockedValueBox<RedisSubscriber?>(nil)

    init(_ redis: RedisStore, settings: RedisClient.Configuration, storeTimeout: Int64, logger: Logger) {
        self.redis = redis
        self.settings = settings
        self.storeTimeout = storeTimeout
        self.logger = logger
    }

    /// Subscribes to the channel the revoke and rotate scripts publish to.
    func listen(on eventLoop: any EventLoop, _ heard: @escaping @Sendable (RemoteRevocation) -> Void) {
        let redis = redis
        let logger = logger
        let warned = NIOLockedValueBox(false)
        let listener = RedisSubscriber(configuration: settings, channel: redis.invalidationChannel, on: eventLoop) { event in
            switch event {
            case .listening:
                warned.withLockedValue { $0 = false }
                heard(.listening)
            case .deaf(let reason):
                // Once per outage: near caches get no answers until the subscription is back.
                if !warned.withLockedValue({ warned in defer { warned = true }; return warned }) {
                    logger.warning("""
                        cannot subscribe to the shared store's invalidations; near caches are granted nothing meanwhile \
                        (an ACL user needs +subscribe, +ping and the channel)
                        """, metadata: ["reason": "\(reason)"])
                }
                heard(.deaf(reason))
            case .message(let message):
                // Our own revocations were pushed to our clients before they were acknowledged.
                if let id = redis.revokedElsewhere(message) { heard(.session(id)) }
            }
        }
        subscriber.withLockedValue { $0 = listener }
        listener.start()
    }

    var store: any TokenStateStore { redis }
    var snapshots: SnapshotScheduler? { nil }

    /// A shared store must answer before the daemon says it is ready: a wrong address or
    /// password stops the start (systemd then reports it) instead of failing every request.
    /// Redis is given ten store timeouts (5 s by default, at least 2 s) to come up, as when both
    /// start at boot.
    func prepare(on eventLoop: any EventLoop) async throws {
        let patience = Duration.milliseconds(min(max(storeTimeout * 10, 2000), 30_000))
        let deadline = ContinuousClock.now + patience
        var lastError: any Error = StoreUnavailable("no answer")
        while ContinuousClock.now < deadline {
            do {
                try await redis.check(on: eventLoop).get()
                logger.info("the shared store answers")
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        throw ConfigurationError("the shared store did not answer within \(patience) (address, password, ACL, TLS?): \(lastError)")
    }

    func upkeep(on eventLoop: any EventLoop) -> [PeriodicTask] { [] }

    func shutdown() async {
        subscriber.withLockedValue { $0 }?.close()
        redis.close()
    }
}
