import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl revoke`: log out one session, one token's login, or every login of a subject.
struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a token's login, a session by id, or every login of a subject.",
        discussion: "Give exactly one of --token (or --token-file), --session and --subject."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    // Ids and tokens are base64url, which may begin with '-': taken as values whatever they look like.
    @Option(parsing: .unconditional, help: "Revoke the session or refresh family of this token; '-' reads it from standard input.") var token: String?
    @Option(help: ArgumentHelp("Read the token to revoke from this file.", valueName: "file")) var tokenFile: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Revoke the session or family with this id.", valueName: "sid")) var session: String?
    @Option(parsing: .unconditional, help: "Revoke every session and family of this subject.") var subject: String?

    func validate() throws {
        try SecretInput.check([("token", token, tokenFile)])
        let given = [token ?? tokenFile, session, subject].compactMap { $0 }
        guard given.count == 1 else { throw ValidationError("give exactly one of --token (or --token-file), --session and --subject") }
    }

    /// The one target given.
    private func target() throws -> RevokeRequest {
        if let token = try SecretInput.text(value: token, file: tokenFile, name: "token") { return .token(token) }
        if let session { return .session(session) }
        if let subject { return .subject(subject) }
        throw ValidationError("give exactly one of --token (or --token-file), --session and --subject")
    }

    func run() async throws {
        let request = try target()
        try await options.withClient { client in
            let count = try await client.revoke(request)
            if options.json {
                printJSON(JSONObject(["status": .string(Status.ok.name), "count": .integer(count)]))
            } else {
                print("revoked \(count) \(count == 1 ? "session" : "sessions")")
            }
        }
    }
}
