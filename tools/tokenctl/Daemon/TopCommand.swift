import ArgumentParser
import Foundation
import TokenClient

/// `tokenctl top`: a live view of the daemon, in the manner of `redis-cli --stat` and `htop`.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch the daemon live: operations per second, p99 latency, errors, sessions, cache hits.",
        discussion: """
            Refreshes every --interval (1s). On a terminal it draws a full screen and quits on q or Ctrl-C; \
            otherwise (a pipe, a file) it prints one plain line per interval, like redis-cli --stat. Needs the \
            admin role (it reads the daemon's metrics). p99 is the upper bound of the latency bucket holding the \
            99th percentile of the interval's requests.
            """
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    @Option(help: "Seconds between refreshes.") var interval: Double = 1
    @Option(help: "Stop after this many refreshes (default: until q, Ctrl-C or end of input).") var count: Int?

    func validate() throws {
        guard interval >= 0.1 else { throw ValidationError("--interval must be at least 0.1 seconds") }
        if options.json { throw ValidationError("top has no --json output; use tokenctl stats --json or --prometheus") }
    }

    func run() async throws {
        let interactive = isatty(STDOUT_FILENO) == 1 && isatty(STDIN_FILENO) == 1
        try await options.withClient { client in
            var previous = MetricsSample(text: try await client.metrics(), at: .now)
            let terminal = interactive ? Terminal() : nil
            defer { terminal?.restore() }
            // Into a pipe: each line flushed at once, and the end when the reader goes away
            // (`tokenctl top | head -3` ends by itself).
            if !interactive, !Self.emit(TopView.plainHeader) { return }
            var refreshes = 0
            while count.map({ refreshes < $0 }) ?? true {
                if let terminal {
                    if terminal.waitForQuit(seconds: interval) { return }
                } else {
                    try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                }
                let current = MetricsSample(text: try await client.metrics(), at: .now)
                let view = TopView(previous: previous, current: current, socket: options.socket)
                if let terminal {
                    terminal.draw(view.screen(width: terminal.width))
                } else if !Self.emit(view.plainLine) {
                    return
                }
                previous = current
                refreshes += 1
            }
        }
    }
}

extension TopCommand {
    /// Writes a line straight to standard output (no buffer to hold it back); false when the
    /// reader has gone (EPIPE).
    static func emit(_ line: String) -> Bool {
        let bytes = Array((line + "\n").utf8)
        return bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) } == bytes.count
    }
}

/// One reading of the daemon's Prometheus text.
struct MetricsSample {
    /// Requests by operation and status.
    var requests: [String: [String: Double]] = [:]
    /// Latency buckets by operation: (upper bound in seconds, cumulative count).
    var buckets: [String: [(Double, Double)]] = [:]
    var gauges: [String: Double] = [:]
    let at: ContinuousClock.Instant

    init(text: String, at: ContinuousClock.Instant) {
        self.at = at
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            let name: Substring
            var labels: [String: String] = [:]
            if let brace = series.firstIndex(of: "{") {
                name = series[..<brace]
                for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { labels[String(parts[0])] = String(parts[1].dropFirst().dropLast()) }
                }
            } else {
                name = series
            }
            switch name {
            case "tokend_requests_total":
                if let op = labels["op"], let status = labels["status"] { requests[op, default: [:]][status] = value }
            case "tokend_request_duration_seconds_bucket":
                if let op = labels["op"], let le = labels["le"] {
                    buckets[op, default: []].append((le == "+Inf" ? .infinity : Double(le) ?? .infinity, value))
                }
            default:
                gauges[String(name)] = value
            }
        }
        for op in buckets.keys { buckets[op]!.sort { $0.0 < $1.0 } }
    }
}

/// What one refresh shows: rates over the interval between two samples.
struct TopView {
    struct Row {
        var op: String
        var perSecond: Double
        var errorsPerSecond: Double
        var p99: Double?
        var total: Double
    }

    let rows: [Row]
    let all: Row
    let current: MetricsSample
    let socket: String

    static let successes: Set<String> = ["ok", "renewed"]

    init(previous: MetricsSample, current: MetricsSample, socket: String) {
        self.current = current
        self.socket = socket
        let elapsed = current.at - previous.at
        let seconds = max(0.001, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        func delta(_ op: String, _ statuses: (String) -> Bool) -> Double {
            let now = current.requests[op] ?? [:], before = previous.requests[op] ?? [:]
            return now.filter { statuses($0.key) }.reduce(0) { $0 + $1.value - (before[$1.key] ?? 0) }
        }
        var rows: [Row] = []
        var merged: [Double: Double] = [:]
        for op in current.requests.keys.sorted() where op != "metrics" {
            let done = delta(op) { _ in true }
            let errors = delta(op) { !Self.successes.contains($0) }
            let before = Dictionary(previous.buckets[op] ?? [], uniquingKeysWith: { $1 })
            let interval = (current.buckets[op] ?? []).map { ($0.0, $0.1 - (before[$0.0] ?? 0)) }
            for (bound, count) in interval { merged[bound, default: 0] += count }
            rows.append(Row(op: op, perSecond: done / seconds, errorsPerSecond: errors / seconds, p99: Self.p99(interval),
                            total: (current.requests[op] ?? [:]).values.reduce(0, +)))
        }
        self.rows = rows
        all = Row(op: "all", perSecond: rows.reduce(0) { $0 + $1.perSecond }, errorsPerSecond: rows.reduce(0) { $0 + $1.errorsPerSecond },
                  p99: Self.p99(merged.sorted { $0.key < $1.key }), total: rows.reduce(0) { $0 + $1.total })
    }

    /// The upper bound of the bucket holding the 99th percentile; nil without requests.
    static func p99(_ cumulative: [(Double, Double)]) -> Double? {
        guard let total = cumulative.last?.1, total > 0 else { return nil }
        return cumulative.first { $0.1 >= total * 0.99 }?.0
    }

    static func milliseconds(_ seconds: Double?) -> String {
        guard let seconds else { return "-" }
        if seconds.isInfinite { return ">1000" }
        return seconds * 1000 < 1 ? String(format: "%.2f", seconds * 1000) : String(format: "%.0f", seconds * 1000)
    }

    static func rate(_ value: Double) -> String { value >= 10 ? String(format: "%.0f", value) : String(format: "%.1f", value) }

    func gauge(_ name: String) -> String { current.gauges[name].map { String(format: "%.0f", $0) } ?? "-" }

    var cacheRatio: String { current.gauges["tokend_verified_cache_hit_ratio"].map { String(format: "%.1f%%", $0 * 100) } ?? "-" }

    static let plainHeader = "     ops/s  errors/s   p99 ms  verify/s   issue/s refresh/s  sessions  families  cache-hit"

    var plainLine: String {
        func op(_ name: String) -> Double { rows.first { $0.op == name }?.perSecond ?? 0 }
        return [Self.rate(all.perSecond).leftPadded(10), Self.rate(all.errorsPerSecond).leftPadded(9), Self.milliseconds(all.p99).leftPadded(8),
                Self.rate(op("verify")).leftPadded(9), Self.rate(op("issue")).leftPadded(9), Self.rate(op("refresh")).leftPadded(9),
                gauge("tokend_sessions_active").leftPadded(9), gauge("tokend_families_active").leftPadded(9), cacheRatio.leftPadded(10)].joined(separator: " ")
    }

    func screen(width: Int) -> [String] {
        let uptime = Int(current.gauges["tokend_uptime_seconds"] ?? 0)
        var lines = [
            "tokend top — \(socket) — up \(uptime / 3600)h\(String(format: "%02d", uptime / 60 % 60))m — q or Ctrl-C quits",
            "",
            "  ops/s \(Self.rate(all.perSecond))   errors/s \(Self.rate(all.errorsPerSecond))   p99 \(Self.milliseconds(all.p99)) ms   "
                + "connections \(gauge("tokend_connections"))",
            "  sessions \(gauge("tokend_sessions_active"))   families \(gauge("tokend_families_active"))   revoked \(gauge("tokend_revoked"))   "
                + "cache hit \(cacheRatio)   reuse detected \(gauge("tokend_reuse_detected_total"))",
            "",
            "  " + "OPERATION".rightPadded(14) + "OPS/S".leftPadded(10) + "ERRORS/S".leftPadded(10) + "P99 MS".leftPadded(9) + "TOTAL".leftPadded(12),
        ]
        for row in rows.sorted(by: { $0.perSecond > $1.perSecond || ($0.perSecond == $1.perSecond && $0.op < $1.op) }) {
            lines.append("  " + row.op.rightPadded(14) + Self.rate(row.perSecond).leftPadded(10) + Self.rate(row.errorsPerSecond).leftPadded(10)
                         + Self.milliseconds(row.p99).leftPadded(9) + String(format: "%.0f", row.total).leftPadded(12))
        }
        if let store = current.gauges["tokend_store_redis_healthy"] {
            lines += ["", "  shared store: \(store == 1 ? "healthy" : "UNAVAILABLE")   redis keys \(gauge("tokend_store_redis_keys"))"]
        }
        return lines.map { String($0.prefix(width)) }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
    func rightPadded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

/// The terminal in full-screen mode: the alternate screen, no cursor, keys read one at a time.
/// Restored on exit, whatever the exit.
final class Terminal {
    private var saved = termios()

    init() {
        tcgetattr(STDIN_FILENO, &saved)
        var raw = saved
        // No line buffering, no echo, and Ctrl-C as a key (so the terminal is restored first).
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J")
    }

    func restore() {
        write("\u{1B}[?25h\u{1B}[?1049l")
        tcsetattr(STDIN_FILENO, TCSANOW, &saved)
    }

    var width: Int {
        var size = winsize()
        return ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
    }

    /// Waits up to `seconds` for a key; true when it was q, Q or Ctrl-C (or input ended).
    func waitForQuit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(left * 1000)) > 0 else { continue }
            var byte: UInt8 = 0
            if read(STDIN_FILENO, &byte, 1) <= 0 { return true }
            if byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q") || byte == 3 { return true }
        }
    }

    func draw(_ lines: [String]) {
        write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
    }

    private func write(_ text: String) {
        try? FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
    }
}
