import Foundation
import TestSupport

/// A real `tokend` process on a temporary state directory and socket, for end-to-end tests.
final class DaemonProcess: @unchecked Sendable {
    let stateDirectory: URL
    let socketPath: String
    let process: Process
    private let logFile: URL

    /// The directory holding the built executables (beside the test bundle).
    static let productsDirectory: URL = {
        let executable = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return executable.deletingLastPathComponent()
    }()

    static func executable(_ name: String) -> String { productsDirectory.appendingPathComponent(name).path }

    /// Starts tokend with `arguments` added to its temporary `--state-dir` and `--socket`, and
    /// waits until it accepts connections.
    init(_ arguments: [String] = [], stateDirectory: URL? = nil, socketPath: String? = nil, environment: [String: String] = [:]) throws {
        let directory = stateDirectory ?? Self.temporaryStateDirectory()
        self.stateDirectory = directory
        // Unix socket paths are limited to 108 bytes: keep it short, in /tmp.
        self.socketPath = socketPath ?? "/tmp/tokend-\(UUID().uuidString.prefix(8)).sock"
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-\(UUID().uuidString.prefix(8)).log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable("tokend"))
        process.arguments = ["--state-dir", directory.path, "--socket", self.socketPath] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = try FileHandle(forWritingTo: logFile)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try waitUntilListening()
        if stateDirectory != nil { ownsStateDirectory = false }
    }

    private func waitUntilListening() throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if !process.isRunning { throw DaemonError("tokend exited with \(process.terminationStatus) at start:\n\(log)") }
            if Self.accepts(socketPath) { return }
            usleep(20_000)
        }
        throw DaemonError("tokend did not start listening within 20 s:\n\(log)")
    }

    static func temporaryStateDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("tokend-e2e-\(UUID().uuidString.prefix(8))")
    }

    static func accepts(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnixAddress(path) { connect(fd, $0, $1) } == 0
    }

    /// Everything the daemon has logged so far.
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Waits until the log holds `text` `count` times or more (a poll, at most `seconds`);
    /// whether it did.
    func waitForLog(_ text: String, count: Int = 1, seconds: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if log.components(separatedBy: text).count - 1 >= count { return true }
            usleep(20_000)
        } while Date() < deadline
        return log.components(separatedBy: text).count - 1 >= count
    }

    /// The TCP ports this process listens on, read from /proc (its sockets' inodes, matched
    /// against the kernel's table of listening TCP sockets): how a test learns the port of
    /// `--metrics-listen 127.0.0.1:0`, which the kernel chose.
    func listeningTCPPorts() -> [Int] {
        let pid = process.processIdentifier
        let descriptors = "/proc/\(pid)/fd"
        var inodes = Set<Substring>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: descriptors)) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: descriptors + "/" + name),
                  target.hasPrefix("socket:[") else { continue }
            inodes.insert(target.dropFirst(8).dropLast())
        }
        var ports: [Int] = []
        for table in ["/proc/\(pid)/net/tcp", "/proc/\(pid)/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
            for line in text.split(separator: "\n").dropFirst() {
                let columns = line.split(separator: " ")
                guard columns.count > 9, columns[3] == "0A", inodes.contains(columns[9]),
                      let port = columns[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }) else { continue }
                ports.append(port)
            }
        }
        return ports
    }

    /// Waits until the daemon listens on a TCP port (it binds `--metrics-listen` after its
    /// socket); returns the port.
    func tcpPort(seconds: Double = 20) throws -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let port = listeningTCPPorts().first { return port }
            if !process.isRunning { throw DaemonError("tokend exited before listening on TCP:\n\(log)") }
            usleep(20_000)
        }
        throw DaemonError("tokend listened on no TCP port within \(seconds) s:\n\(log)")
    }

    /// SIGTERM, then wait for the exit; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    /// SIGKILL: a crash.
    func kill() {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Runs tokend expecting it to refuse to start; returns its exit status and output, or
    /// nil when it started serving after all (it is then stopped).
    /// With `socketPath` a live daemon's socket, only the exit tells: it is not waited for to accept.
    static func startFailure(stateDirectory: URL, socketPath: String? = nil, arguments: [String] = [],
                             environment: [String: String] = [:]) throws -> (status: Int32, output: String)? {
        let socket = socketPath ?? "/tmp/tokend-\(UUID().uuidString.prefix(8)).sock"
        let alreadyLive = accepts(socket)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable("tokend"))
        process.arguments = ["--state-dir", stateDirectory.path, "--socket", socket] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning, Date() < deadline {
            if !alreadyLive, accepts(socket) {
                process.terminate()
                process.waitUntilExit()
                unlink(socket)
                return nil
            }
            usleep(20_000)
        }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, text)
    }

    /// Runs a `tokenctl` daemon subcommand against this daemon (`--socket` is appended).
    func tokenctl(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        try runProcess(Self.executable("tokenctl"), arguments + ["--socket", socketPath])
    }

    /// Whether the state directory is removed with this object (not when a test passed it in).
    var ownsStateDirectory = true

    deinit {
        stop()
        try? FileManager.default.removeItem(at: logFile)
        if ownsStateDirectory { try? FileManager.default.removeItem(at: stateDirectory) }
        unlink(socketPath)
    }
}

struct DaemonError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
