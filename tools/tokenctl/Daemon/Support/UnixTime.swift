import Foundation

/// Unix times as people read them.
enum UnixTime {
    /// `2025-11-29T10:00:00Z`.
    static func iso(_ seconds: UInt64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// `2025-11-29T10:00:00Z (in 1h59m)` or `... (3m ago)`.
    static func describe(_ seconds: UInt64, now: Date = Date()) -> String {
        let delta = Int64(seconds) - Int64(now.timeIntervalSince1970)
        let span = span(delta.magnitude)
        return "\(iso(seconds)) (\(delta >= 0 ? "in \(span)" : "\(span) ago"))"
    }

    /// `45s`, `12m30s`, `2h5m`, `3d4h`.
    static func span(_ seconds: UInt64) -> String {
        let (days, hours, minutes, rest) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60, seconds % 60)
        if days > 0 { return hours > 0 ? "\(days)d\(hours)h" : "\(days)d" }
        if hours > 0 { return minutes > 0 ? "\(hours)h\(minutes)m" : "\(hours)h" }
        if minutes > 0 { return rest > 0 ? "\(minutes)m\(rest)s" : "\(minutes)m" }
        return "\(rest)s"
    }
}
