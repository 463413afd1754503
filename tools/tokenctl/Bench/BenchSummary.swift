import Foundation
import TokenJWT

/// The result of a run, as a table or as one JSON object.
struct BenchSummary {
    let plan: BenchPlan
    let tally: BenchTally
    /// From the start of the clock to the last answer.
    let seconds: Double

    var opsPerSecond: Double { seconds > 0 ? Double(tally.completed) / seconds : 0 }

    /// A latency percentile in milliseconds (0 when nothing was answered).
    func milliseconds(atPercentile percentile: Double) -> Double {
        tally.latencies.totalCount == 0 ? 0 : Double(tally.latencies.valueAtPercentile(percentile)) / 1000
    }

    var maxMilliseconds: Double { Double(tally.latencies.maxRecorded) / 1000 }

    /// Error counts by name, most frequent first.
    private var errors: [(name: String, count: Int)] {
        tally.errors.map { ($0.key, $0.value) }.sorted { ($0.count, $1.name) > ($1.count, $0.name) }
    }

    func print(json: Bool) {
        let p50 = milliseconds(atPercentile: 50), p99 = milliseconds(atPercentile: 99), p999 = milliseconds(atPercentile: 99.9)
        if json {
            printJSON(JSONObject([
                "op": .string(plan.operation.rawValue),
                "connections": .integer(plan.connections),
                "pipeline": .integer(plan.pipeline),
                "requests": .integer(tally.completed),
                "errors": .object(JSONObject(members: errors.map { JSONObject.Member(name: $0.name, value: .integer($0.count)) })),
                "renewed": .integer(tally.renewed),
                "seconds": .number(Self.format(seconds)),
                "ops_per_sec": .number(String(format: "%.1f", opsPerSecond)),
                "p50_ms": .number(Self.format(p50)),
                "p99_ms": .number(Self.format(p99)),
                "p999_ms": .number(Self.format(p999)),
                "max_ms": .number(Self.format(maxMilliseconds)),
            ]))
            return
        }
        let errorText = tally.errorCount == 0
            ? "0"
            : "\(tally.errorCount) (" + errors.map { "\($0.name) \($0.count)" }.joined(separator: ", ") + ")"
        var table = TextTable(rows: [
            ["op", plan.operation.rawValue],
            ["connections", String(plan.connections)],
            ["pipeline", String(plan.pipeline)],
            ["requests", String(tally.completed)],
            ["errors", errorText],
        ])
        if tally.renewed > 0 { table.append(["renewed", String(tally.renewed)]) }
        table.append(["duration", "\(Self.format(seconds)) s"])
        table.append(["ops/s", String(format: "%.1f", opsPerSecond)])
        table.append(["p50", "\(Self.format(p50)) ms"])
        table.append(["p99", "\(Self.format(p99)) ms"])
        table.append(["p99.9", "\(Self.format(p999)) ms"])
        table.append(["max", "\(Self.format(maxMilliseconds)) ms"])
        table.print()
    }

    /// Three decimals: microseconds, for milliseconds.
    private static func format(_ value: Double) -> String { String(format: "%.3f", value) }
}
