import Dispatch
import Logging
import NIOConcurrencyHelpers
import TokenStore

/// Decides when to write a snapshot (on a timer, after a number of changes, on request, at
/// shutdown), like Redis's `save` points, and writes it off the event loops.
public final class SnapshotScheduler: Sendable {
    private let store: EmbeddedStore
    private let interval: Int64
    private let changes: Int
    private let logger: Logger
    private let queue = DispatchQueue(label: "tokend.snapshot")
    private let state = NIOLockedValueBox(State())

    private struct State {
        var secondsSinceSnapshot: Int64 = 0
        var running = false
        var last: EmbeddedStore.SnapshotReport?
        var lastAt: Int64 = 0
        /// The last failure logged, so that a fault retried every second logs once.
        var lastFailure: String?
        /// While degraded: seconds until the next try, and the wait after it (1, 2, 4 ... 30 s:
        /// a try whose journal switch works but whose snapshot does not leaves a journal file).
        var retryIn: Int64 = 0
        var retryBackoff: Int64 = 1
    }

    init(store: EmbeddedStore, configuration: TokendConfiguration, logger: Logger) {
        self.store = store
        self.interval = configuration.snapshotInterval
        self.changes = configuration.snapshotChanges
        self.logger = logger
    }

    /// The latest snapshot this process wrote.
    var lastSnapshot: EmbeddedStore.SnapshotReport? { store.lastSnapshot }

    /// Called every second. While the journal is degraded, a snapshot is tried after 1, 2, 4 ...
    /// up to 30 seconds: the first that is durable ends the fault.
    func tick() {
        let degraded = store.isDegraded
        let due = state.withLockedValue { state -> Bool in
            state.secondsSinceSnapshot += 1
            guard !state.running else { return false }
            if degraded {
                state.retryIn -= 1
                guard state.retryIn <= 0 else { return false }
                state.retryIn = state.retryBackoff
                state.retryBackoff = min(state.retryBackoff * 2, 30)
                return true
            }
            state.retryIn = 0
            state.retryBackoff = 1
            let pending = store.changesSinceSnapshot
            return pending > 0 && ((interval > 0 && state.secondsSinceSnapshot >= interval) || (changes > 0 && pending >= changes))
        }
        if due { request() }
    }

    /// Starts a snapshot in the background unless one is running.
    func request() {
        guard state.withLockedValue({ state in
            if state.running { return false }
            state.running = true
            return true
        }) else { return }
        queue.async { self.write() }
    }

    /// Writes a snapshot now and waits for it (the admin operation).
    func writeNow() async throws -> EmbeddedStore.SnapshotReport? {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.store.snapshot() })
                self.state.withLockedValue { $0.secondsSinceSnapshot = 0 }
            }
        }
    }

    /// The final snapshot at shutdown, after any one under way.
    func finish() async {
        await withCheckedContinuation { continuation in
            queue.async {
                self.write()
                continuation.resume()
            }
        }
    }

    private func write() {
        do {
            _ = try store.snapshot()
            state.withLockedValue { $0.lastFailure = nil }
        } catch {
            let text = "\(error)"
            let repeated = state.withLockedValue { state in
                defer { state.lastFailure = text }
                return state.lastFailure == text
            }
            let message: Logger.Message = store.isDegraded
                ? "snapshot failed; changes stay refused until one is written"
                : "snapshot failed; the journal keeps every change"
            logger.log(level: repeated ? .debug : .error, message, metadata: ["error": "\(text)"])
        }
        state.withLockedValue {
            $0.running = false
            $0.secondsSinceSnapshot = 0
        }
    }
}
