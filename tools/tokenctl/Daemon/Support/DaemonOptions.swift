import ArgumentParser
import TokenClient

/// The options every daemon subcommand takes: where the daemon is, and how to print.
struct DaemonOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "tokend's Unix domain socket; $TOKEND_SOCKET sets the default.",
        valueName: "path"
    ))
    var socket: String = TokenClient.defaultSocketPath

    @Flag(help: "Print exactly one JSON object instead of text.")
    var json = false
}
