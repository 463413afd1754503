import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl keys reload`.
struct KeysReload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make the daemon read its key directory again (as SIGHUP does).",
        discussion: """
            Keys added to <state-dir>/keys verify at once and sign from the time in their file name \
            (<unix-time>-<ALG>.key); keys removed stop verifying. This is how a new key reaches every \
            host of a shared store: copy the file, dated a little ahead, to each host, then reload each.
            """
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    func run() async throws {
        try await options.withClient { client in
            let keys = try await client.keysReload()
            if options.json {
                KeyInfo.printJSON(keys)
            } else {
                print("reloaded: \(keys.count) key\(keys.count == 1 ? "" : "s"); \(keys.first { $0.signing }.map { "\($0.kid) (\($0.algorithm))" } ?? "none") signs")
            }
        }
    }
}
