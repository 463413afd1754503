import Synchronization

/// Where the lanes of a connection record what they measure: one tally behind a lock,
/// merged with the other connections' at the end.
///
/// A lock rather than a tally per lane: the histogram is fixed-size (about 140 KB), and
/// `-c 50 -P 16` would need 800 of them. With more than ``maximumCount`` connections,
/// connections share recorders round-robin, so memory stays bounded.
final class BenchRecorder: Sendable {
    /// At most this many recorders in a run.
    static let maximumCount = 64

    private let tally = Mutex(BenchTally())

    init() {}

    func answered(nanoseconds: UInt64) {
        tally.withLock { $0.answered(nanoseconds: nanoseconds) }
    }

    func countRenewal() {
        tally.withLock { $0.countRenewal() }
    }

    func refused(_ name: String) {
        tally.withLock { $0.refused(name) }
    }

    func lost(_ name: String) {
        tally.withLock { $0.lost(name) }
    }

    /// Everything recorded so far.
    var snapshot: BenchTally { tally.withLock { $0 } }
}
