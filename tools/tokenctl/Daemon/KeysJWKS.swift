import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl keys jwks`.
struct KeysJWKS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwks",
        abstract: "Print the public keys as a JWK Set, for services that verify on their own."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    func run() async throws {
        try await options.withClient { client in
            let jwks = try await client.keysJWKS()
            if options.json {
                printJSON(JSONObject(["status": .string(Status.ok.name), "jwks": .embedded(json: jwks)]))
            } else {
                print(jwks)
            }
        }
    }
}
