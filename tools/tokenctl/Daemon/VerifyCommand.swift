import ArgumentParser

/// `tokenctl verify`: what a service does with a token it was handed.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a token (a sliding session may be extended: status renewed)."
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
            try await client.verify(token: token, fingerprint: fingerprint).print(json: options.json)
        }
    }
}
