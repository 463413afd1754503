import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl stats`: the daemon's counters and gauges.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the daemon's counters and gauges."
    )

    @OptionGroup var options: DaemonOptions

    func run() async throws {
        try await options.withClient { client in
            let statistics = try await client.stats()
            if options.json {
                let values = JSONObject(members: statistics.map { JSONObject.Member(name: $0.name, value: .integer($0.value)) })
                printJSON(JSONObject(["status": .string(Status.ok.name), "stats": .object(values)]))
            } else {
                TextTable(header: ["NAME", "VALUE"], rows: statistics.map { [$0.name, String($0.value)] }).print()
            }
        }
    }
}
