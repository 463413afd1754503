import Foundation
import TokenClient
import TokenJWT

extension DaemonOptions {
    /// Connects to the daemon, runs `body` and closes the connection.
    ///
    /// A ``TokenClientError`` is printed (as one JSON object with `--json`, else to stderr) and
    /// becomes the exit code: 1 when the daemon refused, 3 when it could not be reached or gave
    /// no usable answer.
    func withClient(_ body: (TokenClient) async throws -> Void) async throws {
        let client: TokenClient
        do {
            client = try await TokenClient.connect(socketPath: socket)
        } catch let error as TokenClientError {
            throw report(error)
        }
        do {
            try await body(client)
        } catch let error as TokenClientError {
            await client.close()
            throw report(error)
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }

    /// Prints `error` and returns the failure carrying its exit code.
    func report(_ error: TokenClientError) -> CommandFailure {
        // A refusal, or an error reply (such as too_large) after which the daemon hung up.
        if error.code == .refused || (error.code == .connectionClosed && error.status != nil) {
            let name = error.status?.name ?? error.code.description
            if json {
                printJSON(JSONObject(["status": .string(name), "message": .string(error.message)]))
            } else {
                printError(error.message.isEmpty ? name : "\(name): \(error.message)")
            }
            // The daemon's own failures are not a verdict on the request: a code of their own.
            return error.status == .storeUnavailable || error.status == .internalError ? .daemonFailure : .refused
        }
        let message = if error.code == .unreachable, error.message.hasSuffix(String(cString: strerror(EACCES))) {
            "\(error.message): tokend is there, but this user may not open its socket. The socket's mode (0660 by default) "
                + "lets in tokend's user and group: run tokenctl as one of them (or with sudo), or widen --socket-mode."
        } else if error.code == .unreachable {
            "\(error.message). Is tokend running? Start it, or point --socket or TOKEND_SOCKET at its socket."
        } else {
            "no usable answer from tokend at \(socket): \(error.message)"
        }
        if json {
            printJSON(JSONObject(["status": .string(error.code.description), "message": .string(message)]))
        } else {
            printError(message)
        }
        return .unreachable
    }
}
