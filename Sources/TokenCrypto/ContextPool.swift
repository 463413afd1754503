internal import COpenSSL
import Synchronization

/// A small pool of prepared `EVP_PKEY_CTX` verification contexts for one key.
///
/// A context is not safe to use from two threads at once, and making one costs as much as
/// the operation it serves; so each caller borrows one (making it on first need) and gives it
/// back. The pool holds at most as many contexts as ever ran at the same time.
final class ContextPool: Sendable {
    private let make: @Sendable () -> OpaquePointer?
    /// Idle contexts, kept as addresses so that the mutex holds only Sendable values.
    private let idle = Mutex<[UInt]>([])

    init(make: @escaping @Sendable () -> OpaquePointer?) {
        self.make = make
    }

    /// Runs `body` with a context, or returns 0 (failure) when none can be made.
    func withContext(_ body: (OpaquePointer) -> Int32) -> Int32 {
        let borrowed = idle.withLock { $0.popLast() }.flatMap { OpaquePointer(bitPattern: $0) } ?? make()
        guard let context = borrowed else {
            OpenSSLErrorQueue.clear()
            return 0
        }
        let result = body(context)
        let address = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(context)))
        idle.withLock { $0.append(address) }
        return result
    }

    /// Frees the idle contexts; called when the key goes away.
    func drain() {
        idle.withLock { contexts in
            for context in contexts { EVP_PKEY_CTX_free(OpaquePointer(bitPattern: context)) }
            contexts.removeAll()
        }
    }
}
