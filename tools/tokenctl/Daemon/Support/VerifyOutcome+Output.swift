import TokenClient
import TokenJWT

extension VerifyOutcome {
    /// Prints an accepted `verify` or `renew`.
    func print(json: Bool) {
        if json {
            printJSON(JSONObject([
                "status": .string(status.name),
                "mode": .string(result.mode.name),
                "subject": .string(result.subject),
                "session_id": .string(result.sessionID),
                "claims": .embedded(json: result.claimsJSON),
                "expires_at": .integer(result.expiresAt),
                "token_expires_at": .integer(result.tokenExpiresAt),
                "renewed": .bool(renewed),
            ]))
            return
        }
        TextTable(rows: [
            ["status", status.name],
            ["mode", result.mode.name],
            ["subject", result.subject],
            ["session_id", result.sessionID],
            ["expires_at", UnixTime.describe(result.expiresAt)],
            ["token_expires_at", UnixTime.describe(result.tokenExpiresAt)],
            ["renewed", renewed ? "yes" : "no"],
            ["claims", result.claimsJSON],
        ]).print()
    }
}
