import ArgumentParser

/// `tokenctl renew`: what a service does with a token it was handed.
struct RenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Verify a sliding-session token and extend its session if due."
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
            try await client.renew(token: token, fingerprint: fingerprint).print(json: options.json)
        }
    }
}
