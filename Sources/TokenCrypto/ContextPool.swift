internal import COpenSSL
import Foundation

/// A small pool of prepared `EVP_PKEY_CTX` verification contexts for one key.
///
/// A context is not safe to use from two threads at once, and making one costs as much as
/// the operation it serves; so each caller borrows one (making it on first need) and gives it
/// back. The pool holds at most as many contexts as ever ran at the same time.
final class ContextPool: @unchecked Sendable {
    private let make: @Sendable () -> OpaquePointer?
    /// A pthread mutex (NSLock), which ThreadSanitizer understands; guards `contexts`.
    private let lock = NSLock()
    /// Idle contexts.
    private var contexts: [OpaquePointer] = []

    init(make: @escaping @Sendable () -> OpaquePointer?) {
        self.make = make
    }

    /// Runs `body` with a context, or returns 0 (failure) when none can be made.
    func withContext(_ body: (OpaquePointer) -> Int32) -> Int32 {
        let borrowed = lock.withLock { contexts.popLast() } ?? make()
        guard let context = borrowed else {
            OpenSSLErrorQueue.clear()
            return 0
        }
        let result = body(context)
        lock.withLock { contexts.append(context) }
        return result
    }

    /// Frees the idle contexts; called when the key goes away.
    func drain() {
        lock.withLock {
            for context in contexts { EVP_PKEY_CTX_free(context) }
            contexts.removeAll()
        }
    }
}
