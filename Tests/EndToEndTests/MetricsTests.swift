import Foundation
import NIOConcurrencyHelpers
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
        let response = try HTTPListenTests.tcpRequest(port, "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return (response.status, response.body)
    }

    @Test func scrapedMetricsCountWhatHappened() async throws {
        // Port 0: the kernel picks a free port, read back from /proc (no port probed and released).
        // A window of 10 s covers the repeat however long a machine busy with other tests takes
        // to send it; the rule itself is checked to the millisecond in TokenServerTests. No
        // grace: past the window the repeat is reuse.
        let daemon = try DaemonProcess(["--metrics-listen", "127.0.0.1:0", "--dedup-window", "10s", "--rotation-grace", "0s", "--fsync", "always"])
        let port = try daemon.tcpPort()
        let client = try await daemon.client()
        let session = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        for _ in 0..<5 { _ = try await client.verify(token: session.sessionToken!) }
        #expect(await refusal { try await client.verify(token: "x.y.z") } == .malformedToken)
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "bob"))
        let rotated = try await client.refresh(token: pair.refreshToken!)
        let repeated = try await client.refresh(token: pair.refreshToken!)
        let rotatedBy = wallClock()
        #expect(rotated == repeated)
        // Past the window: the daemon recorded the rotation no later than this.
        try await sleep(until: rotatedBy + 10.1)
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

        #expect(try Self.get(port: port, path: "/other").status == 404)
        // The same text through the protocol, for node_exporter's textfile collector.
        let text = try daemon.tokenctl(["stats", "--prometheus"])
        #expect(text.status == 0)
        let viaProtocol = try Self.parse(text.output)
        #expect(viaProtocol.contains { $0.name == "tokend_requests_total" && $0.labels == ["op": "verify", "status": "ok"] && $0.value == 5 })
        await client.close()
    }

    /// The value of an unlabelled sample in the daemon's metrics, through the protocol.
    static func metric(_ client: TokenClient, _ name: String) async throws -> Double? {
        try parse(try await client.metrics()).first { $0.name == name && $0.labels.isEmpty }?.value
    }

    /// `tokend_journal_fsync_duration_seconds` counts the journal syncs that requests cause,
    /// following the policy: one per change under `--fsync always` (each sequential request
    /// waits for its own), none under `--fsync no`. (The journal header every start writes
    /// and syncs is not such a sync: the count is measured from after the start.)
    @Test(arguments: ["always", "no"])
    func theFsyncMetricCountsTheSyncsOfRequestsUnderEachPolicy(_ policy: String) async throws {
        // No snapshot during the test: a snapshot's journal switch syncs too.
        let daemon = try DaemonProcess(["--fsync", policy, "--snapshot-interval", "0", "--snapshot-changes", "0"])
        let client = try await daemon.client()
        let name = "tokend_journal_fsync_duration_seconds_count"
        let before = try #require(try await Self.metric(client, name), "no \(name) in the metrics")
        for index in 0..<20 { _ = try await client.issue(IssueRequest(mode: .session, subject: "u\(index)")) }
        let after = try #require(try await Self.metric(client, name))
        switch policy {
        case "always": #expect(after - before >= 20, "20 changes under --fsync always: \(before) -> \(after) fsyncs")
        default: #expect(after - before == 0, "20 changes under --fsync no: \(before) -> \(after) fsyncs")
        }
        await client.close()
    }

    /// Every metric name in README's metrics table, expanded from its `..._suffix` shorthand
    /// (the cell's first name without its last word, or last two for a `_total`, is the stem).
    static func readmeMetricNames() throws -> [(name: String, shared: Bool)] {
        let readme = try String(contentsOf: FuzzCorpusTests.root.appendingPathComponent("README.md"), encoding: .utf8)
        let table = try #require(readme.range(of: "| metric | type | meaning |"), "README has no metrics table")
        var names: [(String, Bool)] = []
        for line in readme[table.upperBound...].split(separator: "\n").dropFirst() {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false)
            guard cells.count > 3 else { continue }
            let shared = cells[3].contains("shared store")
            var stem = ""
            for match in cells[1].matches(of: /`([^`{]+)(\{[^}]*\})?`/) {
                let written = String(match.1)
                if written.hasPrefix("...") {
                    names.append((stem + written.dropFirst(3), shared))
                } else {
                    let words = written.split(separator: "_")
                    stem = words.dropLast(written.hasSuffix("_total") ? 2 : 1).joined(separator: "_")
                    names.append((written, shared))
                }
            }
        }
        return names
    }

    /// Whether `name` appears in the text: as a sample (a histogram's `_bucket`, `_count` or
    /// `_sum` too) or a `# TYPE` line.
    static func exports(_ samples: [Sample], _ text: String, _ name: String) -> Bool {
        samples.contains { [name, name + "_bucket", name + "_count", name + "_sum"].contains($0.name) }
            || text.contains("# TYPE \(name) ")
    }

    @Test func everyMetricREADMEListsIsExported() async throws {
        let names = try Self.readmeMetricNames()
        #expect(names.count >= 28, "README's table was read: \(names.map(\.name))")
        #expect(names.contains { $0.name == "tokend_verified_cache_hit_ratio" } && names.contains { $0.name == "tokend_store_redis_redirections_total" })

        // The embedded store, after traffic of every kind the table counts (the HTTP face's
        // too) and a snapshot.
        let httpSocket = "/tmp/tokend-http-\(UUID().uuidString.prefix(8)).sock"
        let daemon = try DaemonProcess(["--fsync", "always", "--dedup-window", "0s", "--rotation-grace", "0s", "--http-listen", "unix:\(httpSocket)"])
        try HTTPListenTests.waitForSocket(httpSocket, daemon)
        #expect(try HTTPListenTests.unixRequest(httpSocket, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status == 200)
        let client = try await daemon.client()
        let session = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        for _ in 0..<2 { _ = try await client.verify(token: session.sessionToken!) }
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "bob", idempotencyKey: .text("k")))
        _ = try await client.issue(IssueRequest(mode: .pair, subject: "bob", idempotencyKey: .text("k")))
        _ = try await client.refresh(token: pair.refreshToken!)
        #expect(await refusal { try await client.refresh(token: pair.refreshToken!) } == .reuseDetected)
        _ = try await client.snapshot()
        let text = try await client.metrics()
        let samples = try Self.parse(text)
        for (name, shared) in names where !shared {
            let exported = Self.exports(samples, text, name)
            #expect(exported, "README lists \(name); the embedded daemon does not export it")
        }
        await client.close()

        // A shared store: its rows, first on a healthy store...
        guard RedisServer.installed else { return }
        let store = try SharedStore(.single, daemons: 1)
        let server = try #require(store.server)
        let redisClient = try await store.daemons[0].client()
        _ = try await redisClient.issue(IssueRequest(mode: .session, subject: "carol"))
        let healthyText = try await redisClient.metrics()
        let healthySamples = try Self.parse(healthyText)
        // Counters still at zero are exported too (at 0), as README lists them.
        for (name, shared) in names where shared {
            #expect(Self.exports(healthySamples, healthyText, name), "README lists \(name); the shared-store daemon does not export it")
        }
        // ...then after a call that failed while Redis was down.
        server.stop(kill: true)
        #expect(await refusal { try await redisClient.issue(IssueRequest(mode: .session, subject: "carol")) } == .storeUnavailable)
        try server.start()
        var healthy = false
        let deadline = Date().addingTimeInterval(20)
        while !healthy, Date() < deadline {
            healthy = (try? await redisClient.issue(IssueRequest(mode: .session, subject: "carol"))) != nil
        }
        #expect(healthy, "the daemon did not reconnect to Redis")
        let redisText = try await redisClient.metrics()
        let redisSamples = try Self.parse(redisText)
        let failuresExported = Self.exports(redisSamples, redisText, "tokend_store_redis_failures_total")
        #expect(failuresExported, "failures are counted once there are some")
        await redisClient.close()
    }
}

@Suite struct TopAndCompletionTests {
    @Test func topPrintsPlainLinesWhenNotOnATerminal() async throws {
        let daemon = try DaemonProcess()
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "alice"))
        // Load while top samples: verifies keep coming for the whole run, from a thread of their
        // own (a task could wait for seconds while tests running in parallel hold the few
        // threads tasks run on).
        let verify = Request(opcode: .verify, id: 1, fields: TokenRequest(token: try #require(issued.sessionToken)).fields)
        let stop = NIOLockedValueBox(false)
        let stopped = DispatchSemaphore(value: 0)
        let socketPath = daemon.socketPath
        Thread.detachNewThread {
            defer { stopped.signal() }
            guard let connection = try? RawConnection(socketPath) else { return }
            while !stop.withLockedValue({ $0 }) {
                connection.send(verify)
                guard (try? connection.readResponse()) != nil else { return }
            }
        }
        let top = try daemon.tokenctl(["top", "--interval", "0.5", "--count", "3"])
        stop.withLockedValue { $0 = true }
        stopped.wait()
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
