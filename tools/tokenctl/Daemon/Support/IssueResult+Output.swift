import TokenJWT
import TokenProtocol

extension IssueResult {
    /// Prints a new login (`issue`) or a rotated pair (`refresh`).
    func print(json: Bool) {
        if json {
            var object = JSONObject(["status": .string(Status.ok.name), "mode": .string(mode.name), "session_id": .string(sessionID)])
            if let sessionToken { object.append("token", .string(sessionToken)) }
            if let accessToken { object.append("access_token", .string(accessToken)) }
            if let refreshToken { object.append("refresh_token", .string(refreshToken)) }
            object.append("expires_at", .integer(expiresAt))
            if let refreshExpiresAt { object.append("refresh_expires_at", .integer(refreshExpiresAt)) }
            object.append("max_expires_at", .integer(maxExpiresAt))
            printJSON(object)
            return
        }
        var table = TextTable(rows: [["mode", mode.name], ["session_id", sessionID]])
        if let sessionToken { table.append(["token", sessionToken]) }
        if let accessToken { table.append(["access_token", accessToken]) }
        if let refreshToken { table.append(["refresh_token", refreshToken]) }
        table.append(["expires_at", UnixTime.describe(expiresAt)])
        if let refreshExpiresAt { table.append(["refresh_expires_at", UnixTime.describe(refreshExpiresAt)]) }
        table.append(["max_expires_at", UnixTime.describe(maxExpiresAt)])
        table.print()
    }
}
