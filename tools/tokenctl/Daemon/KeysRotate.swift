import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl keys rotate`.
struct KeysRotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Make a new signing key; older keys keep verifying the tokens they signed."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    func run() async throws {
        try await options.withClient { client in
            let key = try await client.keysRotate()
            if options.json {
                var object = JSONObject(["status": .string(Status.ok.name)])
                object.members += key.jsonObject.members
                printJSON(object)
            } else {
                print("rotated: \(key.kid) (\(key.algorithm)) now signs new tokens")
            }
        }
    }
}
