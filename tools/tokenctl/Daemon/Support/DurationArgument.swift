import ArgumentParser
import TokenProtocol

/// A duration option such as `--ttl`: `250ms`, `5s`, `30m`, `2h`, `1d` or a bare number of
/// seconds, as `DurationText` reads them for tokend too. The wire carries whole seconds, so a
/// duration must be a positive whole number of seconds.
struct DurationArgument: Sendable {
    /// The text as given.
    let text: String
    /// The duration in seconds, as sent.
    let seconds: UInt64

    /// Parses `text`; for `@Option(transform:)`, so that a bad value is a usage error.
    static func parse(_ text: String) throws -> DurationArgument {
        guard let milliseconds = DurationText.milliseconds(text) else {
            throw ValidationError("'\(text)' is not a duration: use a number and a unit, as in 5s, 30m, 2h or 1d")
        }
        guard milliseconds > 0 else { throw ValidationError("a duration must be longer than zero") }
        guard milliseconds % 1000 == 0 else {
            throw ValidationError("the daemon takes whole seconds, and \(text) is not a whole number of seconds")
        }
        return DurationArgument(text: text, seconds: UInt64(milliseconds / 1000))
    }
}
