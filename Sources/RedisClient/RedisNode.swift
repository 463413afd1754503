import NIOConcurrencyHelpers
import NIOCore

/// The connections to one Redis node: one per event loop, made on first use, so that a request
/// and its Redis reply stay on one thread. A failed connection attempt backs off (exponential,
/// with jitter) and requests meanwhile fail at once rather than pile up.
final class RedisNode: Sendable {
    let address: RedisAddress
    private let settings: RedisClient.Configuration
    private let slots = NIOLockedValueBox<[ObjectIdentifier: Slot]>([:])

    private enum Slot {
        case connecting(EventLoopFuture<RedisConnection>)
        case connected(RedisConnection)
        case failed(retryAt: NIODeadline, failures: Int, reason: String)
    }

    init(address: RedisAddress, settings: RedisClient.Configuration) {
        self.address = address
        self.settings = settings
    }

    /// The connection on `loop` when it is up, without waiting.
    func readyConnection(on loop: any EventLoop) -> RedisConnection? {
        slots.withLockedValue { slots in
            if case .connected(let connection) = slots[ObjectIdentifier(loop)], connection.isActive { return connection }
            return nil
        }
    }

    /// Closes the connection on `loop` (the next call reconnects).
    func drop(on loop: any EventLoop) {
        readyConnection(on: loop)?.channel.close(promise: nil)
    }

    /// A ready connection on `loop`, connecting (and handshaking) when there is none.
    func connection(on loop: any EventLoop) -> EventLoopFuture<RedisConnection> {
        let id = ObjectIdentifier(loop)
        enum Action {
            case use(EventLoopFuture<RedisConnection>)
            case refuse(String)
            case connect(EventLoopPromise<RedisConnection>, failures: Int)
        }
        let action = slots.withLockedValue { slots -> Action in
            var failures = 0
            switch slots[id] {
            case .connected(let connection) where connection.isActive:
                return .use(loop.makeSucceededFuture(connection))
            case .connecting(let future):
                return .use(future)
            case .failed(let retryAt, let count, let reason):
                if NIODeadline.now() < retryAt { return .refuse(reason) }
                failures = count
            case .connected, nil:
                break
            }
            let promise = loop.makePromise(of: RedisConnection.self)
            slots[id] = .connecting(promise.futureResult)
            return .connect(promise, failures: failures)
        }
        switch action {
        case .use(let future):
            return future
        case .refuse(let reason):
            return loop.makeFailedFuture(RedisError.backingOff(reason))
        case .connect(let promise, let failures):
            open(on: loop).whenComplete { result in
                switch result {
                case .success(let connection):
                    self.slots.withLockedValue { $0[id] = .connected(connection) }
                    connection.channel.closeFuture.whenComplete { _ in
                        // Reconnect on the next request, at once: a closed connection is not a failed attempt.
                        self.slots.withLockedValue { slots in
                            if case .connected(let current) = slots[id], current === connection {
                                slots[id] = .failed(retryAt: .now(), failures: 0, reason: "connection closed")
                            }
                        }
                    }
                    promise.succeed(connection)
                case .failure(let error):
                    let reason = "\(error)"
                    self.slots.withLockedValue { $0[id] = .failed(retryAt: .now() + self.backoff(after: failures + 1), failures: failures + 1, reason: reason) }
                    promise.fail(error)
                }
            }
            return promise.futureResult
        }
    }

    /// 25 ms doubling to at most `maximumBackoff`, each scaled by a random 50–100 %.
    private func backoff(after failures: Int) -> TimeAmount {
        let base = min(settings.maximumBackoff.nanoseconds, TimeAmount.milliseconds(25).nanoseconds << min(failures - 1, 20))
        return .nanoseconds(Int64(Double(base) * Double.random(in: 0.5...1.0)))
    }

    /// Connects and runs the handshake: AUTH, SELECT, and SCRIPT LOAD of every script.
    private func open(on loop: any EventLoop) -> EventLoopFuture<RedisConnection> {
        let settings = settings
        return RedisConnection.connect(to: address, on: loop, timeout: settings.timeout, tls: settings.tlsContext).flatMap { connection in
            var commands: [RedisCommand] = []
            if let password = settings.password {
                commands.append(RedisCommand(["AUTH"] + (settings.endpoint.user.map { [.string($0)] } ?? []) + [.string(password)]))
            }
            if settings.endpoint.database != 0 { commands.append(RedisCommand("SELECT", .integer(Int64(settings.endpoint.database)))) }
            // The scripts use EXPIRETIME and the idempotency claim SET ... NX GET: Redis 7.0 or later.
            commands.append(RedisCommand("INFO", "server"))
            for script in settings.scripts { commands.append(RedisCommand("SCRIPT", "LOAD", .string(script.source))) }
            guard !commands.isEmpty else { return loop.makeSucceededFuture(connection) }
            let sent = commands
            let replies = connection.send(sent, timeout: settings.timeout)
            return EventLoopFuture.whenAllSucceed(replies, on: loop).flatMapThrowing { replies in
                for (command, reply) in zip(sent, replies) {
                    guard case .error(let message) = reply else { continue }
                    // Never repeat the command itself: AUTH carries the password.
                    let name = command.arguments.first.flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "?"
                    throw RedisError.server("\(name) refused: \(message)")
                }
                if let info = replies.dropLast(settings.scripts.count).last?.string,
                   let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("redis_version:") }),
                   let major = Int(line.dropFirst("redis_version:".count).prefix { $0 != "." }), major < 7 {
                    throw RedisError.server("Redis \(line.dropFirst("redis_version:".count)) is too old: tokend needs Redis 7.0 or later")
                }
                let loads = replies.suffix(settings.scripts.count)
                for (script, reply) in zip(settings.scripts, loads) {
                    if let sha = reply.string { script.loaded(sha: sha) }
                }
                return connection
            }.flatMapErrorThrowing { error in
                connection.channel.close(promise: nil)
                throw error
            }
        }
    }

    /// Closes every connection (at shutdown).
    func close() {
        let open = slots.withLockedValue { slots -> [RedisConnection] in
            let open = slots.values.compactMap { slot -> RedisConnection? in
                if case .connected(let connection) = slot { return connection }
                return nil
            }
            slots.removeAll()
            return open
        }
        for connection in open { connection.channel.close(promise: nil) }
    }
}
