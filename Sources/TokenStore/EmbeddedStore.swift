import Foundation
import Logging
import NIOCore
import NIOConcurrencyHelpers

/// The default store: all state in this process's memory, persisted to a snapshot and a
/// journal in the state directory when one is given.
///
/// Threading: the state lives behind one mutex and every operation is one short critical
/// section, called from whichever event-loop thread serves the request. Nothing is done
/// under the lock but table lookups and updates and queueing the change for the journal:
/// signing, verification and all file I/O happen elsewhere (the journal on its own thread,
/// snapshots on the caller's). A change's reply waits until its journal record is written.
public final class EmbeddedStore: TokenStateStore {
    private struct Guarded: Sendable {
        var state: EmbeddedState
        var nextSequence: UInt64
        var changesSinceSnapshot = 0
        /// The journal ticket of the latest change. A reply that changed nothing still waits
        /// for it: what it reports (a rotated pair from the dedup map, "already revoked") may
        /// rest on a change another request made and has not yet made durable.
        var lastTicket: UInt64?
    }

    private let guarded: NIOLockedValueBox<Guarded>
    private let snapshotting = NIOLockedValueBox(false)
    public let clock: any TokenClock
    private let persistence: Persistence?
    private let logger: Logger

    /// Where and how state is persisted.
    public struct Persistence: Sendable {
        public var directory: String
        public var fsync: FsyncPolicy
        /// Start even when a file is damaged: keep the valid part, move the file aside.
        public var repair: Bool
        /// Told how long each journal fsync took.
        public var syncObserver: (@Sendable (Duration) -> Void)?

        public init(directory: String, fsync: FsyncPolicy = .everysec, repair: Bool = false, syncObserver: (@Sendable (Duration) -> Void)? = nil) {
            self.directory = directory
            self.fsync = fsync
            self.repair = repair
            self.syncObserver = syncObserver
        }
    }

    private let journal: JournalWriter?
    /// Whether the loaded state came partly from journals.
    public let replayedJournal: Bool

    /// A store in memory only (tests, benchmarks).
    public convenience init(policy: RenewalPolicy = RenewalPolicy(), clock: any TokenClock = SystemClock()) {
        try! self.init(policy: policy, clock: clock, persistence: nil, logger: Logger(label: "tokend.store"))
    }

    /// Loads the persisted state (when `persistence` is given) and opens a new journal.
    public init(policy: RenewalPolicy, clock: any TokenClock, persistence: Persistence?, logger: Logger) throws {
        self.clock = clock
        self.persistence = persistence
        self.logger = logger
        let now = clock.now()
        if let persistence {
            let loaded = try StateLoader.load(directory: persistence.directory, policy: policy, now: now, repair: persistence.repair, logger: logger)
            let journal = JournalWriter(directory: persistence.directory, policy: persistence.fsync, logger: logger,
                                        syncObserver: persistence.syncObserver)
            try journal.start(sequence: loaded.nextSequence, createdAt: now)
            self.journal = journal
            self.replayedJournal = loaded.replayedJournal
            guarded = NIOLockedValueBox(Guarded(state: loaded.state, nextSequence: loaded.nextSequence + 1))
        } else {
            var state = EmbeddedState(policy: policy, now: now)
            state.recordsChanges = false
            journal = nil
            replayedJournal = false
            guarded = NIOLockedValueBox(Guarded(state: state, nextSequence: 1))
        }
    }

    /// What an operation does to the state, which decides what a persistence fault does to it.
    private enum Access {
        /// Never changes anything (checks, listings, counts).
        case read
        /// A verify or renew: may slide a session's expiry, or mark a family's pair used. Lost in
        /// a crash while the journal is degraded, the first costs a renewal, the second lets a
        /// repeat of the spent refresh token have the pair again within its grace.
        case touch
        /// Creates, rotates or revokes: refused while changes cannot be made durable.
        case write
    }

    /// Runs `body` on the state; the reply waits for the journal up to the latest change.
    /// Expiry is not done here: `sweep` does it in small steps off the request path, and every
    /// rule checks times itself, so a login or dedup entry past its time is never honoured.
    ///
    /// While the journal is degraded (a write failed, and no snapshot has yet made memory
    /// durable again) writes are refused before they change anything, and reads and touches
    /// are answered from memory without waiting for the journal: a failed write never fails a
    /// verify. A touch's renewal then lives in memory until the snapshot that ends the fault.
    /// `body` gets the time in Unix milliseconds.
    private func run<R: Sendable>(_ access: Access, on eventLoop: any EventLoop, _ body: (inout EmbeddedState, Int64) -> R) -> EventLoopFuture<R> {
        answer(access, on: eventLoop, body).future(on: eventLoop)
    }

    /// `run`'s work, answered at once unless the journal has yet to write what the answer
    /// rests on.
    private func answer<R: Sendable>(_ access: Access, on eventLoop: any EventLoop, _ body: (inout EmbeddedState, Int64) -> R) -> StoreAnswer<R> {
        let now = clock.milliseconds()
        guard let journal else {
            return .ready(guarded.withLockedValue { body(&$0.state, now) })
        }
        let degraded = journal.isDegraded
        if degraded {
            if access == .write {
                faultCounts.withLockedValue { $0.refusedWrites += 1 }
                return .failed(StoreUnavailable("journal degraded: \(journal.faultDescription ?? "recovering")", reason: StoreUnavailable.persistenceReason))
            }
            faultCounts.withLockedValue { $0.reads += 1 }
        }
        let (result, ticket) = guarded.withLockedValue { guarded -> (R, UInt64?) in
            let result = body(&guarded.state, now)
            guard !guarded.state.changes.isEmpty else { return (result, guarded.lastTicket) }
            guarded.changesSinceSnapshot += guarded.state.changes.count
            let ticket = journal.append(guarded.state.changes)
            guarded.state.changes.removeAll(keepingCapacity: true)
            guarded.lastTicket = ticket
            return (result, ticket)
        }
        guard let ticket else { return .ready(result) }
        switch access {
        case .write:
            switch journal.written(ticket) {
            case true?: return .ready(result)
            case false?: return .failed(StoreUnavailable("journal write failed: \(journal.faultDescription ?? "unknown")", reason: StoreUnavailable.persistenceReason))
            case nil:
                return .pending(journal.whenWritten(ticket, on: eventLoop).flatMapErrorThrowing { error in
                    throw StoreUnavailable("journal write failed: \(error)", reason: StoreUnavailable.persistenceReason)
                }.map { result })
            }
        case .read, .touch:
            // A read still waits for the changes it may report on, but never fails for them.
            if degraded || journal.written(ticket) != nil { return .ready(result) }
            return .pending(journal.whenWritten(ticket, on: eventLoop).map { result }.recover { _ in result })
        }
    }

    /// Whether changes cannot be made durable now; the snapshot scheduler then retries a
    /// snapshot, which ends the fault once the disk takes it.
    public var isDegraded: Bool { journal?.isDegraded ?? false }
    public func health(on eventLoop: any EventLoop) -> EventLoopFuture<Bool> { healthAnswer(on: eventLoop).future(on: eventLoop) }
    /// Reads answered while degraded, and writes refused, since start.
    public var persistenceFaultCounts: (reads: UInt64, refusedWrites: UInt64) { faultCounts.withLockedValue { $0 } }
    private let faultCounts = NIOLockedValueBox<(reads: UInt64, refusedWrites: UInt64)>((0, 0))

    /// Drops what has expired, at most `budget` logins; the server calls this ten times a second so
    /// that idle tables shrink too. Returns the number of logins removed.
    @discardableResult
    public func sweep(budget: Int = 10_000) -> Int {
        let now = clock.now()
        return guarded.withLockedValue { $0.state.expire(now: now, budget: budget) }
    }

    /// Changes since the last snapshot.
    public var changesSinceSnapshot: Int { guarded.withLockedValue { $0.changesSinceSnapshot } }

    public struct SnapshotReport: Sendable {
        public var records: Int
        public var bytes: Int
        public var seconds: Double
        /// When it was durable (Unix seconds).
        public var completedAt: Int64
    }

    /// The latest snapshot written by this process.
    public var lastSnapshot: SnapshotReport? { lastReport.withLockedValue { $0 } }
    private let lastReport = NIOLockedValueBox<SnapshotReport?>(nil)

    /// Writes a snapshot of the current state and removes the journals it covers. Serving
    /// goes on meanwhile: the state is copied (copy-on-write) and the journal switched to a
    /// new file under the lock; the file is written outside it. Blocking: call it off the
    /// event loops. Returns nil when the store is not persistent or a snapshot is under way.
    public func snapshot() throws -> SnapshotReport? {
        guard let persistence, let journal else { return nil }
        guard snapshotting.withLockedValue({ running in
            if running { return false }
            running = true
            return true
        }) else { return nil }
        defer { snapshotting.withLockedValue { $0 = false } }
        let started = ContinuousClock.now
        let now = clock.now()
        let epoch = journal.epoch
        let (copy, sequence, switchID, changes, lastTicket) = guarded.withLockedValue { guarded in
            let sequence = guarded.nextSequence
            guarded.nextSequence += 1
            let changes = guarded.changesSinceSnapshot
            guarded.changesSinceSnapshot = 0
            let switchID = journal.switchTo(sequence: sequence, createdAt: now)
            return (guarded.state, sequence, switchID, changes, guarded.lastTicket)
        }
        if let error = journal.waitForSwitch(switchID) {
            // No new journal: the old one stays current, and a snapshot claiming to cover it
            // would make the next start delete changes written to it after this point.
            guarded.withLockedValue { guarded in
                if guarded.nextSequence == sequence + 1 { guarded.nextSequence = sequence }
                guarded.changesSinceSnapshot += changes
            }
            throw PersistenceError("snapshot not written: \(error)")
        }
        let written = try SnapshotFile.write(copy, directory: persistence.directory, sequence: sequence, now: now)
        // Everything in memory when the journal switched is durable now, whatever became of
        // its journal records: a reply that rests on the latest of them need not wait for it.
        journal.recovered(epoch: epoch)
        guarded.withLockedValue { guarded in
            if guarded.lastTicket == lastTicket { guarded.lastTicket = nil }
        }
        for old in try StateLoader.journalSequences(persistence.directory) where old < sequence {
            try? FileManager.default.removeItem(atPath: JournalWriter.path(directory: persistence.directory, sequence: old))
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        logger.info("snapshot written", metadata: ["snapshot.records": "\(written.records)", "snapshot.bytes": "\(written.bytes)",
                                                   "snapshot.seconds": "\(String(format: "%.3f", seconds))"])
        let report = SnapshotReport(records: written.records, bytes: written.bytes, seconds: seconds, completedAt: clock.now())
        lastReport.withLockedValue { $0 = report }
        return report
    }

    /// Flushes and stops the journal (after the final snapshot, at shutdown).
    public func close() {
        journal?.stop()
    }

    public func create(_ login: NewLogin, on eventLoop: any EventLoop) -> EventLoopFuture<CreateOutcome> {
        run(.write, on: eventLoop) { $0.create(login, at: $1) }
    }

    public func touchSession(_ key: SessionKey, fingerprint: Digest128?, subject: String, explicit: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<SessionOutcome> {
        touchSessionAnswer(key, fingerprint: fingerprint, subject: subject, explicit: explicit, on: eventLoop).future(on: eventLoop)
    }

    public func checkFamily(_ key: SessionKey, fingerprint: Digest128?, generation: Int64?, on eventLoop: any EventLoop) -> EventLoopFuture<FamilyOutcome> {
        checkFamilyAnswer(key, fingerprint: fingerprint, generation: generation, on: eventLoop).future(on: eventLoop)
    }

    public func touchSessionAnswer(_ key: SessionKey, fingerprint: Digest128?, subject: String, explicit: Bool,
                                   on eventLoop: any EventLoop) -> StoreAnswer<SessionOutcome> {
        answer(.touch, on: eventLoop) { $0.touchSession(key, fingerprint: fingerprint, subject: subject, explicit: explicit, now: $1 / 1000) }
    }

    /// A touch: marking a pair used is written, but a verify never fails for the journal.
    public func checkFamilyAnswer(_ key: SessionKey, fingerprint: Digest128?, generation: Int64?, on eventLoop: any EventLoop) -> StoreAnswer<FamilyOutcome> {
        answer(.touch, on: eventLoop) { $0.checkFamily(key, fingerprint: fingerprint, generation: generation, now: $1 / 1000) }
    }

    public func healthAnswer(on eventLoop: any EventLoop) -> StoreAnswer<Bool> { .ready(!isDegraded) }

    public func prepareRotation(_ key: SessionKey, presented: PresentedRefresh, fingerprint: Digest128?, on eventLoop: any EventLoop) -> EventLoopFuture<RotationCheck> {
        run(.read, on: eventLoop) { $0.prepareRotation(key, presented: presented, fingerprint: fingerprint, at: $1) }
    }

    public func rotate(_ rotation: Rotation, on eventLoop: any EventLoop) -> EventLoopFuture<RotationOutcome> {
        run(.write, on: eventLoop) { $0.rotate(rotation, at: $1) }
    }

    public func revoke(_ target: RevokeTarget, on eventLoop: any EventLoop) -> EventLoopFuture<Int?> {
        run(.write, on: eventLoop) { $0.revoke(target, now: $1 / 1000) }
    }

    public func list(_ query: ListQuery, on eventLoop: any EventLoop) -> EventLoopFuture<ListPage> {
        run(.read, on: eventLoop) { $0.list(query, now: $1 / 1000) }
    }

    public func statistics(on eventLoop: any EventLoop) -> EventLoopFuture<StoreStatistics> {
        run(.read, on: eventLoop) { state, _ in state.statistics }.map { [journal] statistics in
            guard journal != nil else { return statistics }
            var statistics = statistics
            let faults = self.persistenceFaultCounts
            statistics.extra["persistence_degraded"] = self.isDegraded ? 1 : 0
            statistics.extra["persistence_degraded_reads"] = faults.reads
            statistics.extra["persistence_refused_writes"] = faults.refusedWrites
            return statistics
        }
    }
}
