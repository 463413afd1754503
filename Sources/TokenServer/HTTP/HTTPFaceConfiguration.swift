import TokenCrypto

/// `--http-listen` and its companions: the HTTP face for proxies, resource servers and remote
/// verifiers (docs/http.md). Off while `listen` is empty.
public struct HTTPFaceConfiguration: Sendable, Hashable {
    /// Where to listen: Unix sockets (recommended) and TCP addresses.
    public var listen: [HTTPListenAddress] = []
    /// Cookie that holds the token when a request has no `Authorization: Bearer`.
    public var tokenCookie: String?
    /// Cookie that holds the refresh token: `/auth` then verifies or refreshes.
    public var refreshCookie: String?
    /// Attributes of the cookies `/auth` hands back after a refresh.
    public var cookieAttributes = "Path=/; HttpOnly; Secure; SameSite=Lax"
    /// Request headers whose values, joined with line feeds, make the fingerprint.
    public var fingerprintHeaders: [String] = []
    /// Whether `/auth` adds the claims set (`X-Tokend-Claims`, base64url JSON).
    public var claimsHeader = false
    /// When set, `/introspect` requires it as `Authorization: Bearer`.
    public var introspectSecret: Secret?

    public var isEnabled: Bool { !listen.isEmpty }

    /// The most one request head (request line and headers) may take.
    public static let maximumHeadBytes = 16 * 1024
    /// The most one request body may take.
    public static let maximumBodyBytes = 16 * 1024
    /// HTTP connections beyond this are closed at once.
    public static let maximumConnections = 1024

    public init() {}

    /// Bytes that never show in a description or a log line. The description is a short
    /// digest, so that a reload sees a changed secret (and names the setting, never the value).
    public struct Secret: Sendable, Hashable, CustomStringConvertible {
        public let bytes: [UInt8]
        public init(_ bytes: [UInt8]) { self.bytes = bytes }
        public var description: String {
            "<secret " + HashFunction.sha256.hash(bytes).prefix(4).map { String($0, radix: 16) }.joined() + ">"
        }
    }
}

/// One `--http-listen` address: `unix:PATH` or `HOST:PORT` (`[v6]:PORT`).
public enum HTTPListenAddress: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public init(parsing text: String) throws(ConfigurationError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard !path.isEmpty else { throw ConfigurationError("\"\(text)\": expected unix:PATH, such as unix:/run/tokend/http.sock") }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("\"\(text)\": expected unix:PATH or HOST:PORT, such as unix:/run/tokend/http.sock or 127.0.0.1:8081")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError("\"\(text)\": the host is missing (127.0.0.1:\(port) listens on loopback)") }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}
