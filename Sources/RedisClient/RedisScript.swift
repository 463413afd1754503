import NIOConcurrencyHelpers

/// A Lua script run with EVALSHA. Every new connection loads the registered scripts (SCRIPT
/// LOAD, which also tells us the SHA-1); a NOSCRIPT reply (after SCRIPT FLUSH) falls back to
/// EVAL, which loads it again.
public final class RedisScript: Sendable {
    public let name: String
    public let source: String
    private let loadedSHA = NIOLockedValueBox<String?>(nil)

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    var sha: String? { loadedSHA.withLockedValue { $0 } }

    func loaded(sha: String) { loadedSHA.withLockedValue { $0 = sha } }
}
