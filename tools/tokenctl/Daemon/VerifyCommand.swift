import ArgumentParser

/// `tokenctl verify`: what a service does with a token it was handed.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a token (a sliding session may be extended: status renewed)."
    )

    @OptionGroup var options: DaemonOptions

    @Option(help: "The fingerprint of the client presenting the token (sent as UTF-8 bytes).") var fingerprint: String?
    @Argument(help: "The token.") var token: String

    func run() async throws {
        try await options.withClient { client in
            try await client.verify(token: token, fingerprint: Array((fingerprint ?? "").utf8)).print(json: options.json)
        }
    }
}
