import ArgumentParser
import TokenJWT
import TokenProtocol

/// `tokenctl keys list`.
struct KeysList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the keys the daemon signs and verifies with."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    func run() async throws {
        try await options.withClient { client in
            let keys = try await client.keysList()
            if options.json {
                KeyInfo.printJSON(keys)
            } else {
                TextTable(
                    header: ["KID", "ALGORITHM", "SIGNING", "CREATED"],
                    rows: keys.map { [$0.kid, $0.algorithm, $0.signing ? "yes" : "no", UnixTime.iso($0.createdAt)] }
                ).print()
            }
        }
    }
}

extension KeyInfo {
    /// The `--json` output of the commands that answer with the daemon's keys.
    static func printJSON(_ keys: [KeyInfo]) {
        tokenctl.printJSON(JSONObject(["status": .string(Status.ok.name), "keys": .array(keys.map { .object($0.jsonObject) })]))
    }

    /// The key's fields as JSON members.
    var jsonObject: JSONObject {
        JSONObject([
            "kid": .string(kid),
            "algorithm": .string(algorithm),
            "signing": .bool(signing),
            "created_at": .integer(createdAt),
        ])
    }
}
