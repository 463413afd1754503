#if canImport(Glibc)
import Glibc
#endif

/// Where tokend reads the time: Unix milliseconds. Injected, so that tests control expiry.
public protocol TokenClock: Sendable {
    func milliseconds() -> Int64
}

extension TokenClock {
    /// Unix seconds: what tokens and logins count in.
    public func now() -> Int64 {
        let milliseconds = milliseconds()
        return milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
    }
}

/// The system's wall clock.
public struct SystemClock: TokenClock {
    public init() {}

    public func milliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
