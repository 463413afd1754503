import TokenClient
import TokenProtocol

/// One request slot of a connection: it sends a request, waits for the answer and sends the
/// next straight away, until the run ends. A connection with `-P 16` runs 16 lanes on its one
/// client, which keeps 16 requests in flight on it.
///
/// The requests are built once during setup and sent as they are; only a refresh needs a new
/// body each time, for the token the previous refresh returned.
struct BenchLane: Sendable {
    private let operation: BenchOperation
    private let ping = Request(opcode: .ping, id: 0)
    /// The verify of the shared session token (`verify`, `mix`).
    private let verify: Request?
    /// The issue of a session for this lane's subject (`issue`, `mix`).
    private let issue: Request?
    /// This lane's refresh family (`refresh`, `mix`).
    private var chain: RefreshChain?
    /// Where `mix` is in its rotation: of every ten requests one issues, one refreshes and
    /// eight verify. Lanes start at different points, so they do not all issue at once.
    private var turn: Int

    init(operation: BenchOperation, index: Int, verify: Request?, issue: Request?, chain: RefreshChain?) {
        precondition(!operation.verifies || verify != nil, "a verifying lane needs its verify request")
        precondition(!operation.issues || issue != nil, "an issuing lane needs its issue request")
        precondition(!operation.refreshes || chain != nil, "a refreshing lane needs its refresh chain")
        self.operation = operation
        self.verify = verify
        self.issue = issue
        self.chain = chain
        turn = index
    }

    /// Sends requests on `client` while `control` allows, recording into `recorder`.
    ///
    /// A failed send means the connection is gone (every later request on it would fail at
    /// once): the failure is counted and the lane stops.
    mutating func run(on client: TokenClient, control: BenchControl, recorder: BenchRecorder) async {
        var now = BenchClock.now()
        while control.claim(now: now) {
            let operation = next()
            let sent = BenchClock.now()
            let response: Response
            do {
                response = try await client.send(request(for: operation))
            } catch {
                recorder.lost(Self.name(of: error))
                control.complete()
                break
            }
            now = BenchClock.now()
            recorder.answered(nanoseconds: now &- sent)
            control.complete()

            if response.status.isSuccess {
                if response.status == .renewed { recorder.countRenewal() }
                if operation != .refresh || chain!.advance(with: response) { continue }
                recorder.refused("protocol_violation")
            } else {
                recorder.refused(response.status.name)
                if operation != .refresh { continue }
            }
            // The chain is broken: start a new family, or stop if even that fails.
            do {
                try await chain!.restart(on: client)
                now = BenchClock.now()
            } catch {
                break
            }
        }
    }

    /// The operation of the next request.
    private mutating func next() -> BenchOperation {
        guard operation == .mix else { return operation }
        turn &+= 1
        switch turn % 10 {
        case 0: return .issue
        case 5: return .refresh
        default: return .verify
        }
    }

    private func request(for operation: BenchOperation) -> Request {
        switch operation {
        case .verify: verify!
        case .issue: issue!
        case .refresh: chain!.request
        case .ping, .mix: ping
        }
    }

    /// A transport failure by its status (a `too_large` reply before the close) or its code.
    private static func name(of error: any Error) -> String {
        guard let error = error as? TokenClientError else { return TokenClientError.Code.connectionClosed.description }
        return error.status?.name ?? error.code.description
    }
}
