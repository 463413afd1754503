import NIOCore
import TokenProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a `TokenClient` call failed.
///
/// Compare errors by ``code``; ``status`` and ``message`` say more. A refusal by the daemon
/// (any status but `ok` and `renewed`) has code ``Code/refused`` and carries the status and
/// the response's `message` field.
///
///     do {
///         let outcome = try await client.verify(token: token)
///     } catch let error as TokenClientError where error.code == .refused {
///         print(error.status?.name ?? "", error.message)
///     }
public struct TokenClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure: an open set of values, compared with `==`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case refused
            case unreachable
            case connectionClosed
            case protocolViolation
        }

        private let backing: Backing

        private init(_ backing: Backing) { self.backing = backing }

        /// The daemon answered with a status other than `ok` or `renewed`; or, with status
        /// `too_large`, the client did not send a request above the daemon's `max_frame_size`
        /// (known once ``TokenClient/hello(clientName:)`` has been called).
        public static let refused = Code(.refused)
        /// The socket could not be connected to (no daemon, wrong path, no permission).
        public static let unreachable = Code(.unreachable)
        /// The connection ended (or failed) before the response arrived.
        public static let connectionClosed = Code(.connectionClosed)
        /// The daemon sent something the protocol does not allow; the connection is closed.
        public static let protocolViolation = Code(.protocolViolation)

        /// Lower snake case, like the protocol's status names.
        public var description: String {
            switch backing {
            case .refused: "refused"
            case .unreachable: "unreachable"
            case .connectionClosed: "connection_closed"
            case .protocolViolation: "protocol_violation"
            }
        }
    }

    /// The kind of failure.
    public let code: Code
    /// The daemon's status, for refusals (and for a connection the daemon closed after an error reply).
    public let status: Status?
    /// The daemon's `message` field for refusals; otherwise what went wrong, in words.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, status: Status? = nil, message: String) {
        self.code = code
        self.status = status
        self.message = message
    }

    /// Errors are equal when their codes are.
    public static func == (lhs: TokenClientError, rhs: TokenClientError) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        var text = code.description
        if let status { text += " (\(status.name))" }
        if !message.isEmpty { text += ": \(message)" }
        return text
    }
}

extension TokenClientError {
    static func refused(_ response: Response) -> TokenClientError {
        TokenClientError(.refused, status: response.status, message: response.message ?? "")
    }

    static func connectionClosed(_ message: String, status: Status? = nil) -> TokenClientError {
        TokenClientError(.connectionClosed, status: status, message: message)
    }

    static func protocolViolation(_ message: String) -> TokenClientError {
        TokenClientError(.protocolViolation, message: message)
    }
}

extension TokenClientError {
    /// An underlying NIO or system error in words: `strerror` text for system calls.
    static func reason(for error: any Error) -> String {
        switch error {
        case let error as IOError:
            String(cString: strerror(error.errnoCode))
        case ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed:
            "the connection is closed"
        case SocketAddressError.unixDomainSocketPathTooLong:
            "the path is too long for a Unix domain socket"
        default:
            "\(error)"
        }
    }
}
