import Logging
import NIOConcurrencyHelpers
import NIOCore
import TokenProtocol

/// The tracking connections (`track`) and the invalidations pushed to them.
///
/// A push goes to every tracking connection (broadcast: revocations are rare next to verifies,
/// and the daemon keeps no record of what anyone cached), and its future succeeds only once each
/// has taken the frame, written to its socket, so that the request that caused it can be
/// answered after. A connection whose socket cannot take the frame at once (its client has not
/// read what it was sent) is closed instead: its client then drops its whole cache, which is the
/// safe side, and a client that does not read never holds up anyone's revoke.
final class InvalidationHub: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var statistics = Statistics()
    }

    struct Statistics: Sendable {
        /// Connections that track now.
        var tracking = 0
        /// Invalidations pushed (each to every tracking connection).
        var pushed: UInt64 = 0
        /// Of those, how many said "drop everything".
        var flushes: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Registers a tracking connection, on its own event loop; one already closed (a `track`
    /// answered after its client left) is not, since nothing would ever remove it.
    func add(_ channel: any Channel) {
        guard channel.isActive else { return }
        state.withLockedValue { $0.channels[ObjectIdentifier(channel)] = channel }
    }

    /// On the connection's event loop, when it closes.
    func remove(_ channel: any Channel) {
        state.withLockedValue { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var statistics: Statistics {
        state.withLockedValue { state in
            var statistics = state.statistics
            statistics.tracking = state.channels.count
            return statistics
        }
    }

    /// Writes `invalidation` to every tracking connection; the future succeeds once each has
    /// taken it or been closed. Never fails.
    func push(_ invalidation: Invalidation, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let targets = state.withLockedValue { state in
            guard !state.channels.isEmpty else { return [any Channel]() }
            state.statistics.pushed += 1
            if invalidation == .flush { state.statistics.flushes += 1 }
            return Array(state.channels.values)
        }
        guard !targets.isEmpty else { return eventLoop.makeSucceededVoidFuture() }
        var frame = ByteBufferAllocator().buffer(capacity: 64)
        frame.writeFrame(invalidation.frame)
        let logger = logger
        let writes = targets.map { channel in
            channel.eventLoop.flatSubmit {
                // On the connection's own loop, the write reaches the socket within the flush
                // unless something is already queued before it or the socket is full.
                let written = channel.writeAndFlush(frame)
                let taken = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
                written.whenComplete { _ in taken.value = true }
                if !taken.value {
                    logger.notice("closing a tracking connection whose client does not read its invalidations")
                    channel.close(promise: nil)
                }
                return written
            }
        }
        // Failed (the connection closed) is as good as taken: its client drops its cache.
        return EventLoopFuture.andAllComplete(writes, on: eventLoop)
    }
}
