/// Durations as people write them on command lines and in config files: `250ms`, `5s`,
/// `30m`, `2h`, `1d`, or a bare number of seconds.
public enum DurationText {
    /// Milliseconds, or nil when `text` is not a duration.
    public static func milliseconds(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        let trimmed = Substring(text)
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "5ms" also ends in "s": only accept digits before the unit.
            guard !number.isEmpty, number.allSatisfy(\.isASCIIDigit), let value = Int64(number) else { continue }
            let (product, overflow) = value.multipliedReportingOverflow(by: scale)
            return overflow ? nil : product
        }
        guard !trimmed.isEmpty, trimmed.allSatisfy(\.isASCIIDigit), let seconds = Int64(trimmed) else { return nil }
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? nil : product
    }

    /// Whole seconds; nil for anything else, including `1500ms`.
    public static func seconds(_ text: String) -> Int64? {
        guard let milliseconds = milliseconds(text), milliseconds % 1000 == 0 else { return nil }
        return milliseconds / 1000
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
