import TokenClient
import TokenProtocol

/// One refresh family rotated over and over: every refresh presents the refresh token that
/// the previous one returned. Each lane owns its chain, so no two requests in flight ever
/// spend the same token (which the daemon would take for reuse and answer by revoking).
struct RefreshChain: Sendable {
    /// The next refresh, carrying the latest refresh token.
    private(set) var request: Request
    /// The `issue` that starts a new family when a refresh is refused.
    private let login: IssueRequest
    /// The fingerprint every refresh repeats; empty when the family is not bound.
    private let fingerprint: [UInt8]

    private init(login: IssueRequest, refreshToken: String) {
        self.login = login
        let fields = TokenRequest(token: refreshToken, fingerprint: login.fingerprint).fields
        request = Request(opcode: .refresh, id: 0, fields: fields)
        fingerprint = login.fingerprint
    }

    /// Issues a pair on `client` (`login` must ask for one) and prepares its first refresh.
    static func start(_ login: IssueRequest, on client: TokenClient) async throws -> RefreshChain {
        let pair = try await client.issue(login)
        guard let refreshToken = pair.refreshToken else {
            throw TokenClientError(.protocolViolation, message: "the daemon issued a pair without a refresh token")
        }
        return RefreshChain(login: login, refreshToken: refreshToken)
    }

    /// Takes the new refresh token from an accepted refresh; false when the reply lacks one.
    ///
    /// The token's bytes are copied: a slice would pin the client's whole read buffer until
    /// the next refresh is answered.
    mutating func advance(with response: Response) -> Bool {
        guard let token = try? response.fields.value(.refreshToken), token.readableBytes > 0 else { return false }
        var fields = Fields()
        fields.append(.token, bytes: token.readableBytesView)
        if !fingerprint.isEmpty { fields.append(.fingerprint, bytes: fingerprint) }
        request.fields = fields
        return true
    }

    /// After a refusal (the family is revoked, say): issues a new pair and goes on from it.
    mutating func restart(on client: TokenClient) async throws {
        self = try await Self.start(login, on: client)
    }
}
