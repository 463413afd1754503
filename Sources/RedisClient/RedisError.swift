/// Why a command got no usable reply. Every case means "the store could not answer": a caller
/// fails closed on any of them.
public enum RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    case connectionFailed(String)
    case connectionClosed
    case timeout
    /// Not connecting for now: the last attempts failed and the next waits out a backoff.
    case backingOff(String)
    case protocolViolation(String)
    /// Redis answered with an error reply.
    case server(String)
    case tooManyRedirections
    case clusterDown(String)

    public var description: String {
        switch self {
        case .connectionFailed(let reason): "cannot connect to Redis: \(reason)"
        case .connectionClosed: "the connection to Redis closed"
        case .timeout: "Redis did not answer in time"
        case .backingOff(let reason): "Redis unreachable, retrying shortly (last error: \(reason))"
        case .protocolViolation(let reason): "Redis sent a malformed reply: \(reason)"
        case .server(let message): "Redis error: \(message)"
        case .tooManyRedirections: "too many cluster redirections"
        case .clusterDown(let message): "Redis Cluster unavailable: \(message)"
        }
    }
}
