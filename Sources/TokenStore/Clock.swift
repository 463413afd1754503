#if canImport(Glibc)
import Glibc
#endif

/// Where the store reads the time: Unix seconds. Injected, so that tests control expiry.
public protocol TokenClock: Sendable {
    func now() -> Int64
}

/// The system's wall clock.
public struct SystemClock: TokenClock {
    public init() {}

    public func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }
}
