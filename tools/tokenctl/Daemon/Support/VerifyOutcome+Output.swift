import TokenClient
import TokenJWT

extension VerifyOutcome {
    /// Prints an accepted `verify` or `renew`.
    func print(json: Bool) {
        if json {
            var object = JSONObject([
                "status": .string(status.name),
                "mode": .string(result.mode.name),
                "subject": .string(result.subject),
                "session_id": .string(result.sessionID),
                "claims": .embedded(json: result.claimsJSON),
                "expires_at": .integer(result.expiresAt),
                "token_expires_at": .integer(result.tokenExpiresAt),
                "renewed": .bool(renewed),
            ])
            if let pair = refreshed {
                object.append("access_token", .optional(pair.accessToken))
                object.append("refresh_token", .optional(pair.refreshToken))
                object.append("refresh_expires_at", pair.refreshExpiresAt.map { .integer($0) } ?? .null)
                object.append("max_expires_at", .integer(pair.maxExpiresAt))
            }
            printJSON(object)
            return
        }
        if let pair = refreshed {
            // The new pair first: the caller must keep it (the refresh token presented is spent).
            TextTable(rows: [
                ["access_token", pair.accessToken ?? ""],
                ["refresh_token", pair.refreshToken ?? ""],
                ["refresh_expires_at", pair.refreshExpiresAt.map { UnixTime.describe($0) } ?? "-"],
            ]).print()
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
