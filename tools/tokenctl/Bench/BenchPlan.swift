import TokenClient
import TokenProtocol

/// What `tokenctl bench` was asked to run, and the setup it needs before the clock starts.
struct BenchPlan: Sendable {
    /// The idle TTL `--ttl-renew` gives the verified session. Not 1s: the daemon counts whole
    /// seconds, so a 1s session issued late in a second could be idle by the first verify.
    static let renewingSessionTTL: UInt64 = 2

    var operation: BenchOperation
    var connections: Int
    var pipeline: Int
    /// Sent with every issue, verify and refresh; empty means not bound.
    var fingerprint: [UInt8]
    /// The idle TTL of the verified session (`--ttl-renew`); nil for the daemon's own.
    var sessionTTL: UInt64?
    /// The maximum lifetime asked for the logins the run issues (`issue`, `refresh`, `mix`);
    /// nil for the daemon's. Short lifetimes keep a long run's state bounded.
    var issuedLifetime: UInt64? = nil

    /// Issues what the operation needs and returns the lanes of each connection, `pipeline`
    /// to a client: the one session token every verify presents (issued on the first
    /// connection), and a pair per lane for refreshes (issued on the lane's own connection).
    func makeLanes(on clients: [TokenClient]) async throws -> [[BenchLane]] {
        let verify = operation.verifies ? try await verifyRequest(on: clients[0]) : nil
        return try await withThrowingTaskGroup(of: (Int, [BenchLane]).self) { group in
            for (connection, client) in clients.enumerated() {
                group.addTask {
                    var lanes: [BenchLane] = []
                    for slot in 0..<pipeline {
                        let index = connection * pipeline + slot
                        let issue = operation.issues ? issueRequest(lane: index) : nil
                        let chain = operation.refreshes
                            ? try await RefreshChain.start(IssueRequest(mode: .pair, subject: "bench", fingerprint: fingerprint, maxLifetime: issuedLifetime), on: client)
                            : nil
                        lanes.append(BenchLane(operation: operation, index: index, verify: verify, issue: issue, chain: chain))
                    }
                    return (connection, lanes)
                }
            }
            var lanes = [[BenchLane]](repeating: [], count: clients.count)
            for try await (connection, connectionLanes) in group {
                lanes[connection] = connectionLanes
            }
            return lanes
        }
    }

    /// Issues the session that verifies present, as `issue --mode session --subject bench`.
    private func verifyRequest(on client: TokenClient) async throws -> Request {
        let login = try await client.issue(IssueRequest(mode: .session, subject: "bench", fingerprint: fingerprint, ttl: sessionTTL))
        guard let token = login.sessionToken else {
            throw TokenClientError(.protocolViolation, message: "the daemon issued a session without a session token")
        }
        return Request(opcode: .verify, id: 0, fields: TokenRequest(token: token, fingerprint: fingerprint).fields)
    }

    /// A new session for subject `bench-N`, N the lane's number.
    private func issueRequest(lane: Int) -> Request {
        Request(opcode: .issue, id: 0, fields: IssueRequest(mode: .session, subject: "bench-\(lane)", fingerprint: fingerprint, maxLifetime: issuedLifetime).fields)
    }

    /// The one request `ping` and `verify` send every time; nil for the other operations.
    func fixedRequest(on clients: [TokenClient]) async throws -> Request? {
        switch operation {
        case .ping: Request(opcode: .ping, id: 0)
        case .verify: try await verifyRequest(on: clients[0])
        default: nil
        }
    }
}
