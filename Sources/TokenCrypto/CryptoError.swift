internal import COpenSSL

/// An error from the cryptography layer: an opaque code to compare, and a human reason.
///
/// Errors raised by OpenSSL carry the drained OpenSSL error queue as their reason, so that a
/// failure explains itself ("error:1E08010C:DECODER routines::unsupported") instead of "-1".
public struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }

        /// OpenSSL refused an operation; the reason holds its error queue.
        public static let openSSL = Code("openssl")
        /// Key material is malformed, of the wrong kind, or too weak.
        public static let invalidKey = Code("invalid_key")
        /// A signature has the wrong shape (length, encoding) for its algorithm.
        public static let invalidSignature = Code("invalid_signature")
        /// The key cannot perform the operation (a public key asked to sign).
        public static let unsupportedOperation = Code("unsupported_operation")
        /// Sealed data does not authenticate: a wrong key or associated data, a changed byte,
        /// or input too short to hold a nonce and a tag.
        public static let authenticationFailure = Code("authentication_failure")

        public var description: String { name }
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }

    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// An error for a failed OpenSSL call, its reason the drained error queue.
    static func openSSL(_ operation: String) -> CryptoError {
        let queue = OpenSSLErrorQueue.drain()
        return CryptoError(.openSSL, queue.isEmpty ? "\(operation) failed" : "\(operation) failed: \(queue)")
    }
}

enum OpenSSLErrorQueue {
    /// Empties this thread's OpenSSL error queue and returns its entries joined.
    static func drain() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return reasons.joined(separator: "; ")
    }

    /// Forgets queued errors after an expected failure (a signature that does not verify).
    static func clear() { ERR_clear_error() }
}
