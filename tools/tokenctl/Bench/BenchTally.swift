import Histogram

/// What lanes measured: the latency of every answered request and the outcome counts.
struct BenchTally: Sendable {
    /// The slowest answer the histogram tells apart, in microseconds (a minute); anything
    /// slower is recorded as this.
    static let highestLatency: UInt64 = 60_000_000

    /// Send-to-answer latency in microseconds, 3 significant digits. Its range is fixed: an
    /// auto-resizing histogram grows through unspecialised generic code (about 1.5 ms per
    /// resize in hdrhistogram-swift 0.2.0), which stalls the lanes sharing the thread.
    private(set) var latencies = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: highestLatency, numberOfSignificantValueDigits: .three
    )
    /// Requests answered or failed.
    private(set) var completed = 0
    /// Verifies that extended their session (status `renewed`; a success).
    private(set) var renewed = 0
    /// Failed requests by status name (`session_expired`), or by client error code for
    /// transport failures (`connection_closed`).
    private(set) var errors: [String: Int] = [:]

    var errorCount: Int { errors.values.reduce(0, +) }

    /// An answered request, whatever its status.
    mutating func answered(nanoseconds: UInt64) {
        latencies.record(min(nanoseconds / 1000, Self.highestLatency))
        completed += 1
    }

    mutating func countRenewal() { renewed += 1 }

    /// A refusal (already counted as answered), named by its status.
    mutating func refused(_ name: String) {
        errors[name, default: 0] += 1
    }

    /// A request that got no answer at all: counted as completed and failed.
    mutating func lost(_ name: String) {
        completed += 1
        errors[name, default: 0] += 1
    }

    mutating func merge(_ other: BenchTally) {
        latencies.add(other.latencies)
        completed += other.completed
        renewed += other.renewed
        errors.merge(other.errors, uniquingKeysWith: +)
    }
}
