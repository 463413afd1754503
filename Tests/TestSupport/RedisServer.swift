import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` for tests, on a temporary directory: a Unix socket always, and a TCP
/// port on 127.0.0.1 when asked (cluster nodes need one). `tools/test` installs Redis.
public final class RedisServer: @unchecked Sendable {
    public let directory: URL
    public let socketPath: String
    /// The TCP port, when asked for one: chosen at random outside the ephemeral range, and
    /// chosen again when the server finds it taken (never probed and then released).
    public private(set) var port: Int?
    /// The TLS port, when `tls` gave the arguments for one (chosen like `port`).
    public private(set) var tlsPort: Int?
    private var arguments: [String] = []
    private var process: Process?

    public static let executable = "/usr/bin/redis-server"
    public static var installed: Bool { FileManager.default.isExecutableFile(atPath: executable) }

    /// Starts a server; `appendOnly` makes it durable across restarts (fsync always).
    /// `tls`, given a port, returns the `--tls-port` and certificate arguments to listen with.
    public init(tcp: Bool = false, cluster: Bool = false, appendOnly: Bool = false, extra: [String] = [], tls: ((Int) -> [String])? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        socketPath = "/tmp/redis-\(UUID().uuidString.prefix(8)).sock"
        for attempt in 1... {
            port = tcp || cluster ? Int.random(in: Self.portRange) : nil
            var arguments = ["--port", "\(port ?? 0)", "--bind", "127.0.0.1", "--unixsocket", socketPath, "--unixsocketperm", "700",
                             "--dir", directory.path, "--save", "", "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "always",
                             "--protected-mode", "no", "--loglevel", "warning", "--logfile", directory.appendingPathComponent("redis.log").path]
            if cluster {
                arguments += ["--cluster-enabled", "yes", "--cluster-config-file", directory.appendingPathComponent("nodes.conf").path,
                              "--cluster-node-timeout", "2000"]
            }
            tlsPort = tls.map { _ in Int.random(in: Self.portRange) }
            if let tls, let tlsPort { arguments += tls(tlsPort) }
            self.arguments = arguments + extra
            do {
                try start()
                return
            } catch let error as RedisServerError where error.addressInUse && attempt < 20 {
                // Someone else has the port (or the cluster bus port): another one.
                try? FileManager.default.removeItem(at: directory.appendingPathComponent("redis.log"))
                try? FileManager.default.removeItem(at: directory.appendingPathComponent("nodes.conf"))
            }
        }
    }

    /// Ports for TCP servers: below the kernel's ephemeral range (where connect() picks local
    /// ports, so nothing there is taken by chance), and leaving room for the cluster bus port
    /// (port + 10000) below it too.
    static let portRange: Range<Int> = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let ephemeralStart = text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
        let upper = max(ephemeralStart - 10000, 12000)
        return 10000..<upper
    }()

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
        let text = log
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
        throw RedisServerError("redis-server did not start: \(text.suffix(2000))", addressInUse: text.contains("Address already in use"))
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
    /// The server could not bind its TCP port (or its cluster bus port): taken by another process.
    public let addressInUse: Bool
    public init(_ description: String, addressInUse: Bool = false) {
        self.description = description
        self.addressInUse = addressInUse
    }
}
