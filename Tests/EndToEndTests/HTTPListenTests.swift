import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// The HTTP face on a real daemon (docs/http.md): what needs a process, the sockets it binds,
/// their modes, and their removal at shutdown. The routes themselves are tested in process
/// (TokenServerTests), and through a real nginx by tools/nginx/e2e-test.py.
@Suite struct HTTPListenTests {
    /// One HTTP/1.1 exchange over a connected socket, `Connection: close`: status, headers, body.
    static func exchange(_ fd: Int32, _ request: String) throws -> (status: Int, headers: String, body: String) {
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "") else {
            throw DaemonError("not an HTTP response: \(text.prefix(200))")
        }
        return (status, String(text[..<split.lowerBound]), String(text[split.upperBound...]))
    }

    static func unixRequest(_ path: String, _ request: String) throws -> (status: Int, headers: String, body: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        guard withUnixAddress(path, { connect(fd, $0, $1) }) == 0 else { throw DaemonError("cannot connect to \(path)") }
        return try exchange(fd, request)
    }

    static func tcpRequest(_ port: Int, _ request: String) throws -> (status: Int, headers: String, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        guard withLoopbackAddress(port: port, { connect(fd, $0, $1) }) == 0 else { throw DaemonError("cannot connect to 127.0.0.1:\(port)") }
        return try exchange(fd, request)
    }

    static func waitForSocket(_ path: String, _ daemon: DaemonProcess) throws {
        let deadline = Date().addingTimeInterval(20)
        while !DaemonProcess.accepts(path) {
            guard Date() < deadline, daemon.process.isRunning else { throw DaemonError("no HTTP socket at \(path):\n\(daemon.log)") }
            usleep(20_000)
        }
    }

    @Test func servesOnAUnixSocketAndLoopbackAndRemovesItsSocketAtStop() async throws {
        let httpSocket = "/tmp/tokend-http-\(UUID().uuidString.prefix(8)).sock"
        let daemon = try DaemonProcess(["--http-listen", "unix:\(httpSocket)", "--http-listen", "127.0.0.1:0",
                                        "--http-fingerprint-headers", "User-Agent", "--socket-mode", "0640"])
        defer { daemon.stop() }
        try Self.waitForSocket(httpSocket, daemon)
        var info = stat()
        #expect(stat(httpSocket, &info) == 0 && info.st_mode & 0o777 == 0o640, "the HTTP socket takes --socket-mode")

        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice", fingerprint: Array("probe/1".utf8)))
        await client.close()
        let token = try #require(issued.sessionToken)
        let auth = try Self.unixRequest(httpSocket, "GET /auth HTTP/1.1\r\nHost: t\r\nUser-Agent: probe/1\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
        #expect(auth.status == 204)
        #expect(auth.headers.contains("X-Tokend-Subject: alice") && auth.headers.contains("X-Tokend-Status: ok"))
        #expect(!auth.headers.contains(token))
        let other = try Self.unixRequest(httpSocket, "GET /auth HTTP/1.1\r\nHost: t\r\nUser-Agent: probe/2\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
        #expect(other.status == 401 && other.headers.contains("X-Tokend-Status: fingerprint_mismatch"))

        let port = try daemon.tcpPort()
        let health = try Self.tcpRequest(port, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(health.status == 200 && health.body == "ok\n")
        let overTCP = try Self.tcpRequest(port, "GET /auth HTTP/1.1\r\nHost: t\r\nUser-Agent: probe/1\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
        #expect(overTCP.status == 204, "a loopback peer may ask /auth")

        // The HTTP answers are counted with the daemon's metrics.
        let metricsClient = try await daemon.client()
        let metrics = try await metricsClient.metrics()
        await metricsClient.close()
        #expect(metrics.contains(#"tokend_http_requests_total{route="auth",code="204"} 2"#))
        #expect(metrics.contains(#"tokend_http_requests_total{route="auth",code="401"} 1"#))

        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: httpSocket), "the HTTP socket file is removed at stop")
    }

    @Test func badHTTPSettingsStopTheStartWithTheOptionNamed() throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [([String], String)] = [
            (["--http-token-cookie", "access"], "configures the HTTP face, which is off; add --http-listen"),
            (["--http-listen", "nonsense"], "expected unix:PATH or HOST:PORT"),
            (["--http-listen", "unix:"], "expected unix:PATH"),
            (["--http-listen", "unix:/tmp/x.sock", "--http-token-cookie", "bad name"], "is not a cookie name"),
            (["--http-listen", "unix:/tmp/x.sock", "--http-introspect-secret-file", "/nonexistent/secret"], "cannot read /nonexistent/secret"),
        ]
        for (arguments, message) in cases {
            let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: arguments), "\(arguments) started")
            #expect(failure.status != 0)
            #expect(failure.output.contains(message), "\(arguments): \(failure.output)")
        }
    }

    @Test func aLiveHTTPSocketIsNotTakenOver() async throws {
        let httpSocket = "/tmp/tokend-http-\(UUID().uuidString.prefix(8)).sock"
        let first = try DaemonProcess(["--http-listen", "unix:\(httpSocket)"])
        defer { first.stop() }
        try Self.waitForSocket(httpSocket, first)
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: ["--http-listen", "unix:\(httpSocket)"]))
        #expect(failure.status != 0 && failure.output.contains("another tokend is already serving on \(httpSocket)"), "\(failure.output)")
        // The first daemon still answers on it.
        #expect(try Self.unixRequest(httpSocket, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status == 200)
    }
}
