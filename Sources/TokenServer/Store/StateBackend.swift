import Logging
import NIOCore
import TokenStore

/// Where the daemon's state lives, with what that place needs around the operations: a check
/// before serving, upkeep while serving, and an orderly end. The daemon knows only this; the
/// executable (the composition root) picks the backend, so that this module depends on no
/// particular shared store.
public protocol StateBackend: Sendable {
    /// The operations' view of the state.
    var store: any TokenStateStore { get }
    /// The snapshot scheduler of a store that writes snapshots.
    var snapshots: SnapshotScheduler? { get }
    /// Before the socket opens: a shared store must answer; a repaired one is made durable.
    func prepare(on eventLoop: any EventLoop) async throws
    /// Upkeep while serving (expiry, snapshots), on `eventLoop`: services of the daemon's group.
    func upkeep(on eventLoop: any EventLoop) -> [PeriodicTask]
    /// After the last connection has closed.
    func shutdown() async
    /// A shared store: starts telling `heard` of the logins other daemons revoke, and of
    /// whether it is listening (while it is not, revocations made elsewhere go unheard). A
    /// store no one else changes never calls it.
    func listen(on eventLoop: any EventLoop, _ heard: @escaping @Sendable (RemoteRevocation) -> Void)
}

extension StateBackend {
    public func listen(on eventLoop: any EventLoop, _ heard: @escaping @Sendable (RemoteRevocation) -> Void) {}
}

/// What a shared store says about revocations made by other daemons.
public enum RemoteRevocation: Sendable, Hashable {
    /// From now on every revocation made elsewhere is heard.
    case listening
    /// Revocations made elsewhere may go unheard (the reason is for the log).
    case deaf(String)
    /// A daemon revoked this login (by token, session, subject or reuse detection).
    case session(String)
}

/// What a backend is built from.
public struct StateBackendContext: Sendable {
    public let configuration: TokendConfiguration
    public let policy: RenewalPolicy
    public let clock: any TokenClock
    public let metrics: TokendMetrics
    public let logger: Logger
}

/// Makes the backend once the state directory is locked and the keys are loaded.
public struct StateBackendFactory: Sendable {
    /// Whether the backend shares its state with other daemons (and so the key files): known
    /// before it is made, since it decides whether a missing key directory may be created.
    public let isShared: Bool
    public let make: @Sendable (StateBackendContext) throws -> any StateBackend

    public init(isShared: Bool, make: @escaping @Sendable (StateBackendContext) throws -> any StateBackend) {
        self.isShared = isShared
        self.make = make
    }
}

/// State in this process, persisted to the state directory (snapshot and journal).
public final class EmbeddedBackend: StateBackend {
    public let embedded: EmbeddedStore
    private let scheduler: SnapshotScheduler
    private let repair: Bool

    public var store: any TokenStateStore { embedded }
    public var snapshots: SnapshotScheduler? { scheduler }

    public init(_ context: StateBackendContext) throws {
        let configuration = context.configuration
        let persistence = EmbeddedStore.Persistence(directory: configuration.stateDirectory, fsync: configuration.fsync, repair: configuration.repair,
                                                    syncObserver: context.metrics.journalSynced)
        do {
            embedded = try EmbeddedStore(policy: context.policy, clock: context.clock, persistence: persistence, logger: context.logger)
        } catch let error as PersistenceError {
            throw ConfigurationError(error.description)
        }
        scheduler = SnapshotScheduler(store: embedded, configuration: configuration, logger: context.logger)
        repair = configuration.repair
    }

    public static let factory = StateBackendFactory(isShared: false) { try EmbeddedBackend($0) }

    public func prepare(on eventLoop: any EventLoop) async throws {
        // A repair is made durable before serving: the valid part of a damaged file now lives
        // only in memory. A replayed journal is folded into a snapshot soon after.
        if repair {
            _ = try await scheduler.writeNow()
        } else if embedded.replayedJournal {
            scheduler.request()
        }
    }

    public func upkeep(on eventLoop: any EventLoop) -> [PeriodicTask] {
        [
            // Expiry in small steps (1,000 logins, about a millisecond of the store's lock, ten
            // times a second), so that a mass expiry never stalls verifies for long.
            PeriodicTask("expiry sweep", every: .milliseconds(100), on: eventLoop) { [embedded] in embedded.sweep(budget: 1000) },
            PeriodicTask("snapshot scheduler", every: .seconds(1), on: eventLoop) { [scheduler] in scheduler.tick() },
        ]
    }

    public func shutdown() async {
        // A clean stop leaves a snapshot and an empty journal: the next start replays nothing.
        await scheduler.finish()
        embedded.close()
    }
}
