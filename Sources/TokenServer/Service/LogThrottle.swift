import NIOConcurrencyHelpers

/// Lets a repeated log line through at most once a second: an outage or a flood fails every
/// request, and one line per request would bury everything else.
final class LogThrottle: Sendable {
    private let state = NIOLockedValueBox((lastLogged: ContinuousClock.Instant?.none, suppressed: 0))

    /// How many lines were held back since the last one let through, when this one may be
    /// logged; nil when it is held back too.
    func admit() -> Int? {
        let now = ContinuousClock.now
        return state.withLockedValue { state -> Int? in
            if let last = state.lastLogged, now - last < .seconds(1) {
                state.suppressed += 1
                return nil
            }
            defer { state = (now, 0) }
            return state.suppressed
        }
    }
}
