import Foundation
import TestSupport
import Testing
import TokenClient
import TokenProtocol

/// Three real tokend processes sharing one Redis (a single server, then a 3-master Redis
/// Cluster), as three hosts behind a load balancer would.
final class SharedStore: @unchecked Sendable {
    enum Kind: String, CaseIterable, CustomStringConvertible, Sendable {
        case single, cluster
        var description: String { rawValue }
    }

    let server: RedisServer?
    let cluster: RedisCluster?
    let daemons: [DaemonProcess]
    let url: String

    /// Starts Redis and three daemons: the first creates the keys (`--init-keys`), the others
    /// get copies, as an operator provisions hosts.
    init(_ kind: Kind, daemons count: Int = 3, appendOnly: Bool = false, arguments: [String] = []) throws {
        switch kind {
        case .single:
            let server = try RedisServer(appendOnly: appendOnly)
            self.server = server
            cluster = nil
            url = server.unixURL
        case .cluster:
            let cluster = try RedisCluster()
            self.cluster = cluster
            server = nil
            url = cluster.url
        }
        let directories = (0..<count).map { _ in DaemonProcess.temporaryStateDirectory() }
        var daemons = [try DaemonProcess(["--store", url, "--init-keys", "--store-timeout", "300ms"] + arguments, stateDirectory: directories[0])]
        for directory in directories.dropFirst() {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let copied = try runProcess("/bin/cp", ["-a", directories[0].appendingPathComponent("keys").path, directory.path])
            guard copied.status == 0 else { throw DaemonError("cannot copy keys: \(copied.error)") }
            daemons.append(try DaemonProcess(["--store", url, "--store-timeout", "300ms"] + arguments, stateDirectory: directory))
        }
        self.daemons = daemons
    }

    func clients() async throws -> [TokenClient] {
        var clients: [TokenClient] = []
        for daemon in daemons { clients.append(try await daemon.client()) }
        return clients
    }

    deinit {
        for daemon in daemons {
            daemon.stop()
            try? FileManager.default.removeItem(at: daemon.stateDirectory)
        }
    }
}

@Suite(.serialized, .enabled(if: RedisServer.installed, "redis-server is not installed (tools/test installs it)"))
struct SharedStoreTests {
    @Test(arguments: SharedStore.Kind.allCases)
    func issueOnAVerifyAndRenewOnBRevokeOnCSeenByAAtOnce(kind: SharedStore.Kind) async throws {
        let store = try SharedStore(kind)
        let clients = try await store.clients()
        let (a, b, c) = (clients[0], clients[1], clients[2])

        let session = try await a.issue(IssueRequest(mode: .session, subject: "alice", fingerprint: .text("fp")))
        let token = try #require(session.sessionToken)
        #expect(try await b.verify(token: token, fingerprint: .text("fp")).result.subject == "alice")
        // A renew a second later moves the idle expiry, on another daemon than the issue.
        try await Task.sleep(for: .milliseconds(1100))
        let renewed = try await b.renew(token: token, fingerprint: .text("fp"))
        #expect(renewed.status == .renewed && renewed.result.expiresAt > session.expiresAt)
        #expect(await refusal { try await b.verify(token: token, fingerprint: .text("other")) } == .fingerprintMismatch)
        // A has the token in its verified-token cache before the revoke.
        #expect(try await a.verify(token: token, fingerprint: .text("fp")).status == .ok)
        #expect(try await c.revoke(.token(token)) == 1)
        let revokedAt = ContinuousClock.now
        #expect(await refusal { try await a.verify(token: token, fingerprint: .text("fp")) } == .revoked)
        #expect(ContinuousClock.now - revokedAt < .milliseconds(100))

        // Pairs, and revoke by subject reaching logins issued elsewhere.
        let pair = try await a.issue(IssueRequest(mode: .pair, subject: "bob"))
        let other = try await b.issue(IssueRequest(mode: .session, subject: "bob"))
        #expect(try await c.verify(token: pair.accessToken!).result.mode == .pair)
        let listed = try await c.sessions(SessionsRequest(subject: "bob"))
        #expect(Set(listed.sessions.map(\.sessionID)) == [pair.sessionID, other.sessionID])
        #expect(try await c.revoke(.subject("bob")) == 2)
        #expect(await refusal { try await a.verify(token: pair.accessToken!) } == .revoked)
        #expect(await refusal { try await b.verify(token: other.sessionToken!) } == .revoked)
        #expect(await refusal { try await a.refresh(token: pair.refreshToken!) } == .revoked)
        #expect(try await c.revoke(.subject("bob")) == 0)
        #expect(await refusal { try await c.revoke(.session("AAAAAAAAAAAAAAAAAAAAAA")) } == .sessionUnknown)

        // Every daemon reports a healthy shared store.
        for client in clients {
            let stats = Dictionary(try await client.stats().map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            #expect(stats["store_redis_healthy"] == 1)
            #expect(stats["store_redis_cluster"] == (kind == .cluster ? 1 : 0))
            #expect(stats["store_redis_masters"] == (kind == .cluster ? 3 : 1))
        }
        for client in clients { await client.close() }
    }

    @Test(arguments: SharedStore.Kind.allCases)
    func fiftyConcurrentRefreshesOverThreeDaemonsRotateOnce(kind: SharedStore.Kind) async throws {
        let store = try SharedStore(kind, arguments: ["--dedup-window", "2s"])
        var clients: [TokenClient] = []
        for _ in 0..<2 { clients += try await store.clients() }
        let issued = try await clients[0].issue(IssueRequest(mode: .pair, subject: "dave", fingerprint: .text("fp")))
        let refresh = try #require(issued.refreshToken)
        let results = try await withThrowingTaskGroup(of: IssueResult.self) { group in
            for index in 0..<50 {
                let client = clients[index % clients.count]
                group.addTask { try await client.refresh(token: refresh, fingerprint: .text("fp")) }
            }
            var results: [IssueResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(results.count == 50)
        #expect(Set(results.map(\.accessToken)).count == 1, "every caller, on every daemon, gets the same access token")
        #expect(Set(results.map(\.refreshToken)).count == 1, "every caller, on every daemon, gets the same refresh token")
        let rotated = results[0]
        #expect(rotated.refreshToken != refresh)
        // The one new pair works everywhere; the presented refresh token is spent.
        for client in clients.prefix(3) { #expect(try await client.verify(token: rotated.accessToken!, fingerprint: .text("fp")).status == .ok) }
        #expect(await refusal { try await clients[1].refresh(token: refresh, fingerprint: .text("other")) } == .fingerprintMismatch)
        for client in clients { await client.close() }
    }

    @Test(arguments: SharedStore.Kind.allCases)
    func reuseOnOneDaemonRevokesTheFamilyOnAll(kind: SharedStore.Kind) async throws {
        let store = try SharedStore(kind, arguments: ["--dedup-window", "1s"])
        let clients = try await store.clients()
        let (a, b, c) = (clients[0], clients[1], clients[2])
        let issued = try await a.issue(IssueRequest(mode: .pair, subject: "erin"))
        let rotated = try await a.refresh(token: issued.refreshToken!)
        // Within the window, another daemon hands out the same pair.
        let repeated = try await b.refresh(token: issued.refreshToken!)
        #expect(repeated.accessToken == rotated.accessToken && repeated.refreshToken == rotated.refreshToken)
        try await Task.sleep(for: .milliseconds(1100))
        // Past the window, and the new pair used on a third daemon: the spent token is reuse.
        #expect(try await c.verify(token: rotated.accessToken!).status == .ok)
        #expect(await refusal { try await b.refresh(token: issued.refreshToken!) } == .reuseDetected)
        #expect(await refusal { try await c.verify(token: rotated.accessToken!) } == .revoked)
        #expect(await refusal { try await a.refresh(token: rotated.refreshToken!) } == .revoked)
        for client in clients { await client.close() }
    }

    @Test(arguments: SharedStore.Kind.allCases)
    func idempotentIssuesOnTwoDaemonsGiveOneLogin(kind: SharedStore.Kind) async throws {
        let store = try SharedStore(kind, daemons: 2)
        let clients = try await store.clients()
        let request = IssueRequest(mode: .pair, subject: "frank", idempotencyKey: .text("login-42"))
        async let first = clients[0].issue(request)
        async let second = clients[1].issue(request)
        let (one, two) = try await (first, second)
        #expect(one.sessionID == two.sessionID && one.accessToken == two.accessToken && one.refreshToken == two.refreshToken)
        #expect(try await clients[1].sessions(SessionsRequest(subject: "frank")).sessions.count == 1)
        let conflicting = IssueRequest(mode: .session, subject: "frank", idempotencyKey: .text("login-42"))
        #expect(await refusal { try await clients[0].issue(conflicting) } == .badRequest)
        for client in clients { await client.close() }
    }

    @Test func redisRestartedMidRunFailsClosedThenRecovers() async throws {
        let store = try SharedStore(.single, daemons: 2, appendOnly: true)
        let server = try #require(store.server)
        let clients = try await store.clients()
        let issued = try await clients[0].issue(IssueRequest(mode: .session, subject: "gina"))
        let token = try #require(issued.sessionToken)
        #expect(try await clients[1].verify(token: token).status == .ok)

        server.stop()
        for client in clients {
            let started = ContinuousClock.now
            #expect(await refusal { try await client.verify(token: token) } == .storeUnavailable)
            #expect(await refusal { try await client.issue(IssueRequest(mode: .session, subject: "gina")) } == .storeUnavailable)
            #expect(ContinuousClock.now - started < .seconds(2), "fails within the store timeout, not hanging")
            #expect(try await client.ping() == false)
        }
        let stats = Dictionary(try await clients[0].stats().map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(stats["store_redis_healthy"] == 0)

        try server.start()
        // With no other traffic at all, ping asks Redis itself and says it is back: a readiness
        // check never keeps a recovered daemon out.
        var healthyAgain = false
        let probeDeadline = ContinuousClock.now + .seconds(10)
        while !healthyAgain, ContinuousClock.now < probeDeadline {
            healthyAgain = try await clients[1].ping() == true
            if !healthyAgain { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(healthyAgain, "ping still says the store is down after Redis came back")
        // Both daemons reconnect by themselves; the session survived in Redis's append-only file.
        for client in clients {
            var status: Status?
            let deadline = ContinuousClock.now + .seconds(10)
            repeat {
                status = try? await client.verify(token: token).status
                if status == nil { try await Task.sleep(for: .milliseconds(50)) }
            } while status == nil && ContinuousClock.now < deadline
            #expect(status == .ok)
        }
        for client in clients { await client.close() }
    }

    @Test func redisKilledFailsClosedAndTheDaemonStaysUp() async throws {
        let store = try SharedStore(.single, daemons: 1)
        let server = try #require(store.server)
        let client = try await store.daemons[0].client()
        let issued = try await client.issue(IssueRequest(mode: .pair, subject: "hank"))
        server.stop(kill: true)
        var elapsed: [Duration] = []
        for _ in 0..<20 {
            let started = ContinuousClock.now
            #expect(await refusal { try await client.verify(token: issued.accessToken!) } == .storeUnavailable)
            #expect(await refusal { try await client.refresh(token: issued.refreshToken!) } == .storeUnavailable)
            elapsed.append(ContinuousClock.now - started)
        }
        #expect(elapsed.allSatisfy { $0 < .seconds(2) })
        // Bad input is still answered as before; the daemon serves what needs no store.
        #expect(await refusal { try await client.verify(token: "not.a.token") } == .malformedToken)
        // ping answers, and says the store does not: a readiness check sees it.
        #expect(try await client.ping() == false)
        let ping = try store.daemons[0].tokenctl(["ping", "--json"])
        #expect(ping.status == 4 && ping.output.contains(#""store_healthy":false"#), "\(ping.output)")
        // The daemon's failure has an exit code of its own: not a verdict on the token (1).
        let verify = try store.daemons[0].tokenctl(["verify", "--json", try #require(issued.accessToken)])
        #expect(verify.status == 4 && verify.output.contains("store_unavailable"), "\(verify.output)")
        #expect(store.daemons[0].process.isRunning)
        #expect(store.daemons[0].log.contains("state store unavailable"))
        await client.close()
    }

    @Test func sharedModeNeedsProvisionedKeysAndRollsThemOutByDate() async throws {
        let server = try RedisServer()
        // No keys and no --init-keys: a clear refusal, not a host with a keyring of its own.
        let empty = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let refused = try #require(try DaemonProcess.startFailure(stateDirectory: empty, arguments: ["--store", server.unixURL]))
        #expect(refused.status != 0)
        #expect(refused.output.contains("--init-keys") && refused.output.contains("every host needs the same key files"))

        let store = try SharedStore(.single, daemons: 2)
        let clients = try await store.clients()
        #expect(await refusal { try await clients[0].keysRotate() } == .badRequest)
        let before = try await clients[0].keysList()
        #expect(before.count == 1 && before[0].signing)

        // A new key dated 2 s ahead, copied to both hosts, reloaded by tokenctl on one and SIGHUP on the other.
        let activation = Int(wallClock()) + 2
        let name = "keys/\(activation)-HS256.key"
        let made = try runProcess(DaemonProcess.executable("tokenctl"),
                                  ["jwt", "keygen", "--alg", "HS256", "--out", store.daemons[0].stateDirectory.appendingPathComponent(name).path])
        #expect(made.status == 0, "\(made.error)")
        let copied = try runProcess("/bin/cp", ["-p", store.daemons[0].stateDirectory.appendingPathComponent(name).path,
                                                store.daemons[1].stateDirectory.appendingPathComponent(name).path])
        #expect(copied.status == 0)
        let reloaded = try store.daemons[0].tokenctl(["keys", "reload"])
        #expect(reloaded.status == 0, "\(reloaded.error)")
        kill(store.daemons[1].process.processIdentifier, SIGHUP)
        var afterReload: [KeyInfo] = []
        let reloadDeadline = Date().addingTimeInterval(10)
        repeat {
            afterReload = try await clients[1].keysList()
            if afterReload.count == 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        } while Date() < reloadDeadline
        #expect(afterReload.count == 2)
        // Both verify with it now; neither signs with it before its time.
        #expect(afterReload.first { $0.signing }?.kid == before[0].kid)
        // From its time on (each daemon looks once a second) the new key signs.
        for client in clients {
            var signing = before[0].kid
            let deadline = Date().addingTimeInterval(Double(activation) - wallClock() + 10)
            while signing == before[0].kid, Date() < deadline {
                signing = try await client.keysList().first { $0.signing }?.kid ?? signing
                if signing == before[0].kid { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(signing != before[0].kid, "the new key signs from its time on")
            #expect(wallClock() >= Double(activation), "the new key signed before its time")
        }
        // Tokens signed by either host with the new key verify on the other.
        let issued = try await clients[0].issue(IssueRequest(mode: .session, subject: "ivy"))
        #expect(try await clients[1].verify(token: issued.sessionToken!).status == .ok)
        for client in clients { await client.close() }
    }
}

@Suite(.enabled(if: RedisServer.installed, "redis-server is not installed (tools/test installs it)"))
struct SharedStoreSettingsTests {
    @Test func thePasswordComesFromAFileAndNeverShows() async throws {
        let password = "pw-\(UUID().uuidString)"
        let server = try RedisServer(extra: ["--requirepass", password])
        let directory = DaemonProcess.temporaryStateDirectory()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let file = directory.appendingPathComponent("redis.password")
        try Data((password + "\n").utf8).write(to: file)
        let daemon = try DaemonProcess(["--store", server.unixURL, "--init-keys", "--redis-password-file", file.path], stateDirectory: directory)
        defer { try? FileManager.default.removeItem(at: directory) }
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "kim"))
        #expect(try await client.verify(token: issued.sessionToken!).status == .ok)
        await client.close()

        // A wrong password (from the environment this time) stops the start: the store is
        // checked before the daemon serves, instead of failing every request after READY.
        let wrongDirectory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: wrongDirectory) }
        let wrong = try #require(try DaemonProcess.startFailure(stateDirectory: wrongDirectory, arguments: ["--store", server.unixURL, "--init-keys"],
                                                                environment: ["TOKEND_REDIS_PASSWORD": "not-it"]),
                                 "tokend served with a wrong Redis password")
        #expect(wrong.status != 0)
        #expect(wrong.output.contains("the shared store did not answer") && wrong.output.contains("AUTH refused"), "\(wrong.output)")
        for log in [daemon.log, wrong.output] {
            #expect(!log.contains(password) && !log.contains("not-it"))
        }
    }

    @Test func badStoreSettingsStopTheStartWithAReason() throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [([String], String)] = [
            (["--store", "memcached://x"], "redis://HOST:PORT"),
            (["--store", "redis://alice:secret@localhost"], "--redis-password-file"),
            (["--store", "redis://localhost", "--store-timeout", "soon"], "store-timeout"),
            (["--redis-password-file", "/nonexistent/file", "--store", "redis://localhost"], "cannot read"),
        ]
        for (arguments, expected) in cases {
            let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: arguments), "\(arguments)")
            #expect(failure.status != 0)
            #expect(failure.output.contains(expected), "\(arguments): \(failure.output)")
            #expect(!failure.output.contains("secret"))
        }
    }

    @Test func aDedupWindowOfZeroRemembersNothingAndFailsNothing() async throws {
        let store = try SharedStore(.single, daemons: 1, arguments: ["--dedup-window", "0s", "--rotation-grace", "0s"])
        let client = try await store.daemons[0].client()
        let pair = try await client.issue(IssueRequest(mode: .pair, subject: "lee"))
        let rotated = try await client.refresh(token: pair.refreshToken!)
        #expect(rotated.refreshToken != pair.refreshToken)
        // No window: a repeat is reuse at once, as with the embedded store.
        #expect(await refusal { try await client.refresh(token: pair.refreshToken!) } == .reuseDetected)
        let request = IssueRequest(mode: .session, subject: "lee", idempotencyKey: .text("k"))
        let first = try await client.issue(request), second = try await client.issue(request)
        #expect(first.sessionID != second.sessionID, "nothing remembered: two logins")
        await client.close()
    }
}

/// Rules both stores must keep alike, each case run on the embedded store and on Redis.
@Suite(.enabled(if: RedisServer.installed, "redis-server is not installed (tools/test installs it)"))
struct BothStoresTests {
    enum Store: String, CaseIterable, CustomStringConvertible, Sendable {
        case embedded, redis
        var description: String { rawValue }
    }

    /// A daemon on `store`, with whatever holds it alive.
    static func daemon(_ store: Store, _ arguments: [String] = []) throws -> (DaemonProcess, SharedStore?) {
        switch store {
        case .embedded: return (try DaemonProcess(arguments), nil)
        case .redis:
            let shared = try SharedStore(.single, daemons: 1, arguments: arguments)
            return (shared.daemons[0], shared)
        }
    }

    /// Subjects are their bytes: the Kelvin sign's "Kate" and NFD "José" are not "Kate" and
    /// NFC "José", in the index, the listing and revoke by subject.
    @Test(arguments: Store.allCases)
    func lookAlikeSubjectsAreDifferentSubjects(_ store: Store) async throws {
        let (daemon, shared) = try Self.daemon(store)
        defer { withExtendedLifetime(shared) {} }
        let client = try await daemon.client()
        for (one, other) in [("Kate", "\u{212A}ate"), ("Jos\u{E9}", "Jose\u{301}")] {
            let kept = try #require(try await client.issue(IssueRequest(mode: .session, subject: one)).sessionToken)
            let gone = try #require(try await client.issue(IssueRequest(mode: .session, subject: other)).sessionToken)
            let listed = try await client.sessions(SessionsRequest(subject: other))
            #expect(listed.sessions.map(\.subject).allSatisfy { $0.utf8.elementsEqual(other.utf8) } && listed.sessions.count == 1,
                    "\(store): listing \(Array(other.unicodeScalars))")
            #expect(try await client.revoke(.subject(other)) == 1)
            #expect(await refusal { try await client.verify(token: gone) } == .revoked)
            let outcome = try await client.verify(token: kept)
            #expect(outcome.status.isSuccess && outcome.result.subject.utf8.elementsEqual(one.utf8), "\(store): \(one) lost its session")
        }
        await client.close()
    }

    /// A verify renews a session issued with `ttl` 60 s to at most 60 s from now, on both stores.
    @Test(arguments: Store.allCases)
    func aRenewalNeverOutrunsTheLoginsOwnIdleTTL(_ store: Store) async throws {
        let (daemon, shared) = try Self.daemon(store)
        defer { withExtendedLifetime(shared) {} }
        let client = try await daemon.client()
        let issued = try await client.issue(IssueRequest(mode: .session, subject: "short", ttl: 60))
        let before = Int64(Date().timeIntervalSince1970)
        let outcome = try await client.verify(token: try #require(issued.sessionToken))
        let after = Int64(Date().timeIntervalSince1970)
        // Renewed or not (within the second of issue there is nothing to add), never further.
        #expect(outcome.status.isSuccess)
        #expect(Int64(outcome.result.expiresAt) <= after + 60 && Int64(outcome.result.expiresAt) >= before + 59,
                "\(store): renewed to \(Int64(outcome.result.expiresAt) - before) s from now")
        await client.close()
    }
}

/// `rediss://`: tokend reaches Redis over TLS, checks its certificate and name, and presents a
/// client certificate; a wrong CA, a wrong name or a missing client certificate stops the start.
@Suite(.enabled(if: RedisServer.installed && FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"),
                "needs redis-server (with TLS, as Debian's 7.x) and openssl"))
struct RedisTLSTests {
    /// A CA, a server certificate for the name localhost only (no IP address: NIOSSL would
    /// accept an address match whatever name it was asked to check), a client certificate, and a
    /// second CA that signed none of them.
    final class Certificates {
        let directory: URL
        init() throws {
            directory = DaemonProcess.temporaryStateDirectory().appendingPathExtension("tls")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let d = directory.path
            let steps = [
                "openssl req -x509 -newkey rsa:2048 -nodes -keyout \(d)/ca.key -out \(d)/ca.crt -days 1 -subj /CN=tokend-test-ca",
                "openssl req -x509 -newkey rsa:2048 -nodes -keyout \(d)/other-ca.key -out \(d)/other-ca.crt -days 1 -subj /CN=other-ca",
                "openssl req -newkey rsa:2048 -nodes -keyout \(d)/server.key -out \(d)/server.csr -subj /CN=localhost",
                "printf 'subjectAltName=DNS:localhost\\n' > \(d)/server.ext",
                "openssl x509 -req -in \(d)/server.csr -CA \(d)/ca.crt -CAkey \(d)/ca.key -CAcreateserial -out \(d)/server.crt -days 1 -extfile \(d)/server.ext",
                "openssl req -newkey rsa:2048 -nodes -keyout \(d)/client.key -out \(d)/client.csr -subj /CN=tokend",
                "openssl x509 -req -in \(d)/client.csr -CA \(d)/ca.crt -CAkey \(d)/ca.key -CAcreateserial -out \(d)/client.crt -days 1",
                "chmod 600 \(d)/*.key",
            ]
            for step in steps {
                let result = try runProcess("/bin/sh", ["-c", step])
                guard result.status == 0 else { throw DaemonError("\(step): \(result.error)") }
            }
        }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    @Test func tokendSpeaksTLSToRedisAndChecksWhoItTalksTo() async throws {
        let certificates = try Certificates()
        let server = try RedisServer(tls: { port in [
            "--tls-port", "\(port)", "--tls-cert-file", certificates.path("server.crt"), "--tls-key-file", certificates.path("server.key"),
            "--tls-ca-cert-file", certificates.path("ca.crt"), "--tls-auth-clients", "yes",
        ] })
        let port = try #require(server.tlsPort)
        defer { withExtendedLifetime(server) {} }
        let client = ["--redis-tls-cert-file", certificates.path("client.crt"), "--redis-tls-key-file", certificates.path("client.key")]
        let good = ["--store", "rediss://localhost:\(port)", "--init-keys", "--store-timeout", "200ms", "--redis-tls-ca-file", certificates.path("ca.crt")]

        let daemon = try DaemonProcess(good + client)
        let tokens = try await daemon.client()
        let issued = try await tokens.issue(IssueRequest(mode: .session, subject: "tess"))
        #expect(try await tokens.verify(token: try #require(issued.sessionToken)).result.subject == "tess")
        await tokens.close()
        // The login is in Redis, reached over TLS only (this server has no plain TCP port).
        #expect(try server.cli(["DBSIZE"]) != "0")

        // By address, the certificate's name must be given; a wrong one is refused.
        let byAddress = ["--store", "rediss://127.0.0.1:\(port)", "--init-keys", "--store-timeout", "200ms", "--redis-tls-ca-file", certificates.path("ca.crt")]
        let named = try DaemonProcess(byAddress + client + ["--redis-tls-server-name", "localhost"])
        #expect(try named.tokenctl(["ping"]).status == 0)
        named.stop()

        for (arguments, why) in [
            (good.dropLast(2) + ["--redis-tls-ca-file", certificates.path("other-ca.crt")] + client, "a CA that did not sign Redis's certificate"),
            (byAddress + client + ["--redis-tls-server-name", "redis.example"], "a name the certificate does not carry"),
            (byAddress + client, "an address the certificate does not carry"),
            (good, "no client certificate for a Redis that asks for one"),
        ] {
            let directory = DaemonProcess.temporaryStateDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: Array(arguments)), "started with \(why)")
            #expect(failure.status != 0 && failure.output.contains("the shared store did not answer"), "\(why): \(failure.output)")
        }

        // TLS options without rediss:// are a mistake, named at start.
        let plain = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: plain) }
        let misused = try #require(try DaemonProcess.startFailure(stateDirectory: plain, arguments: ["--store", server.unixURL, "--init-keys", "--redis-tls-ca-file", certificates.path("ca.crt")]))
        #expect(misused.output.contains("--redis-tls-ca-file is for a rediss:// store"), "\(misused.output)")
    }
}
