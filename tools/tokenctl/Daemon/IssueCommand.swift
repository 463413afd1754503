import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl issue`: start a login, as the host's auth service would.
struct IssueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue a login: a sliding-session token, or an access + refresh pair.",
        discussion: "Durations take a unit (5s, 30m, 2h, 1d; a bare number is seconds) and must be whole seconds; the daemon refuses them above its configured values (tokenctl ping --json shows them)."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    @Option(help: "Who the token is for (the sub claim).") var subject: String
    @OptionGroup var fingerprint: FingerprintOptions
    @Option(help: "session: one token, renewed by use; pair: access + refresh tokens.") var mode: ModeArgument = .session
    @Option(help: ArgumentHelp("Extra claims, as a JSON object.", valueName: "json")) var claims: String?
    @Option(help: "The aud claim.") var audience: String?
    @Option(help: ArgumentHelp("Makes a retried issue return the same tokens (within the dedup window).", valueName: "key"))
    var idempotencyKey: String?
    @Option(help: ArgumentHelp("Idle TTL (session) or access-token TTL (pair); refused above the daemon's own.", valueName: "duration"), transform: DurationArgument.parse)
    var ttl: DurationArgument?
    @Option(help: ArgumentHelp("Refresh-token TTL (pair).", valueName: "duration"), transform: DurationArgument.parse)
    var refreshTTL: DurationArgument?
    @Option(help: ArgumentHelp("Absolute maximum lifetime of the login.", valueName: "duration"), transform: DurationArgument.parse)
    var maxLifetime: DurationArgument?

    func validate() throws {
        try SecretInput.check([fingerprint.source])
        guard !subject.isEmpty else { throw ValidationError("--subject must not be empty") }
        if let claims {
            do {
                _ = try StrictJSONParser(maximumDepth: 64).parseObject(Array(claims.utf8))
            } catch {
                throw ValidationError("--claims must be a JSON object: \(error)")
            }
        }
    }

    func run() async throws {
        let request = IssueRequest(
            mode: mode.tokenMode,
            subject: subject,
            fingerprint: try fingerprint.bytes(),
            audience: audience,
            claims: claims,
            idempotencyKey: idempotencyKey.map { Array($0.utf8) },
            ttl: ttl?.seconds,
            refreshTTL: refreshTTL?.seconds,
            maxLifetime: maxLifetime?.seconds
        )
        try await options.withClient { client in
            try await client.issue(request).print(json: options.json)
        }
    }
}

/// `--mode`: the renewal scheme of the login.
enum ModeArgument: String, ExpressibleByArgument, CaseIterable {
    case session
    case pair

    var tokenMode: TokenMode { self == .session ? .session : .pair }
}
