import ArgumentParser
import TokenProtocol
import Foundation
import Logging
import ServiceLifecycle
import TokenJWT
import TokenServer

/// `tokend`: the token daemon.
///
/// Every option can also come from the environment (`TOKEND_` + the option's name in upper
/// snake case, e.g. `TOKEND_ACCESS_TTL`) or from a config file (`--config FILE`, lines of
/// `name = value` with the option's name, `#` comments). Precedence: flag, then environment,
/// then config file, then the built-in default.
@main
struct Tokend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokend",
        abstract: "The tokend token daemon: issues, verifies, renews, rotates and revokes JWTs over a Unix socket.",
        discussion: """
            Every option may also be set as an environment variable (TOKEND_ + the name in upper snake \
            case: --access-ttl is TOKEND_ACCESS_TTL) or in a config file given by --config (lines of \
            "name = value", e.g. "access-ttl = 15m"). A flag beats the environment, which beats the file, \
            which beats the default. Durations are written 250ms, 5s, 30m, 2h or 1d.

            OPTIONS OF THE DAEMON:
            \(TokendOptions.helpText)
            """,
        version: TokendVersion.current
    )

    @Option(help: "Config file of `name = value` lines (or TOKEND_CONFIG).") var config: String?
    /// Every other option, read by `TokendOptions.parse` from the one declaration of each.
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The daemon's options: OPTIONS OF THE DAEMON, above.", valueName: "option"), completion: .list(TokendOptions.all.map(\.flag))) var options: [String] = []
    @Flag(help: .hidden) var printOptionsTable = false

    func run() async throws {
        if printOptionsTable {
            print(TokendOptions.markdownTable)
            return
        }
        let configuration: TokendConfiguration
        let store: StoreSettings
        let level: Logger.Level
        let format: LogFormat
        let initial: Settings
        do {
            let settings = try Settings(command: self)
            initial = settings
            configuration = try settings.configuration()
            store = try settings.storeSettings()
            level = try settings.logLevel()
            format = try settings.logFormat()
        } catch let error as SettingsError {
            throw ValidationError(error.description)
        }
        let sharedLevel = SharedLogLevel(level)
        LoggingSystem.bootstrap { label in TokendLogHandler(label: label, format: format, level: sharedLevel) }
        let logger = Logger(label: "tokend")
        // A reload reads flags, environment and config file again, as at start, and names the
        // options whose change needs a restart.
        let command = self
        let reload: @Sendable () throws -> TokendServer.Reload = {
            let settings = try Settings(command: command)
            let updated = try settings.configuration()
            sharedLevel.level = try settings.logLevel()
            return TokendServer.Reload(configuration: updated, needsRestart: settings.changedNeedingRestart(since: initial))
        }
        do {
            let server = try TokendServer(configuration: configuration, logger: logger, reloadConfiguration: reload, backend: store.factory)
            let group = ServiceGroup(
                configuration: .init(services: [server] + server.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            )
            try await group.run()
        } catch let error as ConfigurationError {
            logger.critical("cannot start", metadata: ["reason": "\(error.description)"])
            FileHandle.standardError.write(Data("tokend: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
    }
}
