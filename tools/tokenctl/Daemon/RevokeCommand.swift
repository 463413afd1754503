import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl revoke`: log out one session, one token's login, or every login of a subject.
struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a token's login, a session by id, or every login of a subject.",
        discussion: "Give exactly one of --token, --session and --subject."
    )

    @OptionGroup var options: DaemonOptions

    @Option(help: "Revoke the session or refresh family of this token.") var token: String?
    @Option(help: ArgumentHelp("Revoke the session or family with this id.", valueName: "sid")) var session: String?
    @Option(help: "Revoke every session and family of this subject.") var subject: String?

    func validate() throws {
        _ = try target()
    }

    /// The one target given.
    private func target() throws -> RevokeRequest {
        switch (token, session, subject) {
        case (let token?, nil, nil): return .token(token)
        case (nil, let session?, nil): return .session(session)
        case (nil, nil, let subject?): return .subject(subject)
        default: throw ValidationError("give exactly one of --token, --session and --subject")
        }
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
