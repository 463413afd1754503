import Foundation
import TestSupport
import Testing
import TokenClient
import TokenProtocol

/// The Prometheus metrics, scraped over HTTP from the real daemon and through tokenctl.
@Suite struct MetricsTests {
    /// One sample line of the text format: name, labels, value.
    struct Sample: Hashable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// Parses the Prometheus text format strictly enough to catch a malformed line.
    static func parse(_ text: String) throws -> [Sample] {
        var samples: [Sample] = []
        let line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([-+0-9.eE]+|\+Inf|NaN)$/
        let label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/
        for raw in text.split(separator: "\n") {
            if raw.hasPrefix("# TYPE ") || raw.hasPrefix("# HELP ") { continue }
            guard let match = raw.wholeMatch(of: line) else { throw DaemonError("not a Prometheus sample line: \(raw)") }
            var labels: [String: String] = [:]
            if let set = match.2 { for pair in set.matches(of: label) { labels[String(pair.1)] = String(pair.2) } }
            guard let value = Double(match.3) ?? (match.3 == "+Inf" ? .infinity : nil) else { throw DaemonError("bad value: \(raw)") }
            samples.append(Sample(name: String(match.1), labels: labels, value: value))
        }
        return samples
    }

    /// A plain HTTP/1.1 GET over a TCP socket: status line and body.
    static func get(port: Int, path: String) throws -> (status: Int, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let connected = withLoopbackAddress(port: port) { connect(fd, $0, $1) }
        guard connected == 0 else { throw DaemonError("cannot connect to 127.0.0.1:\(port)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
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
        return (status, String(text[split.upperBound...]))
    }

    @Test func scrapedMetricsCountWhatHappened() async throws {
        let port = try RedisServer.freePort()
        let daemon = try DaemonProcess(["--metrics-listen", "127.0.0.1:\(port)", "--dedup-window", "1s", "--fsync", "always"])
        let client = try await daemon.client()
        let session = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        for _ in 0..<5 { _ = try await client.verify(token: session.sessionToken!) }
        #expect(await refusal { try await client.verify(token: "x.y.z") } == .malformedToken)
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "bob"))
        let rotated = try await client.refresh(token: pair.refreshToken!)
        let repeated = try await client.refresh(token: pair.refreshToken!)
        #expect(rotated == repeated)
        try await Task.sleep(for: .milliseconds(2100))
        #expect(await refusal { try await client.refresh(token: pair.refreshToken!) } == .reuseDetected)
        _ = try await client.snapshot()

        let (status, body) = try Self.get(port: port, path: "/metrics")
        #expect(status == 200)
        let samples = try Self.parse(body)
        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }
        #expect(value("tokend_requests_total", ["op": "verify", "status": "ok"]) == 5)
        #expect(value("tokend_requests_total", ["op": "verify", "status": "malformed_token"]) == 1)
        #expect(value("tokend_requests_total", ["op": "refresh", "status": "reuse_detected"]) == 1)
        #expect(value("tokend_dedup_hits_total") == 1)
        #expect(value("tokend_reuse_detected_total") == 1)
        #expect(value("tokend_sessions_active") == 1)
        #expect(value("tokend_revoked") == 1, "the family revoked by the reuse")
        #expect(value("tokend_connections") == 1)
        #expect(value("tokend_verified_cache_hits_total") ?? 0 >= 4)
        #expect(value("tokend_snapshot_records") != nil && value("tokend_snapshot_age_seconds") != nil)
        // Histograms: cumulative buckets ending at +Inf, which equals the count.
        let buckets = samples.filter { $0.name == "tokend_request_duration_seconds_bucket" && $0.labels["op"] == "verify" }
        #expect(buckets.count == 14)
        #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value })
        #expect(buckets.last?.labels["le"] == "+Inf" && buckets.last?.value == 6)
        #expect(value("tokend_request_duration_seconds_count", ["op": "verify"]) == 6)
        #expect(value("tokend_journal_fsync_duration_seconds_count") ?? 0 >= 1, "--fsync always syncs before replying")

        #expect(try Self.get(port: port, path: "/other").status == 404)
        // The same text through the protocol, for node_exporter's textfile collector.
        let text = try daemon.tokenctl(["stats", "--prometheus"])
        #expect(text.status == 0)
        let viaProtocol = try Self.parse(text.output)
        #expect(viaProtocol.contains { $0.name == "tokend_requests_total" && $0.labels == ["op": "verify", "status": "ok"] && $0.value == 5 })
        await client.close()
    }
}

@Suite struct TopAndCompletionTests {
    @Test func topPrintsPlainLinesWhenNotOnATerminal() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        // Load while top samples: verifies keep coming for the whole run.
        let load = Task {
            while !Task.isCancelled { _ = try? await client.verify(token: issued.sessionToken!) }
        }
        let top = try daemon.tokenctl(["top", "--interval", "0.5", "--count", "3"])
        load.cancel()
        _ = await load.result
        #expect(top.status == 0, "\(top.error)")
        let lines = top.output.split(separator: "\n")
        #expect(lines.count == 4, "a header and three samples: \(top.output)")
        #expect(lines.first?.contains("ops/s") == true && lines.first?.contains("p99 ms") == true)
        let samples = lines.dropFirst().map { $0.split(separator: " ") }
        for columns in samples {
            #expect(columns.count == 9, "\(columns)")
            #expect(columns.count == 9 && columns[6] == "1", "one session: \(columns)")
        }
        #expect(samples.contains { $0.count == 9 && (Double($0[3]) ?? 0) > 0 }, "verifies per second are counted: \(top.output)")
        #expect(!top.output.contains("\u{1B}"), "no terminal escapes in plain output")
        await client.close()
    }

    @Test func shellCompletionsComeFromTheArgumentParser() throws {
        for (tool, word) in [("tokenctl", "top"), ("tokend", "metrics-listen")] {
            for shell in ["bash", "zsh", "fish"] {
                let script = try runProcess(DaemonProcess.executable(tool), ["--generate-completion-script", shell])
                #expect(script.status == 0)
                #expect(script.output.contains(word), "\(tool) \(shell) completion names \(word)")
            }
        }
    }
}
