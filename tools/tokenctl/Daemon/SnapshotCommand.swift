import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl snapshot`: make the daemon write its snapshot now.
struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Make the daemon write a snapshot of its state now (admin).",
        discussion: """
            Answers once the snapshot is on disk; the journals it covers are then removed, so the \
            next start replays less. Check the files offline with `tokenctl store check`.
            """
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    func run() async throws {
        try await options.withClient { client in
            let written = try await client.snapshot()
            let message = written.message.isEmpty ? "snapshot written: \(written.records) records" : written.message
            if options.json {
                printJSON(JSONObject([
                    "status": .string(Status.ok.name),
                    "records": .integer(written.records),
                    "message": .string(message),
                ]))
            } else {
                print(message)
            }
        }
    }
}
