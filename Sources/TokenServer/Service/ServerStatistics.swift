import NIOConcurrencyHelpers
import TokenProtocol

/// Counters for `stats`: requests per operation and per status, connections, uptime.
final class ServerStatistics: Sendable {
    private struct Counts {
        var operations: [UInt8: UInt64] = [:]
        var statuses: [UInt16: UInt64] = [:]
        var requests: UInt64 = 0
        var connections = 0
        var connectionsTotal: UInt64 = 0
    }

    private let counts = NIOLockedValueBox(Counts())
    let startedAt: Int64

    init(startedAt: Int64) { self.startedAt = startedAt }

    func record(_ opcode: Opcode, _ status: Status) {
        counts.withLockedValue {
            $0.requests += 1
            $0.operations[opcode.rawValue, default: 0] += 1
            $0.statuses[status.rawValue, default: 0] += 1
        }
    }

    func connectionOpened() -> Int {
        counts.withLockedValue {
            $0.connections += 1
            $0.connectionsTotal += 1
            return $0.connections
        }
    }

    func connectionClosed() { counts.withLockedValue { $0.connections -= 1 } }

    /// (name, value) pairs as `stats` reports them.
    func snapshot(now: Int64) -> [(String, UInt64)] {
        counts.withLockedValue { counts in
            var rows: [(String, UInt64)] = [
                ("connections", UInt64(counts.connections)),
                ("connections_total", counts.connectionsTotal),
                ("uptime_seconds", UInt64(max(0, now - startedAt))),
                ("requests_total", counts.requests),
            ]
            for opcode in Opcode.known { rows.append(("op.\(opcode.name)", counts.operations[opcode.rawValue] ?? 0)) }
            for status in Status.all { rows.append(("status.\(status.name)", counts.statuses[status.rawValue] ?? 0)) }
            return rows
        }
    }
}
