import ArgumentParser

/// `tokenctl refresh`: spend a refresh token for a new pair.
struct RefreshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh",
        abstract: "Spend a refresh token for a new access + refresh pair."
    )

    @OptionGroup var options: DaemonOptions

    @Option(help: "The fingerprint of the client presenting the token (sent as UTF-8 bytes).") var fingerprint: String?
    @Argument(help: "The refresh token.") var token: String

    func run() async throws {
        try await options.withClient { client in
            try await client.refresh(token: token, fingerprint: Array((fingerprint ?? "").utf8)).print(json: options.json)
        }
    }
}
