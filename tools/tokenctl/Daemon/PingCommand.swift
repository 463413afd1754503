import ArgumentParser
import Foundation
import TokenJWT

/// `tokenctl ping`: is the daemon there, and what is it?
struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Check that tokend answers; show its name, protocol version, settings and round-trip time."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    func run() async throws {
        try await options.withClient { client in
            let hello = try await client.hello(clientName: "tokenctl")
            let clock = ContinuousClock()
            let start = clock.now
            let storeHealthy = try await client.ping()
            let elapsed = start.duration(to: clock.now)
            let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            let roundTrip = String(format: "%.3f", milliseconds)
            let settings: [(String, UInt64)] = hello.settings.map { settings in
                [
                    ("dedup_window_ms", settings.dedupWindowMilliseconds), ("idle_ttl", settings.idleTTL),
                    ("renew_below", settings.renewBelow), ("renew_by", settings.renewBy), ("access_ttl", settings.accessTTL),
                    ("refresh_token_ttl", settings.refreshTTL), ("max_login_lifetime", settings.maxLifetime), ("leeway", settings.leeway),
                ]
            } ?? []
            // A readiness check: a daemon whose store cannot serve (Redis down, a wrong
            // password, a full state directory) is not ready.
            let ready = storeHealthy ?? true
            if options.json {
                var object = JSONObject([
                    "status": .string(ready ? "ok" : "store_unavailable"),
                    "socket": .string(options.socket),
                    "server_name": .string(hello.serverName),
                    "protocol_version": .integer(hello.protocolVersion),
                    "max_frame_size": .integer(hello.maxFrameSize),
                    "round_trip_ms": .number(roundTrip),
                ])
                if let storeHealthy { object.append("store_healthy", .bool(storeHealthy)) }
                for (name, value) in settings { object.append(name, .integer(value)) }
                printJSON(object)
            } else {
                print("ok: \(hello.serverName) at \(options.socket), protocol \(hello.protocolVersion), "
                    + "max frame \(hello.maxFrameSize) bytes, round trip \(roundTrip) ms")
                if !settings.isEmpty {
                    print("settings: " + settings.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
                }
                if !ready { printError("store_unavailable: tokend answers, but its state store cannot serve every operation now (see its log)") }
            }
            if !ready { throw CommandFailure.daemonFailure }
        }
    }
}
