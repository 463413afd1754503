import ArgumentParser
import TokenProtocol
import Foundation
import Logging
import ServiceLifecycle
import TokenJWT
import TokenServer

/// `tokend`: the token daemon.
///
/// Every option can also come from the environment (`TOKEND_` + the option's name in upper
/// snake case, e.g. `TOKEND_ACCESS_TTL`) or from a config file (`--config FILE`, lines of
/// `name = value` with the option's name, `#` comments). Precedence: flag, then environment,
/// then config file, then the built-in default.
@main
struct Tokend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokend",
        abstract: "The tokend token daemon: issues, verifies, renews, rotates and revokes JWTs over a Unix socket.",
        discussion: """
            Every option may also be set as an environment variable (TOKEND_ + the name in upper snake \
            case: --access-ttl is TOKEND_ACCESS_TTL) or in a config file given by --config (lines of \
            "name = value", e.g. "access-ttl = 15m"). A flag beats the environment, which beats the file, \
            which beats the default. Durations are written 250ms, 5s, 30m, 2h or 1d.
            """,
        version: TokendVersion.current
    )

    @Option(help: "Config file of `name = value` lines.") var config: String?
    @Option(help: "State directory: keys, the snapshot and the journals. Default ./tokend-data.") var stateDir: String?
    @Option(help: "Unix socket path. Default <state-dir>/tokend.sock.") var socket: String?
    @Option(help: "Socket file mode, octal. Default 660.") var socketMode: String?
    @Option(help: "Access-token lifetime (pair mode). Default 30m.") var accessTtl: String?
    @Option(help: "Refresh-token lifetime (pair mode). Default 60m.") var refreshTtl: String?
    @Option(help: "Idle timeout of a sliding session. Default 2h.") var sessionIdle: String?
    @Option(help: "A verify renews a session when less than this remains. Default 1h.") var renewBelow: String?
    @Option(help: "...by this much. Default 1h.") var renewBy: String?
    @Option(help: "Absolute maximum lifetime of a login. Default 12h.") var maxLifetime: String?
    @Option(help: "How long the result of a refresh, or of an issue with an idempotency key, is handed out again to a repeat. Default 5s.") var dedupWindow: String?
    @Option(help: "Signing algorithm: HS256, HS384, HS512, ES256, Ed25519, EdDSA or RS256. Default HS256.") var alg: String?
    @Option(help: "The iss claim. Default tokend.") var issuer: String?
    @Option(help: "Clock skew tolerated on exp. Default 0s.") var leeway: String?
    @Option(help: "Comma-separated uids allowed to issue. Default: tokend's own uid and root.") var issueUids: String?
    @Option(help: "Comma-separated gids allowed to issue.") var issueGids: String?
    @Option(help: "Comma-separated uids allowed admin operations. Default: tokend's own uid and root.") var adminUids: String?
    @Option(help: "Comma-separated gids allowed admin operations.") var adminGids: String?
    @Option(help: "Largest request frame, in bytes, at least 32768. Default 65536.") var maxFrameSize: String?
    @Option(help: "Most concurrent connections; lowered at start to what the open-file limit allows. Default 4096.") var maxConnections: String?
    @Option(help: "Most connections one uid may hold (admins excepted). Default a quarter of --max-connections.") var maxConnectionsPerUid: String?
    @Option(help: "Most requests in flight per connection before reading pauses. Default 256.") var maxInFlight: String?
    @Option(help: "Close connections that complete no request for this long; 0 disables. Default 5m.") var idleTimeout: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical. Default info. A reload (SIGHUP) applies a new one.") var logLevel: String?
    @Option(help: "text, or json: one JSON object per line with the metadata keys as fields. Default text.") var logFormat: String?
    @Option(help: "When the journal reaches the disk: always (before each reply, shared by concurrent requests), everysec or no. Default everysec.") var fsync: String?
    @Option(help: "Write a snapshot this often when anything changed; 0 disables. Default 5m.") var snapshotInterval: String?
    @Option(help: "Write a snapshot after this many changes; 0 disables. Default 100000.") var snapshotChanges: String?
    @Option(help: "Verified tokens remembered so that repeated verifies skip the signature check; 0 disables. Default 10000.") var verifiedCacheSize: String?
    @Option(help: "Where state lives: embedded (this process, persisted to the state directory), redis://[USER@]HOST[:PORT][/DB] or redis+unix://[USER@]/PATH[?db=N] (shared by every host's tokend; a Redis Cluster is detected). Default embedded.") var store: String?
    @Option(help: "File holding the Redis password (or set TOKEND_REDIS_PASSWORD); never a flag value, which ps would show.") var redisPasswordFile: String?
    @Option(help: "How long the shared store may take before a request fails with store_unavailable. Default 500ms.") var storeTimeout: String?
    @Option(help: "rediss:// store: PEM file of the CAs that sign Redis's certificate. Default: the system's roots.") var redisTlsCaFile: String?
    @Option(help: "rediss:// store: PEM client certificate, for a Redis that verifies its clients (with --redis-tls-key-file).") var redisTlsCertFile: String?
    @Option(help: "rediss:// store: PEM private key of the client certificate.") var redisTlsKeyFile: String?
    @Option(help: "rediss:// store: the name Redis's certificate must carry, when not the URL's host (checked always).") var redisTlsServerName: String?
    @Flag(help: "With a shared store, create the key directory if it is empty (the first host only; copy it to the others).") var initKeys = false
    @Option(help: "Serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464). Default: off.") var metricsListen: String?
    @Option(help: "Serve the HTTP face (docs/http.md: /auth for nginx auth_request and other proxies, /introspect, the JWKS) on unix:PATH or HOST:PORT; repeat for several. Default: off.")
    var httpListen: [String] = []
    @Option(help: "HTTP face: the cookie to read the token from when a request has no Authorization: Bearer.") var httpTokenCookie: String?
    @Option(help: "HTTP face: the cookie holding the refresh token; /auth then refreshes an expired access token.") var httpRefreshCookie: String?
    @Option(help: "HTTP face: attributes of the cookies /auth hands back after a refresh. Default: \"Path=/; HttpOnly; Secure; SameSite=Lax\".")
    var httpCookieAttributes: String?
    @Option(help: "HTTP face: request headers whose values make the fingerprint, comma-separated (e.g. User-Agent,X-Device-Id).") var httpFingerprintHeaders: String?
    @Flag(help: "HTTP face: /auth adds X-Tokend-Claims, the token's claims as base64url JSON.") var httpClaimsHeader = false
    @Option(help: "HTTP face: a file holding a secret that /introspect then requires as Authorization: Bearer.") var httpIntrospectSecretFile: String?
    @Flag(help: "Start despite damaged state files: keep the valid part and move the damaged file aside as *.broken.") var repair = false

    func run() async throws {
        let configuration: TokendConfiguration
        let store: StoreSettings
        let level: Logger.Level
        let format: LogFormat
        do {
            let settings = try Settings(command: self)
            configuration = try settings.configuration()
            store = try settings.storeSettings()
            level = try settings.logLevel()
            format = try settings.logFormat()
        } catch let error as SettingsError {
            throw ValidationError(error.description)
        }
        let sharedLevel = SharedLogLevel(level)
        LoggingSystem.bootstrap { label in TokendLogHandler(label: label, format: format, level: sharedLevel) }
        let logger = Logger(label: "tokend")
        // A reload reads flags, environment and config file again, as at start.
        let command = self
        let reload: @Sendable () throws -> TokendConfiguration = {
            let settings = try Settings(command: command)
            let updated = try settings.configuration()
            sharedLevel.level = try settings.logLevel()
            return updated
        }
        do {
            let server = try TokendServer(configuration: configuration, logger: logger, reloadConfiguration: reload, backend: store.factory)
            let group = ServiceGroup(
                configuration: .init(services: [server] + server.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            )
            try await group.run()
        } catch let error as ConfigurationError {
            logger.critical("cannot start", metadata: ["reason": "\(error.description)"])
            FileHandle.standardError.write(Data("tokend: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
    }
}
