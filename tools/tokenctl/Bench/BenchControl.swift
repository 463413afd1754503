import Synchronization

/// What the lanes share while the clock runs: how many requests may still be started, when
/// to stop, and how many have completed so far (for the progress line).
///
/// Two relaxed atomic additions per request; nothing else is shared.
final class BenchControl: Sendable {
    /// At most this many requests in all (`-n`); nil with `--duration`.
    private let limit: Int?
    /// How long the run lasts (`--duration`), in nanoseconds.
    private let duration: UInt64?
    /// No request is started at or after this `BenchClock` time; set by `start(at:)`.
    private let deadline = Atomic<UInt64>(UInt64.max)
    private let started = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)

    init(limit: Int?, duration: UInt64?) {
        self.limit = limit
        self.duration = duration
    }

    /// Starts the clock: with `--duration`, no request starts after `start + duration`.
    func start(at start: UInt64) {
        if let duration { deadline.store(start + duration, ordering: .relaxed) }
    }

    /// Whether a lane may send one more request at `now`; under `-n` this takes one of the
    /// remaining requests, so exactly `limit` are sent however many lanes ask.
    func claim(now: UInt64) -> Bool {
        if now >= deadline.load(ordering: .relaxed) { return false }
        guard let limit else { return true }
        return started.wrappingAdd(1, ordering: .relaxed).oldValue < limit
    }

    /// Counts a request answered (or failed).
    func complete() {
        finished.wrappingAdd(1, ordering: .relaxed)
    }

    /// Requests answered (or failed) so far.
    var completed: Int { finished.load(ordering: .relaxed) }
}
