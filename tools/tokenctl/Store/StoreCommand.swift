import ArgumentParser

/// `tokenctl store ...`: offline tools for tokend's state files (no daemon needed).
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Inspect tokend's snapshot and journal files offline (no daemon needed).",
        subcommands: [StoreCheck.self]
    )
}
