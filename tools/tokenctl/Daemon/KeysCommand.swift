import ArgumentParser

/// `tokenctl keys ...`: the daemon's signing keys.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List, publish, rotate and reload the daemon's signing keys.",
        subcommands: [KeysList.self, KeysJWKS.self, KeysRotate.self, KeysReload.self]
    )
}
