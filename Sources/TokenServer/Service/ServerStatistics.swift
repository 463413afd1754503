import NIOConcurrencyHelpers
import TokenProtocol

/// Counters for `stats` and the metrics: responses by operation and status, connections, uptime.
final class ServerStatistics: Sendable {
    private struct Counts {
        /// Responses by opcode and status (`opcode << 16 | status`); the totals per operation,
        /// per status and overall are sums of these.
        var responses: [UInt32: UInt64] = [:]
        var connections = 0
        var connectionsTotal: UInt64 = 0
    }

    private let counts = NIOLockedValueBox(Counts())
    let startedAt: Int64

    init(startedAt: Int64) { self.startedAt = startedAt }

    func record(_ opcode: Opcode, _ status: Status) {
        counts.withLockedValue { $0.responses[UInt32(opcode.rawValue) << 16 | UInt32(status.rawValue), default: 0] += 1 }
    }

    /// Responses so far, by operation and status.
    var responses: [(opcode: Opcode, status: Status, count: UInt64)] {
        counts.withLockedValue { counts in
            counts.responses.map { (Opcode(UInt8($0.key >> 16)), Status(UInt16($0.key & 0xFFFF)), $0.value) }
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
        let (connections, connectionsTotal, responses) = counts.withLockedValue { ($0.connections, $0.connectionsTotal, $0.responses) }
        var operations: [UInt8: UInt64] = [:], statuses: [UInt16: UInt64] = [:]
        for (key, count) in responses {
            operations[UInt8(key >> 16), default: 0] += count
            statuses[UInt16(key & 0xFFFF), default: 0] += count
        }
        var rows: [(String, UInt64)] = [
            ("connections", UInt64(connections)),
            ("connections_total", connectionsTotal),
            ("uptime_seconds", UInt64(max(0, now - startedAt))),
            ("requests_total", responses.values.reduce(0, +)),
        ]
        for opcode in Opcode.known { rows.append(("op.\(opcode.name)", operations[opcode.rawValue] ?? 0)) }
        for status in Status.all { rows.append(("status.\(status.name)", statuses[status.rawValue] ?? 0)) }
        return rows
    }
}
