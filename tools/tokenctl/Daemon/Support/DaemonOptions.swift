import ArgumentParser
import TokenClient

/// The options every daemon subcommand takes: where the daemon is, and how to print.
struct DaemonOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "tokend's Unix domain socket. Default: $TOKEND_SOCKET, else ./tokend-data/tokend.sock, else /run/tokend/tokend.sock (systemd) when only that exists.",
        valueName: "path"
    ))
    var socket: String = TokenClient.defaultSocketPath

    @Flag(help: "Print exactly one JSON object instead of text.")
    var json = false
}
