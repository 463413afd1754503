import Foundation
import Logging
import RedisClient
import TokenJWT
import TokenProtocol
import TokenServer
import TokenStore

/// Resolves each option from flag, environment, config file and default, in that order.
struct Settings: Sendable {
    private var values: [String: String] = [:]
    /// Where each value came from, for error messages.
    private var sources: [String: String] = [:]
    private var redisPassword: String?

    init(command: Tokend, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let flags = try TokendOptions.parse(command.options)
        let configPath = command.config ?? environment["TOKEND_CONFIG"]
        if let configPath {
            guard let data = FileManager.default.contents(atPath: configPath) else {
                throw SettingsError("cannot read config file \(configPath)")
            }
            for (number, rawLine) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                guard !line.allSatisfy(\.isWhitespace) else { continue }
                // `name =` with nothing after it is an empty value (an empty uid list: nobody).
                let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, TokendOptions.named(parts[0]) != nil else {
                    throw SettingsError("\(configPath):\(number + 1): expected `name = value` with a tokend option name, got \"\(line)\"")
                }
                values[parts[0]] = parts[1]
                sources[parts[0]] = "\(configPath):\(number + 1)"
            }
        }
        // The one secret setting: from the environment only (a flag would show in ps).
        redisPassword = environment["TOKEND_REDIS_PASSWORD"]
        for option in TokendOptions.all {
            if let value = environment[option.environmentVariable] {
                values[option.name] = value
                sources[option.name] = option.environmentVariable
            }
        }
        for (name, value) in flags {
            values[name] = value
            sources[name] = "--\(name)"
        }
    }

    /// The options a reload cannot apply whose values differ from `earlier`'s: names only, since
    /// a value may be a secret's path or a password.
    func changedNeedingRestart(since earlier: Settings) -> [String] {
        TokendOptions.all.filter { !$0.reloadable && values[$0.name] != earlier.values[$0.name] }.map(\.name)
    }

    private func seconds(_ name: String, into value: inout Int64, minimum: Int64 = 1) throws {
        guard let text = values[name] else { return }
        guard let seconds = DurationText.seconds(text), seconds >= minimum else {
            throw SettingsError("\(sources[name]!): \"\(text)\" is not a duration of at least \(minimum)s in whole seconds (write 30s, 15m, 2h)")
        }
        value = seconds
    }

    /// A duration to the millisecond (`1500ms`, `2s`), at least `minimum`.
    private func milliseconds(_ name: String, into value: inout Int64, minimum: Int64 = 0) throws {
        guard let text = values[name] else { return }
        guard let milliseconds = DurationText.milliseconds(text), milliseconds >= minimum else {
            let least = minimum > 0 ? " of at least \(minimum)ms" : ""
            throw SettingsError("\(sources[name]!): \"\(text)\" is not a duration\(least) such as 250ms, 5s or 30m")
        }
        value = milliseconds
    }

    private func integer(_ name: String, into value: inout Int, minimum: Int = 1) throws {
        guard let text = values[name] else { return }
        guard let number = Int(text), number >= minimum else { throw SettingsError("\(sources[name]!): \"\(text)\" is not a number of at least \(minimum)") }
        value = number
    }

    private func ids(_ name: String) throws -> [UInt32]? {
        guard let text = values[name] else { return nil }
        return try text.split(separator: ",").map { part in
            guard let id = UInt32(part.trimmingCharacters(in: .whitespaces)) else {
                throw SettingsError("\(sources[name]!): \"\(text)\" is not a comma-separated list of numeric ids")
            }
            return id
        }
    }

    func configuration() throws -> TokendConfiguration {
        var configuration = TokendConfiguration()
        if let stateDir = values["state-dir"] { configuration.stateDirectory = stateDir }
        configuration.socketPath = values["socket"]
        if let mode = values["socket-mode"] {
            guard let parsed = UInt32(mode, radix: 8), parsed <= 0o777 else { throw SettingsError("\(sources["socket-mode"]!): \"\(mode)\" is not an octal file mode") }
            configuration.socketMode = parsed
        }
        try seconds("access-ttl", into: &configuration.accessTTL)
        try seconds("refresh-ttl", into: &configuration.refreshTTL)
        try seconds("session-idle", into: &configuration.sessionIdle)
        // Unset, renewal settings follow a shorter idle TTL: at most half of it.
        configuration.renewBelow = min(configuration.renewBelow, configuration.sessionIdle / 2)
        configuration.renewBy = min(configuration.renewBy, configuration.sessionIdle / 2)
        try seconds("renew-below", into: &configuration.renewBelow, minimum: 0)
        try seconds("renew-by", into: &configuration.renewBy, minimum: 0)
        for name in ["renew-below", "renew-by"] {
            let value = name == "renew-below" ? configuration.renewBelow : configuration.renewBy
            guard value <= configuration.sessionIdle else {
                throw SettingsError("\(sources[name] ?? "--\(name)") (\(value)s) exceeds \(sources["session-idle"] ?? "--session-idle") (\(configuration.sessionIdle)s): "
                    + "a renewal can never keep a session longer than its idle TTL; lower --\(name) or raise --session-idle")
            }
        }
        try seconds("max-lifetime", into: &configuration.maxLifetime)
        try milliseconds("dedup-window", into: &configuration.dedupWindowMilliseconds)
        if values["rotation-grace"] != nil {
            var grace: Int64 = 0
            try milliseconds("rotation-grace", into: &grace)
            configuration.rotationGraceMilliseconds = grace
        }
        // Nothing is repeated past a login's end: longer would only keep entries for nothing.
        for (name, value) in [("dedup-window", configuration.dedupWindowMilliseconds), ("rotation-grace", configuration.rotationGraceMilliseconds ?? 0)]
        where value > configuration.maxLifetime * 1000 {
            throw SettingsError("\(sources[name]!) (\(value) ms) exceeds \(sources["max-lifetime"] ?? "--max-lifetime") (\(configuration.maxLifetime)s): "
                + "no login lives that long; lower --\(name)")
        }
        try seconds("leeway", into: &configuration.leeway, minimum: 0)
        try seconds("idle-timeout", into: &configuration.idleTimeout, minimum: 0)
        if let alg = values["alg"] {
            guard let algorithm = JWSAlgorithm(name: alg) else {
                throw SettingsError("\(sources["alg"]!): unknown algorithm \"\(alg)\"; use one of \(JWSAlgorithm.allCases.map(\.name).joined(separator: ", "))")
            }
            configuration.algorithm = algorithm
        }
        if let issuer = values["issuer"] { configuration.issuer = issuer }
        configuration.issueUIDs = try ids("issue-uids")
        configuration.issueGIDs = try ids("issue-gids") ?? []
        configuration.adminUIDs = try ids("admin-uids")
        configuration.adminGIDs = try ids("admin-gids") ?? []
        // Every request whose fields keep to their size limits fits in 32768 bytes, so a client
        // that skips hello can send any of them (proto-spec.md 4.2).
        try integer("max-frame-size", into: &configuration.maxFrameSize, minimum: TokendConfiguration.minimumFrameSize)
        try integer("max-connections", into: &configuration.maxConnections)
        if values["max-connections-per-uid"] != nil {
            var perUID = 0
            try integer("max-connections-per-uid", into: &perUID)
            configuration.maxConnectionsPerUID = perUID
        }
        try integer("max-in-flight", into: &configuration.maxInFlight)
        try seconds("snapshot-interval", into: &configuration.snapshotInterval, minimum: 0)
        try integer("snapshot-changes", into: &configuration.snapshotChanges, minimum: 0)
        try integer("verified-cache-size", into: &configuration.verifiedTokenCacheSize, minimum: 0)
        if let fsync = values["fsync"] {
            guard let policy = FsyncPolicy(rawValue: fsync) else {
                throw SettingsError("\(sources["fsync"]!): \"\(fsync)\" is not always, everysec or no")
            }
            configuration.fsync = policy
        }
        configuration.repair = try flag("repair")
        configuration.initKeys = try flag("init-keys")
        try milliseconds("store-timeout", into: &configuration.storeTimeout, minimum: 1)
        configuration.metricsListen = values["metrics-listen"]
        configuration.storeDescription = values["store"] ?? "embedded"
        configuration.http = try httpFace()
        return configuration
    }

    /// Where state lives: `--store` and the Redis settings that go with it.
    func storeSettings() throws -> StoreSettings {
        var settings = StoreSettings()
        if let store = values["store"] {
            do {
                settings.store = try StoreConfiguration(store)
            } catch {
                throw SettingsError("\(sources["store"]!): \(error.description)")
            }
        }
        settings.redisPassword = redisPassword
        if let file = values["redis-password-file"] {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw SettingsError("\(sources["redis-password-file"]!): cannot read \(file)")
            }
            // One line; a trailing newline is not part of the password.
            settings.redisPassword = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        settings.redisTLS = RedisTLS(caFile: values["redis-tls-ca-file"], certificateFile: values["redis-tls-cert-file"],
                                     keyFile: values["redis-tls-key-file"], serverName: values["redis-tls-server-name"])
        let tlsOptions = ["redis-tls-ca-file", "redis-tls-cert-file", "redis-tls-key-file", "redis-tls-server-name"].filter { values[$0] != nil }
        if let option = tlsOptions.first, !settings.store.usesTLS {
            throw SettingsError("\(sources[option] ?? "--\(option)") is for a rediss:// store (TLS); --store is not one")
        }
        if settings.redisPassword != nil, settings.store == .embedded {
            throw SettingsError("a Redis password is set but --store is embedded")
        }
        return settings
    }

    /// `--http-listen` and its companions (docs/http.md).
    private func httpFace() throws -> HTTPFaceConfiguration {
        var http = HTTPFaceConfiguration()
        if let text = values["http-listen"] {
            do {
                http.listen = try text.split(separator: ",").map { try HTTPListenAddress(parsing: $0.trimmingCharacters(in: .whitespaces)) }
            } catch {
                throw SettingsError("\(sources["http-listen"]!): \((error as? ConfigurationError)?.description ?? "\(error)")")
            }
        }
        for name in ["http-token-cookie", "http-refresh-cookie"] {
            guard let cookie = values[name] else { continue }
            guard Self.isToken(cookie) else { throw SettingsError("\(sources[name]!): \"\(cookie)\" is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)") }
        }
        http.tokenCookie = values["http-token-cookie"]
        http.refreshCookie = values["http-refresh-cookie"]
        if let attributes = values["http-cookie-attributes"] {
            guard !attributes.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value > 0x7E }) else {
                throw SettingsError("\(sources["http-cookie-attributes"]!): cookie attributes must be printable ASCII")
            }
            http.cookieAttributes = attributes
        }
        if let text = values["http-fingerprint-headers"] {
            http.fingerprintHeaders = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !http.fingerprintHeaders.isEmpty, http.fingerprintHeaders.allSatisfy(Self.isToken) else {
                throw SettingsError("\(sources["http-fingerprint-headers"]!): \"\(text)\" is not a comma-separated list of header names")
            }
        }
        http.claimsHeader = try flag("http-claims-header")
        if let file = values["http-introspect-secret-file"] {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw SettingsError("\(sources["http-introspect-secret-file"]!): cannot read \(file)")
            }
            // One line; a trailing newline is not part of the secret.
            let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
            // Visible ASCII: what an Authorization header carries without quoting (base64 and hex do).
            guard secret.utf8.count >= 16, secret.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw SettingsError("\(sources["http-introspect-secret-file"]!): the secret must be one line of at least 16 visible ASCII characters, no spaces (try: openssl rand -base64 32)")
            }
            http.introspectSecret = HTTPFaceConfiguration.Secret(Array(secret.utf8))
        }
        let companions = ["http-token-cookie", "http-refresh-cookie", "http-cookie-attributes", "http-fingerprint-headers", "http-claims-header",
                          "http-introspect-secret-file"].filter { values[$0] != nil }
        if let option = companions.first, !http.isEnabled {
            throw SettingsError("\(sources[option] ?? "--\(option)") configures the HTTP face, which is off; add --http-listen")
        }
        return http
    }

    /// An RFC 9110 token: what a header or cookie name may be.
    private static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            (0x21...0x7E).contains(byte) && !#"()<>@,;:\"/[]?={}"#.utf8.contains(byte)
        }
    }

    private func flag(_ name: String) throws -> Bool {
        guard let text = values[name] else { return false }
        guard let flag = Bool(text) else { throw SettingsError("\(sources[name]!): \"\(text)\" is not true or false") }
        return flag
    }

    func logFormat() throws -> LogFormat {
        guard let text = values["log-format"] else { return .text }
        guard let format = LogFormat(rawValue: text) else { throw SettingsError("\(sources["log-format"]!): \"\(text)\" is not text or json") }
        return format
    }

    func logLevel() throws -> Logger.Level {
        guard let text = values["log-level"] else { return .info }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw SettingsError("\(sources["log-level"]!): unknown log level \"\(text)\"")
        }
        return level
    }
}

struct SettingsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
