import TokenProtocol

/// The typed operations. Each throws ``TokenClientError`` with code
/// ``TokenClientError/Code/refused`` (and the status and message) unless the daemon answers
/// `ok` or `renewed`, and ``TokenClientError/Code/protocolViolation`` when an accepted reply
/// lacks a field the operation needs.
extension TokenClient {
    /// Introduces the client and learns the daemon's version and limits. Optional; afterwards
    /// the client refuses (``TokenClientError/Code/refused``, status `too_large`) to send a
    /// request larger than the daemon's `max_frame_size` instead of losing the connection.
    public func hello(clientName: String? = nil) async throws -> HelloInfo {
        let response = try await call(.hello, HelloRequest(clientName: clientName).fields)
        return try parse(response) { fields throws(ProtocolError) in try HelloInfo(fields: fields) }
    }

    /// Checks that the daemon answers.
    /// Liveness; returns whether the daemon's state store serves every operation now (nil from
    /// a daemon that does not say).
    @discardableResult
    public func ping() async throws -> Bool? {
        let response = try await call(.ping)
        return try? response.fields.bool(.storeHealthy)
    }

    /// Starts a login: a sliding session or an access + refresh pair.
    public func issue(_ request: IssueRequest) async throws -> IssueResult {
        let response = try await call(.issue, request.fields)
        return try parse(response) { fields throws(ProtocolError) in try IssueResult(fields: fields) }
    }

    /// Verifies a token presented by the client with `fingerprint` (empty: not bound).
    ///
    /// For a sliding session this may extend the session; the outcome's status is then `renewed`.
    ///
    /// With `refreshToken`, the refresh token of the same pair (verify-or-refresh): when the access
    /// token has expired, the daemon rotates the pair and the outcome is `refreshed`, with the new
    /// pair in ``VerifyOutcome/refreshed``. After a lost reply, repeat it as `refresh` says.
    /// A `refreshed` answer does not count as a use of the pair it carries.
    ///
    /// With a near cache, an answer the daemon said may be reused is given again locally
    /// (``VerifyOutcome/local``, status `ok`) until the time it said, unless an invalidation
    /// dropped it.
    public func verify(token: String, fingerprint: [UInt8] = [], refreshToken: String? = nil) async throws -> VerifyOutcome {
        guard let nearCache, !nearCache.isDisabled else {
            return try await verifyOutcome(.verify, TokenRequest(token: token, fingerprint: fingerprint, refreshToken: refreshToken))
        }
        let key = NearCache.Key(token: token, fingerprint: fingerprint)
        readInvalidations(into: nearCache)
        if let cached = nearCache.lookup(key) { return VerifyOutcome(status: .ok, result: cached, local: true) }
        let generation = nearCache.generation
        let outcome = try await verifyOutcome(.verify, TokenRequest(token: token, fingerprint: fingerprint, refreshToken: refreshToken))
        if outcome.status != .refreshed { nearCache.insert(key, outcome.result, sentAt: generation) }
        return outcome
    }

    /// Verifies a sliding-session token and extends its session if the renew threshold allows.
    public func renew(token: String, fingerprint: [UInt8] = []) async throws -> VerifyOutcome {
        try await verifyOutcome(.renew, TokenRequest(token: token, fingerprint: fingerprint))
    }

    /// Spends a refresh token for a new access + refresh pair.
    ///
    /// After a lost reply (a timeout, a closed connection) repeat it with the same token and
    /// fingerprint before anything else: within the daemon's dedup window, and after it while
    /// the new pair is unused (within the rotation grace, proto-spec.md 12.6), the repeat gets
    /// the same pair. Never present an older refresh token once a newer pair was used: that is
    /// reuse, and revokes the login.
    public func refresh(token: String, fingerprint: [UInt8] = []) async throws -> IssueResult {
        let response = try await call(.refresh, TokenRequest(token: token, fingerprint: fingerprint).fields)
        return try parse(response) { fields throws(ProtocolError) in try IssueResult(fields: fields) }
    }

    /// Revokes a token's session or family, a session by id, or every login of a subject.
    /// - Returns: How many sessions and families were ended (`count`, tag 44).
    @discardableResult
    public func revoke(_ request: RevokeRequest) async throws -> UInt64 {
        let response = try await call(.revoke, request.fields)
        return try parse(response) { fields throws(ProtocolError) in try fields.uint64(.count) ?? 0 }
    }

    /// The daemon's counters and gauges, in the daemon's order.
    public func stats() async throws -> [Statistic] {
        let response = try await call(.stats)
        return try parse(response) { fields throws(ProtocolError) in try Statistic.list(fields) }
    }

    /// One page of sessions and refresh families; pass `nextCursor` back for the next.
    public func sessions(_ request: SessionsRequest = SessionsRequest()) async throws -> SessionPage {
        let response = try await call(.sessions, request.fields)
        return try parse(response) { fields throws(ProtocolError) in try SessionPage(fields: fields) }
    }

    /// The signing and verifying keys the daemon holds.
    public func keysList() async throws -> [KeyInfo] {
        try await keys(.keysList)
    }

    /// Every metric in the Prometheus text format (admin).
    public func metrics() async throws -> String {
        let response = try await call(.metrics)
        return try parse(response) { fields throws(ProtocolError) in try fields.requiredString(.metricsText, "metrics") }
    }

    /// Makes the daemon read its key directory again (as SIGHUP does) (admin).
    /// - Returns: The keys it now holds.
    public func keysReload() async throws -> [KeyInfo] {
        try await keys(.keysReload)
    }

    private func keys(_ opcode: Opcode) async throws -> [KeyInfo] {
        let response = try await call(opcode)
        return try parse(response) { fields throws(ProtocolError) in try KeyInfo.list(fields) }
    }

    /// The public keys as a JWK Set (JSON text).
    public func keysJWKS() async throws -> String {
        let response = try await call(.keysJWKS)
        return try parse(response) { fields throws(ProtocolError) in try fields.requiredString(.jwks, "jwks") }
    }

    /// Makes a new key the signing key; older keys keep verifying.
    /// - Returns: The new signing key.
    public func keysRotate() async throws -> KeyInfo {
        let response = try await call(.keysRotate)
        return try parse(response) { fields throws(ProtocolError) in
            // The key as a `key` record (50), or its fields at the top level.
            if let record = try fields.records(.keyRecord).first { return try KeyInfo(fields: record) }
            return try KeyInfo(fields: fields)
        }
    }

    /// Makes the daemon write a snapshot of its state now; answers once it is durable (admin).
    /// - Returns: How many records the snapshot holds (`count`, tag 44) and the daemon's
    ///   summary of the write (`message`, tag 32; empty if the daemon sent none).
    public func snapshot() async throws -> (records: UInt64, message: String) {
        let response = try await call(.snapshot)
        return try parse(response) { fields throws(ProtocolError) in
            guard let records = try fields.uint64(.count) else { throw .badRequest("missing field count (44)") }
            return (records, try fields.string(.message) ?? "")
        }
    }

    // MARK: Helpers

    private func verifyOutcome(_ opcode: Opcode, _ request: TokenRequest) async throws -> VerifyOutcome {
        let response = try await call(opcode, request.fields)
        if response.status == .refreshed {
            let refreshed = try parse(response) { fields throws(ProtocolError) in try RefreshedResult(fields: fields) }
            return VerifyOutcome(status: response.status, result: refreshed.verify, refreshed: refreshed.pair)
        }
        let result = try parse(response) { fields throws(ProtocolError) in try VerifyResult(fields: fields) }
        return VerifyOutcome(status: response.status, result: result)
    }

    /// Sends a request; throws unless the daemon accepted it.
    private func call(_ opcode: Opcode, _ fields: Fields = Fields()) async throws -> Response {
        let response = try await send(Request(opcode: opcode, id: 0, fields: fields))
        guard response.status.isSuccess else { throw TokenClientError.refused(response) }
        guard response.opcode == opcode else {
            throw TokenClientError.protocolViolation("the reply to \(opcode.name) is marked \(response.opcode.name)")
        }
        return response
    }

    /// Reads an accepted reply's fields; a missing or malformed field is a protocol violation.
    private func parse<Value>(_ response: Response, _ read: (Fields) throws(ProtocolError) -> Value) throws(TokenClientError) -> Value {
        do {
            return try read(response.fields)
        } catch {
            throw .protocolViolation("malformed \(response.opcode.name) reply: \(error.reason)")
        }
    }
}
