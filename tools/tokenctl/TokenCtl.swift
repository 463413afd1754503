import ArgumentParser
import TokenProtocol
import Foundation

/// `tokenctl`: the client for people and scripts.
///
/// Exit codes: 0 accepted, 1 refused (or, for `store check`, a problem found), 2 usage error
/// (bad flags, unreadable files), 3 daemon unreachable, 4 the daemon could not serve the request
/// (`store_unavailable`, `internal_error`: not the request's fault; try again later).
struct TokenCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenctl",
        abstract: "Drive and inspect tokend, and work with JWTs offline.",
        version: TokendVersion.current,
        subcommands: [
            PingCommand.self, IssueCommand.self, VerifyCommand.self, RenewCommand.self, RefreshCommand.self,
            RevokeCommand.self, SessionsCommand.self, StatsCommand.self, TopCommand.self, KeysCommand.self, SnapshotCommand.self,
            StoreCommand.self, BenchCommand.self, JWTCommand.self,
        ]
    )

    /// Accepted before the subcommand too (`tokenctl --socket S stats`); the subcommands read
    /// the same values through their own `@OptionGroup`.
    @OptionGroup(title: "Global Options") var global: DaemonOptions
}

/// An error that ends the command with a specific exit code, its message already printed.
struct CommandFailure: Error {
    static let refused = CommandFailure(code: 1)
    static let usage = CommandFailure(code: 2)
    static let unreachable = CommandFailure(code: 3)
    static let daemonFailure = CommandFailure(code: 4)
    let code: Int32
}

/// A usage problem found while running (an unreadable key file): printed, then exit 2.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@main
enum TokenCtlMain {
    static func main() async {
        do {
            var command = try TokenCtl.parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            exit(failure.code)
        } catch let error as UsageError {
            FileHandle.standardError.write(Data("tokenctl: \(error)\n".utf8))
            exit(2)
        } catch {
            let code = TokenCtl.exitCode(for: error)
            if code == .success {
                // --help and --version: ArgumentParser reports them as errors.
                print(TokenCtl.fullMessage(for: error))
                exit(0)
            }
            FileHandle.standardError.write(Data((TokenCtl.fullMessage(for: error) + "\n").utf8))
            // ArgumentParser uses 64 (EX_USAGE) for usage errors; tokenctl promises 2.
            exit(code.rawValue == 64 || code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("tokenctl: \(message)\n".utf8))
}
