import ArgumentParser

/// `tokenctl refresh`: spend a refresh token for a new pair.
struct RefreshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh",
        abstract: "Spend a refresh token for a new access + refresh pair."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    @OptionGroup var fingerprint: FingerprintOptions
    @OptionGroup var token: TokenArgument

    func validate() throws {
        try SecretInput.check([token.source, fingerprint.source])
    }

    func run() async throws {
        let token = try token.text(), fingerprint = try fingerprint.bytes()
        try await options.withClient { client in
            try await client.refresh(token: token, fingerprint: fingerprint).print(json: options.json)
        }
    }
}
