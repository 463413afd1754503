import ArgumentParser
import Foundation

/// `tokenctl store check`: reads a state directory's snapshot and journals the way tokend's
/// start-up does, in the manner of `redis-check-aof`, and says what tokend would make of them.
struct StoreCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the snapshot and journals in a state directory, offline.",
        discussion: """
            Reads snapshot.tks and every journal-*.tkj in sequence order, checking each header, \
            record frame and checksum. Prints each file's header, size and record counts, then the \
            first problem with its byte offset: a torn tail of the newest journal (a crash \
            mid-write, which tokend cuts off at start) or damage (which stops tokend; see \
            `tokend --repair`). Prints no record contents. Run it on a stopped daemon's directory \
            or a copy: a running daemon may be caught mid-write.

            Exit status: 0 clean, 1 any problem (a torn tail too), 2 the directory or a file in it \
            cannot be read.
            """
    )

    @Option(help: ArgumentHelp(
        "tokend's state directory; $TOKEND_STATE_DIR sets the default, else ./tokend-data.",
        valueName: "dir"
    ))
    var stateDir: String = ProcessInfo.processInfo.environment["TOKEND_STATE_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./tokend-data"

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    func validate() throws {
        guard !stateDir.isEmpty else { throw ValidationError("--state-dir must not be empty") }
    }

    func run() async throws {
        let report = try StateDirectoryReport(checking: stateDir)
        report.print(json: options.json)
        if report.problem != nil { throw CommandFailure.refused }
    }
}
