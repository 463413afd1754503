import ArgumentParser
import TokenClient
import TokenProtocol

/// `tokenctl bench`: a load generator in the manner of `redis-benchmark`.
struct BenchCommand: AsyncParsableCommand {
    static let defaultRequests = 100_000
    /// Connections opened concurrently during setup. Many more at once can overflow tokend's
    /// listen backlog (256), and a Unix socket then refuses with EAGAIN.
    static let connectsAtOnce = 64

    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test tokend: many connections, pipelined requests, throughput and latency percentiles.",
        discussion: """
        Each connection is its own client and keeps -P requests in flight: as soon as one is \
        answered the next is sent. The run ends when -n requests in all have completed \
        (\(defaultRequests) by default) or, with --duration, when that time has passed and the \
        requests in flight are answered. Setup (connecting, issuing the tokens below) happens \
        before the clock starts. A progress line goes to stderr every second.

        --op ping: pings. verify: verifies one sliding-session token, issued during setup for \
        subject "bench". issue: issues a new session per request, for subject "bench-N" where N \
        numbers the lane (connection x pipeline slot); each stays in the daemon's state until \
        it goes idle. refresh: every lane (so -P per connection) rotates its own family, issued \
        during setup for subject "bench", presenting the refresh token its previous refresh \
        returned; a refused refresh starts a new family. mix: 80% verify, 10% issue, 10% \
        refresh. Every op but ping issues tokens, which needs tokend's issue role.

        --ttl-renew (verify, mix) issues the verified session with a \(BenchPlan.renewingSessionTTL)s \
        idle TTL, so that verifies take the renew path (status renewed, a journal write) \
        whenever less than tokend's --renew-below is left. tokend's --renew-below must then be \
        more than \(BenchPlan.renewingSessionTTL)s (its default 1h is), or the session goes \
        idle and verifies fail with session_expired. Each renewal moves the idle expiry by \
        tokend's --renew-by: with the defaults (1h, 1h) the first verify renews and one more a \
        few seconds later; start tokend with --renew-below 3s --renew-by 1s for one renewal \
        per second throughout. (Not 1s: tokend counts whole seconds, and a 1s session issued \
        late in a second could be idle by the first verify.)

        Latency is measured per request from send to answer, recorded in microseconds \
        (HdrHistogram, 3 significant digits) and shown in milliseconds. A request fails when \
        tokend answers anything but ok or renewed, or the connection ends; failures are \
        counted by status name.

        --near-cache (--op verify): one client with a near cache (proto-spec 12.16) verifies \
        one session token -n times (default 1000000) in one task; all but the first are \
        answered locally. Prints verifies/s and this process's CPU time per verify. -c and -P \
        do not apply.

        Exit status: 0 when every request succeeded, 1 when any failed, 2 on usage errors, \
        3 when tokend cannot be reached.
        """
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    @Option(name: [.customShort("c"), .long], help: "Connections, each its own client.")
    var connections = 50

    @Option(name: [.customShort("P"), .long], help: "Requests each connection keeps in flight.")
    var pipeline = 1

    @Option(name: [.customShort("n"), .customLong("requests")],
            help: ArgumentHelp("Requests in all (default \(defaultRequests)).", valueName: "requests"))
    var requests: Int?

    @Option(help: ArgumentHelp("Run for this long instead of a number of requests (500ms, 10s, 2m).", valueName: "duration"),
            transform: BenchCommand.nanoseconds)
    var duration: UInt64?

    @Option(help: "What every request does.")
    var op: BenchOperation = .ping

    @Option(help: "The client fingerprint tokens are bound to and presented with (sent as UTF-8 bytes).")
    var fingerprint: String?

    @Flag(help: "Issue the verified session with a \(BenchPlan.renewingSessionTTL)s idle TTL so that verifies renew it (see below).")
    var ttlRenew = false

    @Option(name: .customLong("issued-lifetime"), help: "Maximum lifetime of the logins this run issues (issue, refresh, mix), e.g. 60s; default the daemon's. Keeps a long run's state bounded.",
            transform: { text in
                guard let seconds = DurationText.seconds(text), seconds > 0 else { throw ValidationError("--issued-lifetime takes whole seconds, e.g. 60s") }
                return UInt64(seconds)
            })
    var issuedLifetime: UInt64?

    @Flag(help: "With --op verify: one client with a near cache verifies one token over and over, in one task (see below).")
    var nearCache = false

    @Option(help: "The near cache's mode: read-your-revocations (a non-blocking read before each cached answer) or as-delivered.")
    var nearCacheMode: NearCacheModeArgument = .readYourRevocations

    func validate() throws {
        guard connections >= 1 else { throw ValidationError("-c/--connections must be at least 1") }
        guard pipeline >= 1 else { throw ValidationError("-P/--pipeline must be at least 1") }
        if let requests, requests < 1 { throw ValidationError("-n/--requests must be at least 1") }
        if requests != nil, duration != nil { throw ValidationError("give -n/--requests or --duration, not both") }
        if ttlRenew, !op.verifies { throw ValidationError("--ttl-renew applies to --op verify and --op mix") }
        if nearCache, op != .verify { throw ValidationError("--near-cache applies to --op verify") }
        if nearCache, ttlRenew { throw ValidationError("--near-cache and --ttl-renew exclude each other: a session that renews on every verify is never cached") }
        if nearCache, duration != nil { throw ValidationError("--near-cache runs -n/--requests verifies, not --duration") }
        if let fingerprint, fingerprint.utf8.count > FieldLimits.fingerprint {
            throw ValidationError("--fingerprint must be at most \(FieldLimits.fingerprint) bytes")
        }
    }

    func run() async throws {
        if nearCache {
            let bench = NearCacheBench(socket: options.socket, mode: nearCacheMode.mode, requests: requests ?? 1_000_000,
                                       fingerprint: Array((fingerprint ?? "").utf8))
            do {
                NearCacheBench.print(try await bench.run(), json: options.json)
            } catch let error as TokenClientError {
                throw options.report(error)
            }
            return
        }
        var plan = BenchPlan(
            operation: op, connections: connections, pipeline: pipeline,
            fingerprint: Array((fingerprint ?? "").utf8),
            sessionTTL: ttlRenew ? BenchPlan.renewingSessionTTL : nil
        )
        plan.issuedLifetime = issuedLifetime
        let clients = try await connect()
        let lanes: [[BenchLane]]
        do {
            lanes = try await plan.makeLanes(on: clients)
        } catch {
            await close(clients)
            guard let error = error as? TokenClientError else { throw error }
            throw options.report(error)
        }

        // ping and verify send one request over and over: they run on raw event-loop lanes,
        // so that the load generator costs as little per request as it can.
        let fixedRequest = try await plan.fixedRequest(on: clients)
        let control = BenchControl(limit: duration == nil ? requests ?? Self.defaultRequests : nil, duration: duration)
        let raw: RawDriver?
        if let fixedRequest {
            raw = try await RawDriver.connect(socket: options.socket, connections: connections, pipeline: pipeline,
                                              request: fixedRequest, control: control)
        } else {
            raw = nil
        }
        let progress = BenchProgress(operation: op)
        let start = BenchClock.now()
        control.start(at: start)
        let reporter = Task { await progress.run(control: control, start: start) }
        let tally = if let raw { await raw.run() } else { await BenchDriver.run(lanes, on: clients, control: control) }
        let elapsed = BenchClock.now() - start
        reporter.cancel()
        await reporter.value
        progress.finish()
        await close(clients)

        BenchSummary(plan: plan, tally: tally, seconds: BenchClock.seconds(elapsed)).print(json: options.json)
        if tally.errorCount > 0 { throw CommandFailure.refused }
    }

    /// Opens the connections, ``connectsAtOnce`` at a time, each answering a ping; if one
    /// fails, closes the others and reports it.
    private func connect() async throws -> [TokenClient] {
        let socket = options.socket
        let outcomes = await withTaskGroup(of: Result<TokenClient, TokenClientError>.self) { group in
            var outcomes: [Result<TokenClient, TokenClientError>] = []
            for index in 0..<connections {
                if index >= Self.connectsAtOnce, let outcome = await group.next() {
                    outcomes.append(outcome)
                }
                group.addTask {
                    let client: TokenClient
                    do {
                        client = try await TokenClient.connect(socketPath: socket)
                    } catch {
                        return .failure(error as? TokenClientError
                            ?? TokenClientError(.unreachable, message: "cannot connect to \(socket): \(error)"))
                    }
                    // A Unix socket connects as soon as the daemon's backlog has room; the
                    // ping waits until tokend has accepted it and answers on it.
                    do {
                        try await client.ping()
                        return .success(client)
                    } catch {
                        await client.close()
                        return .failure(error as? TokenClientError ?? TokenClientError(.connectionClosed, message: "\(error)"))
                    }
                }
            }
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        let clients = outcomes.compactMap { try? $0.get() }
        for case .failure(let error) in outcomes {
            await close(clients)
            throw options.report(error)
        }
        return clients
    }

    private func close(_ clients: [TokenClient]) async {
        for client in clients { await client.close() }
    }

    /// `--duration`: a positive duration as `DurationText` reads it, in nanoseconds.
    private static func nanoseconds(_ text: String) throws -> UInt64 {
        guard let milliseconds = DurationText.milliseconds(text), milliseconds > 0 else {
            throw ValidationError("'\(text)' is not a positive duration: use a number and a unit, as in 500ms, 10s or 2m")
        }
        return UInt64(milliseconds) * 1_000_000
    }
}

/// `--near-cache-mode`.
enum NearCacheModeArgument: String, ExpressibleByArgument, CaseIterable, Sendable {
    case readYourRevocations = "read-your-revocations"
    case asDelivered = "as-delivered"

    var mode: NearCacheConfiguration.Mode { self == .readYourRevocations ? .readYourRevocations : .asDelivered }
}
