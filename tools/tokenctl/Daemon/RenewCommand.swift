import ArgumentParser

/// `tokenctl renew`: what a service does with a token it was handed.
struct RenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Verify a sliding-session token and extend its session if due."
    )

    @OptionGroup var options: DaemonOptions

    @Option(help: "The fingerprint of the client presenting the token (sent as UTF-8 bytes).") var fingerprint: String?
    @Argument(help: "The token.") var token: String

    func run() async throws {
        try await options.withClient { client in
            try await client.renew(token: token, fingerprint: Array((fingerprint ?? "").utf8)).print(json: options.json)
        }
    }
}
