import NIOCore

/// A store's answer, at once when it has one: a verify answered from memory costs no future
/// (each is an allocation, and a type-metadata lookup when it is freed). Only what waits, for
/// the journal or for Redis, is `pending`.
public enum StoreAnswer<Value: Sendable>: Sendable {
    case ready(Value)
    case failed(any Error)
    case pending(EventLoopFuture<Value>)

    public func map<New: Sendable>(_ transform: @escaping @Sendable (Value) -> New) -> StoreAnswer<New> {
        switch self {
        case .ready(let value): .ready(transform(value))
        case .failed(let error): .failed(error)
        case .pending(let future): .pending(future.map(transform))
        }
    }

    /// The answer as a future, for callers off the hot path.
    public func future(on eventLoop: any EventLoop) -> EventLoopFuture<Value> {
        switch self {
        case .ready(let value): eventLoop.makeSucceededFuture(value)
        case .failed(let error): eventLoop.makeFailedFuture(error)
        case .pending(let future): future
        }
    }
}

/// The hot path's operations in their immediate form. A store that can answer from memory
/// implements them; any other is served by these defaults, through its futures.
extension TokenStateStore {
    public func touchSessionAnswer(_ key: SessionKey, fingerprint: Digest128?, subject: String, explicit: Bool,
                                   on eventLoop: any EventLoop) -> StoreAnswer<SessionOutcome> {
        .pending(touchSession(key, fingerprint: fingerprint, subject: subject, explicit: explicit, on: eventLoop))
    }

    public func checkFamilyAnswer(_ key: SessionKey, fingerprint: Digest128?, generation: Int64?, on eventLoop: any EventLoop) -> StoreAnswer<FamilyOutcome> {
        .pending(checkFamily(key, fingerprint: fingerprint, generation: generation, on: eventLoop))
    }

    public func healthAnswer(on eventLoop: any EventLoop) -> StoreAnswer<Bool> {
        .pending(health(on: eventLoop))
    }
}
