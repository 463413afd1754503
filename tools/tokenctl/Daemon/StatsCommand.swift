import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl stats`: the daemon's counters and gauges.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the daemon's counters and gauges.",
        discussion: """
            --prometheus prints every metric in the Prometheus text format instead (request counts and \
            latency histograms per operation and status, store, cache, journal and snapshot figures), \
            for node_exporter's textfile collector: tokenctl stats --prometheus > DIR/tokend.prom.$$ && \
            mv DIR/tokend.prom.$$ DIR/tokend.prom
            """
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    @Flag(help: "Print the metrics in the Prometheus text format.") var prometheus = false

    func validate() throws {
        if prometheus && options.json { throw ValidationError("--prometheus and --json are two output formats; choose one") }
    }

    func run() async throws {
        try await options.withClient { client in
            if prometheus {
                print(try await client.metrics(), terminator: "")
                return
            }
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
