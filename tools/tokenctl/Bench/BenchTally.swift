import Histogram

/// What a lane measured: the latency of every answered request and the outcome counts.
/// Lanes keep their own and are merged at the end, per connection and then overall, so the
/// hot loop shares nothing.
struct BenchTally: Sendable {
    /// Send-to-response latency in microseconds. Auto-resizing: it only grows as far as the
    /// slowest answer needs.
    private(set) var latencies = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
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
        latencies.record(nanoseconds / 1000)
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
