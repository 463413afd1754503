import ArgumentParser
import Foundation
import TokenClient
import TokenJWT
import TokenProtocol

/// `tokenctl sessions`: list sessions and refresh families.
struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "List sessions (sliding logins) and refresh families (pair logins)."
    )

    @OptionGroup(title: "Global Options") var options: DaemonOptions

    @Option(help: "Only this subject's logins (all in one reply).") var subject: String?
    @Option(help: "At most this many per page, 1 to 1000 (without --subject; the daemon's default is 100).") var limit: UInt64?
    @Flag(help: "Follow the cursor through every page.") var all = false

    func validate() throws {
        if let limit, !(1...1000).contains(limit) { throw ValidationError("--limit must be from 1 to 1000") }
    }

    func run() async throws {
        try await options.withClient { client in
            var sessions: [SessionInfo] = []
            var cursor: String?
            var seen: Set<String> = []
            repeat {
                let page = try await client.sessions(SessionsRequest(subject: subject, cursor: cursor, limit: limit))
                sessions += page.sessions
                cursor = page.nextCursor
                if let cursor, !seen.insert(cursor).inserted {
                    throw TokenClientError(.protocolViolation, message: "the daemon handed out the cursor \(cursor) twice")
                }
            } while all && cursor != nil
            // Newest first (pages come in session-id order, which says nothing to a person).
            let newestFirst = sessions.enumerated().sorted { ($0.element.createdAt, $1.offset) > ($1.element.createdAt, $0.offset) }.map(\.element)
            print(newestFirst, nextCursor: cursor)
        }
    }

    private func print(_ sessions: [SessionInfo], nextCursor: String?) {
        if options.json {
            let records = sessions.map { session in
                JSONValue.object(JSONObject([
                    "session_id": .string(session.sessionID),
                    "subject": .string(session.subject),
                    "mode": .string(session.mode.name),
                    "state": .string(session.state.name),
                    "created_at": .integer(session.createdAt),
                    "expires_at": .integer(session.expiresAt),
                    "max_expires_at": .integer(session.maxExpiresAt),
                ]))
            }
            printJSON(JSONObject(["status": .string(Status.ok.name), "sessions": .array(records), "next_cursor": .optional(nextCursor)]))
            return
        }
        if sessions.isEmpty {
            Swift.print("no sessions")
        } else {
            TextTable(
                header: ["SESSION_ID", "SUBJECT", "MODE", "STATE", "CREATED", "EXPIRES", "MAX_EXPIRES"],
                rows: sessions.map { session in
                    [session.sessionID, session.subject, session.mode.name, session.state.name,
                     UnixTime.iso(session.createdAt), UnixTime.iso(session.expiresAt), UnixTime.iso(session.maxExpiresAt)]
                }
            ).print()
            let states = Dictionary(grouping: sessions, by: \.state.name).mapValues(\.count)
            let counts = ["active", "idle_expired", "revoked"].compactMap { name in states[name].map { "\($0) \(name)" } }
            Swift.print("\(sessions.count) \(sessions.count == 1 ? "login" : "logins"), newest first: \(counts.joined(separator: ", "))")
        }
        if let nextCursor {
            fflush(nil)  // the table first, then the hint
            printError("more sessions follow (next cursor: \(nextCursor)); pass --all to list every page")
        }
    }
}
