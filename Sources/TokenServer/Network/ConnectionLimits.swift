#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// Who may hold how many connections: a total, a share per uid so that one local user cannot
/// take them all, and a few places only admins may fill, so that `tokenctl stats` still gets in
/// during a flood.
final class ConnectionLimits: Sendable {
    let total: Int
    let perUID: Int
    /// Places of `total` that only admins may take.
    let adminReserve: Int

    private let state = NIOLockedValueBox((open: 0, byUID: [UInt32: Int]()))

    init(total: Int, perUID: Int) {
        self.total = total
        self.perUID = min(perUID, total)
        self.adminReserve = min(16, total / 8)
    }

    enum Refusal: Equatable {
        case total
        case perUID

        var reason: String {
            switch self {
            case .total: "connection limit reached"
            case .perUID: "per-uid connection limit reached"
            }
        }
    }

    /// Takes a place for `peer`, or says why there is none; a place taken is given back with
    /// `release`.
    func admit(_ peer: PeerCredentials, admin: Bool) -> Refusal? {
        state.withLockedValue { state in
            if admin {
                guard state.open < total else { return .total }
            } else {
                guard state.open < total - adminReserve else { return .total }
                guard state.byUID[peer.uid, default: 0] < perUID else { return .perUID }
            }
            state.open += 1
            state.byUID[peer.uid, default: 0] += 1
            return nil
        }
    }

    func release(_ peer: PeerCredentials) {
        state.withLockedValue { state in
            state.open -= 1
            let left = state.byUID[peer.uid, default: 1] - 1
            state.byUID[peer.uid] = left > 0 ? left : nil
        }
    }
}

/// The open-file limit, raised as far as the process may, and what it leaves for connections.
enum DescriptorBudget {
    /// Descriptors tokend keeps for itself: event loops, the journal and snapshot, key files,
    /// the lock, logs, the metrics endpoint's connections, a shared store's connections.
    static let reserved = 256

    struct Figures: Sendable {
        var softBefore: UInt64
        var soft: UInt64
        var hard: UInt64
        /// Connections the limit leaves room for.
        var connections: Int
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (as `ulimit -n` would), and returns
    /// the figures.
    static func raise() -> Figures {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            return Figures(softBefore: 0, soft: 0, hard: 0, connections: .max)
        }
        let before = UInt64(limit.rlim_cur)
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let soft = UInt64(limit.rlim_cur)
        let room = soft >= UInt64(Int.max) ? Int.max : max(1, Int(soft) - reserved)
        return Figures(softBefore: before, soft: soft, hard: UInt64(limit.rlim_max), connections: room)
    }
}
