import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` for tests, on a temporary directory: a Unix socket always, and a TCP
/// port on 127.0.0.1 when asked (cluster nodes need one). `tools/test` installs Redis.
public final class RedisServer: @unchecked Sendable {
    public let directory: URL
    public let socketPath: String
    public let port: Int?
    private let arguments: [String]
    private var process: Process?

    public static let executable = "/usr/bin/redis-server"
    public static var installed: Bool { FileManager.default.isExecutableFile(atPath: executable) }

    /// Starts a server; `appendOnly` makes it durable across restarts (fsync always).
    public init(tcp: Bool = false, cluster: Bool = false, appendOnly: Bool = false, extra: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        socketPath = "/tmp/redis-\(UUID().uuidString.prefix(8)).sock"
        port = tcp || cluster ? try Self.freePort() : nil
        var arguments = ["--port", "\(port ?? 0)", "--bind", "127.0.0.1", "--unixsocket", socketPath, "--unixsocketperm", "700",
                         "--dir", directory.path, "--save", "", "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "always",
                         "--protected-mode", "no", "--loglevel", "warning", "--logfile", directory.appendingPathComponent("redis.log").path]
        if cluster {
            arguments += ["--cluster-enabled", "yes", "--cluster-config-file", directory.appendingPathComponent("nodes.conf").path,
                          "--cluster-node-timeout", "2000"]
        }
        self.arguments = arguments + extra
        try start()
    }

    public var url: String { port.map { "redis://127.0.0.1:\($0)" } ?? "redis+unix://\(socketPath)" }
    public var unixURL: String { "redis+unix://\(socketPath)" }

    /// Starts (again) with the same settings and data directory; waits until it answers.
    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = arguments
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            guard process.isRunning else { break }
            // A password-protected server answers NOAUTH: it is up too.
            if let reply = try? cli(["PING"]), reply.contains("PONG") || reply.contains("NOAUTH") { return }
            usleep(20_000)
        }
        throw RedisServerError("redis-server did not start: \(log.suffix(2000))")
    }

    /// Stops the server: SIGKILL when `kill`, else a SHUTDOWN command (which syncs the
    /// append-only file); waits for the exit. Not SIGTERM: a child of the test process
    /// inherits its blocked signal mask, and would never see it.
    public func stop(kill: Bool = false) {
        guard let process, process.isRunning else { return }
        if !kill {
            _ = try? cli(["SHUTDOWN"])
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning, Date() < deadline { usleep(10_000) }
        }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
    }

    /// `redis-cli` against this server's socket; returns its output.
    @discardableResult
    public func cli(_ arguments: [String]) throws -> String {
        let result = try runProcess("/usr/bin/redis-cli", ["-s", socketPath] + arguments)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public var log: String { (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? "" }

    deinit {
        stop(kill: true)
        try? FileManager.default.removeItem(at: directory)
        unlink(socketPath)
    }

    /// A TCP port nothing listens on now, below 50000: a cluster node also listens on its
    /// port + 10000.
    public static func freePort() throws -> Int {
        for _ in 0..<100 {
            let port = Int.random(in: 20000..<50000)
            if portIsFree(port) && portIsFree(port + 10000) { return port }
        }
        throw RedisServerError("cannot find a free port")
    }

    private static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return withLoopbackAddress(port: port) { bind(fd, $0, $1) } == 0
    }
}

/// Three masters, no replicas, all 16384 slots assigned: the smallest real Redis Cluster.
public final class RedisCluster: @unchecked Sendable {
    public let masters: [RedisServer]

    public init() throws {
        masters = try (0..<3).map { _ in try RedisServer(cluster: true) }
        let nodes = masters.map { "127.0.0.1:\($0.port!)" }
        let created = try runProcess("/usr/bin/redis-cli", ["--cluster", "create"] + nodes + ["--cluster-replicas", "0", "--cluster-yes"])
        guard created.status == 0 else { throw RedisServerError("redis-cli --cluster create failed: \(created.output) \(created.error)") }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if try masters.allSatisfy({ try $0.cli(["CLUSTER", "INFO"]).contains("cluster_state:ok") }) { return }
            usleep(50_000)
        }
        throw RedisServerError("the cluster did not reach cluster_state:ok within 20 s")
    }

    /// A seed URL: any one master; the client finds the others.
    public var url: String { masters[0].url }

    /// The master serving `slot`, and its node id.
    public func owner(of slot: Int) throws -> (server: RedisServer, id: String) {
        for server in masters {
            let id = try server.cli(["CLUSTER", "MYID"])
            let nodes = try server.cli(["CLUSTER", "NODES"])
            for line in nodes.split(separator: "\n") where line.contains("myself") {
                let fields = line.split(separator: " ")
                for range in fields.dropFirst(8) {
                    let bounds = range.split(separator: "-").compactMap { Int($0) }
                    if bounds.count == 2, (bounds[0]...bounds[1]).contains(slot) { return (server, id) }
                    if bounds.count == 1, bounds[0] == slot { return (server, id) }
                }
            }
        }
        throw RedisServerError("no master serves slot \(slot)")
    }
}

public struct RedisServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
