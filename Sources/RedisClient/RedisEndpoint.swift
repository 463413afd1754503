/// Where a Redis node listens.
public enum RedisAddress: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): path
        }
    }

    /// Parses `host:port` as Redis writes it in MOVED, ASK and CLUSTER SLOTS replies.
    static func parse(hostPort: String) -> RedisAddress? {
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]) else { return nil }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .tcp(host: host, port: port)
    }
}

/// What `--store redis://...` names: `redis://[USER@]HOST[:PORT][/DB]`, the same over TLS as
/// `rediss://...`, or `redis+unix://[USER@]/PATH[?db=DB]`. A password never goes in the URL (it
/// would show in `ps`): it comes from a file or the environment.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var address: RedisAddress
    public var database: Int
    public var user: String?
    /// `rediss://`: every connection (to every cluster node) speaks TLS.
    public var tls: Bool

    public init(address: RedisAddress, database: Int = 0, user: String? = nil, tls: Bool = false) {
        self.address = address
        self.database = database
        self.user = user
        self.tls = tls
    }

    public init(url: String) throws(RedisEndpointError) {
        let unix: Bool
        var tls = false
        var rest: Substring
        if url.hasPrefix("redis://") {
            unix = false
            rest = url.dropFirst("redis://".count)
        } else if url.hasPrefix("rediss://") {
            unix = false
            tls = true
            rest = url.dropFirst("rediss://".count)
        } else if url.hasPrefix("redis+unix://") {
            unix = true
            rest = url.dropFirst("redis+unix://".count)
        } else {
            throw RedisEndpointError("\(url): a Redis store is redis://HOST:PORT[/DB], rediss://HOST:PORT[/DB] (TLS) or redis+unix:///PATH")
        }
        var user: String?
        if let at = rest.firstIndex(of: "@") {
            let userInfo = rest[..<at]
            guard !userInfo.contains(":") else {
                throw RedisEndpointError("put the Redis password in --redis-password-file or TOKEND_REDIS_PASSWORD, not in the URL, where ps shows it")
            }
            user = userInfo.isEmpty ? nil : String(userInfo)
            rest = rest[rest.index(after: at)...]
        }
        var database = 0
        if unix {
            if let question = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: question)...]
                guard query.hasPrefix("db="), let db = Int(query.dropFirst(3)), db >= 0 else { throw RedisEndpointError("\(url): the only query is ?db=N") }
                database = db
                rest = rest[..<question]
            }
            guard rest.hasPrefix("/"), rest.count > 1 else { throw RedisEndpointError("\(url): redis+unix:// needs an absolute socket path") }
            self.init(address: .unix(path: String(rest)), database: database, user: user)
            return
        }
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else { throw RedisEndpointError("\(url): the database is a number, as in redis://host:6379/2") }
                database = number
            }
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65535).contains(number) else { throw RedisEndpointError("\(url): bad port") }
            port = number
            host = String(rest[..<colon])
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw RedisEndpointError("\(url): no host") }
        self.init(address: .tcp(host: host, port: port), database: database, user: user, tls: tls)
    }

    public var description: String {
        let user = user.map { "\($0)@" } ?? ""
        switch address {
        case .tcp: return "\(tls ? "rediss" : "redis")://\(user)\(address)/\(database)"
        case .unix(let path): return "redis+unix://\(user)\(path)" + (database == 0 ? "" : "?db=\(database)")
        }
    }
}

public struct RedisEndpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
