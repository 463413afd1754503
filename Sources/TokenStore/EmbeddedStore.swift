import NIOCore
import Synchronization

/// The default store: all state in this process's memory.
///
/// Threading: the state lives behind one mutex and every operation is one short critical
/// section, called from whichever event-loop thread serves the request. Nothing is done
/// under the lock but table lookups and updates: signing and verification happen outside.
public final class EmbeddedStore: TokenStateStore {
    private let state: Mutex<EmbeddedState>
    public let clock: any TokenClock

    public init(policy: RenewalPolicy = RenewalPolicy(), clock: any TokenClock = SystemClock()) {
        self.clock = clock
        self.state = Mutex(EmbeddedState(policy: policy, now: clock.now()))
    }

    private func withState<R: Sendable>(_ body: (inout EmbeddedState, Int64) -> R) -> R {
        let now = clock.now()
        return state.withLock { state in
            state.expire(now: now, budget: 256)
            return body(&state, now)
        }
    }

    /// Drops what has expired, at most `budget` logins; the server calls this every second so
    /// that idle tables shrink too. Returns the number of logins removed.
    @discardableResult
    public func sweep(budget: Int = 10_000) -> Int {
        let now = clock.now()
        return state.withLock { $0.expire(now: now, budget: budget) }
    }

    public func create(_ login: NewLogin, on eventLoop: any EventLoop) -> EventLoopFuture<CreateOutcome> {
        eventLoop.makeSucceededFuture(withState { $0.create(login, now: $1) })
    }

    public func touchSession(_ key: SessionKey, fingerprint: Digest128?, explicit: Bool, on eventLoop: any EventLoop) -> EventLoopFuture<SessionOutcome> {
        eventLoop.makeSucceededFuture(withState { $0.touchSession(key, fingerprint: fingerprint, explicit: explicit, now: $1) })
    }

    public func checkFamily(_ key: SessionKey, fingerprint: Digest128?, on eventLoop: any EventLoop) -> EventLoopFuture<FamilyOutcome> {
        eventLoop.makeSucceededFuture(withState { $0.checkFamily(key, fingerprint: fingerprint, now: $1) })
    }

    public func rotate(_ rotation: Rotation, on eventLoop: any EventLoop) -> EventLoopFuture<RotationOutcome> {
        eventLoop.makeSucceededFuture(withState { $0.rotate(rotation, now: $1) })
    }

    public func revoke(_ target: RevokeTarget, on eventLoop: any EventLoop) -> EventLoopFuture<Int?> {
        eventLoop.makeSucceededFuture(withState { $0.revoke(target, now: $1) })
    }

    public func list(_ query: ListQuery, on eventLoop: any EventLoop) -> EventLoopFuture<ListPage> {
        eventLoop.makeSucceededFuture(withState { $0.list(query, now: $1) })
    }

    public func statistics(on eventLoop: any EventLoop) -> EventLoopFuture<StoreStatistics> {
        eventLoop.makeSucceededFuture(withState { state, _ in state.statistics })
    }
}
