/// One of tokend's options, declared once: flags, the environment (`TOKEND_` and the name in
/// upper snake case), the config file (`name = value`), `--help`, README's table and what a
/// reload (SIGHUP) applies all come from `TokendOptions.all`.
///
/// apple/swift-configuration was weighed for the layering: its providers (environment, JSON or
/// YAML files, reloading) do not read tokend's systemd-style `name = value` file, and it makes
/// neither flags nor `--help` nor a README table, so this declaration would still be needed;
/// the layering itself is thirty lines of `Settings`.
struct TokendOption: Sendable {
    enum Kind: Sendable, Equatable {
        /// `--name VALUE`; the value names what it is in `--help`.
        case value(String)
        /// `--name` alone; `true` or `false` in the environment and the file.
        case flag
        /// `--name VALUE`, repeatable; a comma-separated list in the environment and the file.
        case repeated(String)
    }

    let name: String
    let kind: Kind
    let help: String
    /// What applies when the option is not given, as README's table says it.
    let defaultValue: String
    /// Whether a reload (SIGHUP) applies a new value; any other change needs a restart.
    var reloadable = false

    var flag: String { "--\(name)" }
    /// `--name VALUE`, or `--name` for a flag.
    var usage: String {
        switch kind {
        case .value(let value), .repeated(let value): "\(flag) \(value)"
        case .flag: flag
        }
    }
    var environmentVariable: String { "TOKEND_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
}

enum TokendOptions {
    static let all: [TokendOption] = [
        .init(name: "state-dir", kind: .value("DIR"), help: "State directory: keys, the snapshot and the journals (created 0700).", defaultValue: "./tokend-data"),
        .init(name: "socket", kind: .value("PATH"), help: "Unix socket path.", defaultValue: "<state-dir>/tokend.sock"),
        .init(name: "socket-mode", kind: .value("MODE"), help: "Socket file mode, octal.", defaultValue: "660"),
        .init(name: "access-ttl", kind: .value("DURATION"), help: "Access-token lifetime (pair mode).", defaultValue: "30m"),
        .init(name: "refresh-ttl", kind: .value("DURATION"), help: "Refresh-token lifetime (pair mode).", defaultValue: "60m"),
        .init(name: "session-idle", kind: .value("DURATION"), help: "Idle timeout of a sliding session.", defaultValue: "2h"),
        .init(name: "renew-below", kind: .value("DURATION"), help: "A verify renews a session when less than this remains.",
              defaultValue: "1h (at most half of --session-idle)"),
        .init(name: "renew-by", kind: .value("DURATION"), help: "...by this much, never past the maximum lifetime.",
              defaultValue: "1h (at most half of --session-idle)"),
        .init(name: "max-lifetime", kind: .value("DURATION"), help: "Absolute maximum lifetime of a login.", defaultValue: "12h"),
        .init(name: "dedup-window", kind: .value("DURATION"),
              help: "How long the result of a refresh, or of an issue with an idempotency key, is handed out again to any repeat (to the millisecond: 1500ms).",
              defaultValue: "5s"),
        .init(name: "rotation-grace", kind: .value("DURATION"),
              help: "How long after a refresh a retry of the spent refresh token still gets the same new pair, while that pair is unused (a lost response); 0 turns it off.",
              defaultValue: "the family's access-token TTL"),
        .init(name: "alg", kind: .value("ALG"), help: "Signing algorithm: HS256, HS384, HS512, ES256, Ed25519, EdDSA or RS256.", defaultValue: "HS256"),
        .init(name: "issuer", kind: .value("TEXT"), help: "The iss claim.", defaultValue: "tokend"),
        .init(name: "leeway", kind: .value("DURATION"), help: "Clock skew tolerated on exp.", defaultValue: "0s"),
        .init(name: "issue-uids", kind: .value("UIDS"), help: "Comma-separated uids allowed to issue.", defaultValue: "tokend's own uid and root",
              reloadable: true),
        .init(name: "issue-gids", kind: .value("GIDS"), help: "Comma-separated gids allowed to issue.", defaultValue: "none", reloadable: true),
        .init(name: "admin-uids", kind: .value("UIDS"), help: "Comma-separated uids allowed admin operations.", defaultValue: "tokend's own uid and root",
              reloadable: true),
        .init(name: "admin-gids", kind: .value("GIDS"), help: "Comma-separated gids allowed admin operations.", defaultValue: "none", reloadable: true),
        .init(name: "max-frame-size", kind: .value("BYTES"), help: "Largest request frame, in bytes, at least 32768.", defaultValue: "65536"),
        .init(name: "max-connections", kind: .value("N"), help: "Most concurrent connections; lowered at start to what the open-file limit allows.",
              defaultValue: "4096"),
        .init(name: "max-connections-per-uid", kind: .value("N"), help: "Most connections one uid may hold (admins excepted).",
              defaultValue: "a quarter of --max-connections"),
        .init(name: "max-in-flight", kind: .value("N"), help: "Most requests in flight per connection before reading pauses.", defaultValue: "256"),
        .init(name: "idle-timeout", kind: .value("DURATION"),
              help: "Close connections that complete no request for this long (tracking connections excepted); 0 disables.", defaultValue: "5m"),
        .init(name: "log-level", kind: .value("LEVEL"), help: "trace, debug, info, notice, warning, error or critical.", defaultValue: "info",
              reloadable: true),
        .init(name: "log-format", kind: .value("FORMAT"), help: "text, or json: one JSON object per line with the metadata keys as fields.",
              defaultValue: "text"),
        .init(name: "fsync", kind: .value("POLICY"),
              help: "When the journal reaches the disk: always (before each reply, shared by concurrent requests), everysec or no.",
              defaultValue: "everysec"),
        .init(name: "snapshot-interval", kind: .value("DURATION"), help: "Write a snapshot this often when anything changed; 0 disables.", defaultValue: "5m"),
        .init(name: "snapshot-changes", kind: .value("N"), help: "Write a snapshot after this many changes; 0 disables.", defaultValue: "100000"),
        .init(name: "verified-cache-size", kind: .value("N"),
              help: "Verified tokens remembered so that repeated verifies skip the signature check; 0 disables.", defaultValue: "10000"),
        .init(name: "repair", kind: .flag, help: "Start despite damaged state files: keep the valid part and move the damaged file aside as *.broken.",
              defaultValue: "off"),
        .init(name: "store", kind: .value("STORE"),
              help: "Where state lives: embedded (this process, persisted to the state directory), redis://[USER@]HOST[:PORT][/DB], "
                  + "rediss://... (TLS) or redis+unix://[USER@]/PATH[?db=N] (shared by every host's tokend; a Redis Cluster is detected).",
              defaultValue: "embedded"),
        .init(name: "redis-password-file", kind: .value("FILE"),
              help: "File holding the Redis password (or set TOKEND_REDIS_PASSWORD); never a flag value, which ps would show.", defaultValue: "none"),
        .init(name: "store-timeout", kind: .value("DURATION"), help: "How long the shared store may take before a request fails with store_unavailable.",
              defaultValue: "500ms"),
        .init(name: "redis-tls-ca-file", kind: .value("FILE"), help: "rediss:// store: PEM file of the CAs that sign Redis's certificate.",
              defaultValue: "the system's roots"),
        .init(name: "redis-tls-cert-file", kind: .value("FILE"),
              help: "rediss:// store: PEM client certificate, for a Redis that verifies its clients (with --redis-tls-key-file).", defaultValue: "none"),
        .init(name: "redis-tls-key-file", kind: .value("FILE"), help: "rediss:// store: PEM private key of the client certificate.", defaultValue: "none"),
        .init(name: "redis-tls-server-name", kind: .value("NAME"),
              help: "rediss:// store: the name Redis's certificate must carry, when not the URL's host (checked always).", defaultValue: "the URL's host"),
        .init(name: "init-keys", kind: .flag,
              help: "With a shared store, create the key directory if it is empty (the first host only; copy it to the others).", defaultValue: "off"),
        .init(name: "metrics-listen", kind: .value("HOST:PORT"), help: "Serve Prometheus metrics over HTTP at http://HOST:PORT/metrics.", defaultValue: "off"),
        .init(name: "http-listen", kind: .repeated("ADDRESS"),
              help: "Serve the HTTP face (docs/http.md: /auth for nginx auth_request and other proxies, /introspect, the JWKS) on unix:PATH or "
                  + "HOST:PORT; repeat for several.", defaultValue: "off"),
        .init(name: "http-token-cookie", kind: .value("NAME"), help: "HTTP face: the cookie to read the token from when a request has no Authorization: Bearer.",
              defaultValue: "none"),
        .init(name: "http-refresh-cookie", kind: .value("NAME"),
              help: "HTTP face: the cookie holding the refresh token; /auth then refreshes an expired access token.", defaultValue: "none"),
        .init(name: "http-cookie-attributes", kind: .value("TEXT"), help: "HTTP face: attributes of the cookies /auth hands back after a refresh.",
              defaultValue: "Path=/; HttpOnly; Secure; SameSite=Lax"),
        .init(name: "http-fingerprint-headers", kind: .value("NAMES"),
              help: "HTTP face: request headers whose values make the fingerprint, comma-separated (e.g. User-Agent,X-Device-Id).", defaultValue: "none"),
        .init(name: "http-claims-header", kind: .flag, help: "HTTP face: /auth adds X-Tokend-Claims, the token's claims as base64url JSON.",
              defaultValue: "off"),
        .init(name: "http-introspect-secret-file", kind: .value("FILE"),
              help: "HTTP face: a file holding a secret that /introspect then requires as Authorization: Bearer.", defaultValue: "none"),
    ]

    static func named(_ name: String) -> TokendOption? { all.first { $0.name == name } }

    /// Reads the command line's options (everything but `--config`, `--help` and `--version`):
    /// `--name VALUE`, `--name=VALUE`, or `--name` alone for a flag. A repeated option's values
    /// are joined with commas, as the environment and the file write them.
    static func parse(_ arguments: [String]) throws -> [String: String] {
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                throw SettingsError("unexpected argument \"\(argument)\"; tokend takes only options (tokend --help lists them)")
            }
            let (name, inline) = argument.dropFirst(2).split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                .map(String.init).splitFirst()
            guard let option = named(name) else { throw SettingsError("unknown option --\(name) (tokend --help lists them)") }
            let value: String
            if option.kind == .flag {
                guard inline == nil else { throw SettingsError("--\(name) takes no value") }
                value = "true"
            } else if let inline {
                value = inline
            } else {
                guard index < arguments.count, !arguments[index].hasPrefix("--") else { throw SettingsError("--\(name) needs a value") }
                value = arguments[index]
                index += 1
            }
            if case .repeated = option.kind, let earlier = values[name] {
                values[name] = earlier + "," + value
            } else {
                // A flag given twice is the flag; a value given twice is a mistake.
                guard values[name] == nil || option.kind == .flag else { throw SettingsError("--\(name) is given twice") }
                values[name] = value
            }
        }
        return values
    }

    /// The options for `--help`.
    static var helpText: String {
        all.map { option in
            let usage = if case .repeated = option.kind { option.usage + " ..." } else { option.usage }
            let reload = option.reloadable ? " A reload (SIGHUP) applies a new value." : ""
            return "  \(usage)\n" + wrap("\(option.help) Default: \(option.defaultValue).\(reload)", indent: 8, width: 80)
        }.joined(separator: "\n")
    }

    /// `text` in lines of at most `width` columns, each indented by `indent` (so that
    /// ArgumentParser, which wraps at 80, leaves them as they are).
    private static func wrap(_ text: String, indent: Int, width: Int) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty, indent + line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines.map { String(repeating: " ", count: indent) + $0 }.joined(separator: "\n")
    }

    /// README's table of options (between its `options:begin` and `options:end` markers).
    static var markdownTable: String {
        var lines = ["| option | default | reload | what it sets |", "|---|---|---|---|"]
        for option in all {
            let help = option.help.replacingOccurrences(of: "|", with: "\\|")
            let defaultValue = option.defaultValue.replacingOccurrences(of: "<", with: "&lt;")
            lines.append("| `\(option.usage)` | \(defaultValue) | \(option.reloadable ? "yes" : "") | \(help) |")
        }
        return lines.joined(separator: "\n")
    }
}

private extension Array where Element == String {
    /// The first element and, if there is one, the second.
    func splitFirst() -> (String, String?) { (self[0], count > 1 ? self[1] : nil) }
}
