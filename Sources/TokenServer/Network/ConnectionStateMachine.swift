import NIOCore
import TokenProtocol

/// One connection's flow control and lifetime, apart from its I/O: which received requests may
/// start, whether to read from the socket, and when the connection is done. `ConnectionHandler`
/// asks it and does what it says.
///
/// A request starts only while the client takes its responses (the channel is writable) and
/// fewer than `maxInFlight` are being answered; while anything waits, reading stops. Draining
/// (at shutdown, or after a frame too large to read) answers what was received, then closes.
struct ConnectionStateMachine {
    enum Phase: Equatable {
        /// Reading requests and answering them.
        case serving
        /// Answering what was received, reading nothing more; closes once all is answered.
        case draining
        /// The close has been asked for.
        case closed
    }

    /// What to do about reading from the socket.
    enum ReadAction: Equatable {
        case none
        case startReading
        case stopReading
    }

    private(set) var phase = Phase.serving
    private var queued = CircularBuffer<Request>()
    private(set) var inFlight = 0
    private var reading = true
    /// Set by `track`: the connection receives invalidations and is never closed as idle.
    private(set) var tracking = false
    let maxInFlight: Int

    init(maxInFlight: Int) {
        self.maxInFlight = maxInFlight
    }

    var queuedCount: Int { queued.count }

    /// A complete request arrived. Dropped when draining: it came after the end was decided.
    mutating func received(_ request: Request) {
        guard phase == .serving else { return }
        queued.append(request)
    }

    /// The next request to start, if one may start now; it then counts as in flight.
    mutating func startNext(writable: Bool) -> Request? {
        guard phase != .closed, inFlight < maxInFlight, writable, let request = queued.popFirst() else { return nil }
        inFlight += 1
        return request
    }

    /// `track`: true the first time, when the connection must be registered for invalidations.
    mutating func beginTracking() -> Bool {
        defer { tracking = true }
        return !tracking
    }

    /// A request in flight was answered.
    mutating func finished() {
        precondition(inFlight > 0, "finished a request that was not in flight")
        inFlight -= 1
    }

    /// Whether reading should change: read only while serving, nothing waits, and the client
    /// takes its responses.
    mutating func readAction(writable: Bool) -> ReadAction {
        let shouldRead = phase == .serving && queued.isEmpty && inFlight < maxInFlight && writable
        guard shouldRead != reading else { return .none }
        reading = shouldRead
        return shouldRead ? .startReading : .stopReading
    }

    /// Stop taking requests; answer those received.
    mutating func drain() {
        if phase == .serving { phase = .draining }
    }

    /// Whether the connection should close now: draining, with nothing left to answer. Moves to
    /// `closed`, so that it says so once.
    mutating func closeIfDrained() -> Bool {
        guard phase == .draining, inFlight == 0, queued.isEmpty else { return false }
        phase = .closed
        return true
    }

    /// Whether an idle connection should be closed: nothing in flight (what is queued waits for
    /// a client that stopped reading), not tracking, and silent for `idleFor` at least `timeout`.
    mutating func closeIfIdle(idleFor: TimeAmount, timeout: TimeAmount) -> Bool {
        guard phase != .closed, !tracking, inFlight == 0, idleFor >= timeout else { return false }
        phase = .closed
        return true
    }
}
