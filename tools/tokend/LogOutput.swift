import Foundation
import Logging
import NIOConcurrencyHelpers
import TokenCrypto

/// The log level, shared by every logger so that a reload (SIGHUP) can change it.
final class SharedLogLevel: Sendable {
    private let box: NIOLockedValueBox<Logger.Level>
    init(_ level: Logger.Level) { box = NIOLockedValueBox(level) }
    var level: Logger.Level {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
}

/// `--log-format`: `text` (swift-log's stream format) or `json` (one object per line).
enum LogFormat: String, CaseIterable {
    case text, json
}

/// tokend's log handler: writes to stderr (the journal, under systemd) in either format, at
/// the shared level.
struct TokendLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    let shared: SharedLogLevel
    var metadata: Logger.Metadata = [:]
    private var text: StreamLogHandler

    init(label: String, format: LogFormat, level: SharedLogLevel) {
        self.label = label
        self.format = format
        self.shared = level
        text = StreamLogHandler.standardError(label: label)
        text.logLevel = .trace
    }

    var logLevel: Logger.Level {
        get { shared.level }
        set { shared.level = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        switch format {
        case .text:
            var merged = metadata
            merged.merge(explicit ?? [:]) { $1 }
            text.log(level: level, message: message, metadata: merged, source: source, file: file, function: function, line: line)
        case .json:
            var fields: [(String, String)] = [
                ("time", Self.timestamp()), ("level", level.rawValue), ("logger", label), ("source", source), ("message", message.description),
            ]
            var merged = metadata
            merged.merge(explicit ?? [:]) { $1 }
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) { fields.append((key, "\(value)")) }
            let line = "{" + fields.map { "\(JSONString.quote($0.0)):\(JSONString.quote($0.1))" }.joined(separator: ",") + "}\n"
            Self.write(line)
        }
    }

    private static let output = NIOLockedValueBox(())

    /// One write per line, under a lock, so that lines from several threads never interleave.
    private static func write(_ line: String) {
        // A failed write (a closed pipe, a full disk) loses the line, never the daemon.
        output.withLockedValue { _ in try? FileHandle.standardError.write(contentsOf: Data(line.utf8)) }
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(now.tv_nsec / 1_000_000))
    }
}
