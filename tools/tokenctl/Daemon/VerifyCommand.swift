import ArgumentParser

/// `tokenctl verify`: what a service does with a token it was handed.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a token (a sliding session may be extended: status renewed).",
        discussion: "With --refresh-token, an expired access token has its pair rotated at once (status refreshed), and the new pair is printed."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    @OptionGroup var fingerprint: FingerprintOptions
    @OptionGroup var token: TokenArgument
    @Option(parsing: .unconditional, help: ArgumentHelp("The refresh token of the access token's pair: rotated if the access token has expired; '-' reads it from standard input.", valueName: "token"))
    var refreshToken: String?
    @Option(help: ArgumentHelp("Read the refresh token from this file.", valueName: "file")) var refreshTokenFile: String?

    func validate() throws {
        try SecretInput.check([token.source, fingerprint.source, ("refresh token", refreshToken, refreshTokenFile)])
    }

    func run() async throws {
        let token = try token.text(), fingerprint = try fingerprint.bytes()
        let refreshToken = try SecretInput.text(value: refreshToken, file: refreshTokenFile, name: "refresh token")
        try await options.withClient { client in
            try await client.verify(token: token, fingerprint: fingerprint, refreshToken: refreshToken).print(json: options.json)
        }
    }
}
