import Logging
import NIOConcurrencyHelpers
import NIOCore
import TokenProtocol

/// The tracking connections (`track`) and the invalidations pushed to them.
///
/// A push goes to every tracking connection (broadcast: revocations are rare next to verifies,
/// and the daemon keeps no record of what anyone cached), and its future succeeds only once each
/// has taken the frame, written to its socket, so that the request that caused it can be
/// answered after. A connection that has not taken it within `timeout` is closed: its client
/// then drops its whole cache, which is the safe side.
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
    private let timeout: TimeAmount
    private let logger: Logger

    init(timeout: TimeAmount = .seconds(1), logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    func add(_ channel: any Channel) {
        state.withLockedValue { $0.channels[ObjectIdentifier(channel)] = channel }
    }

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
        let timeout = timeout
        let logger = logger
        let writes = targets.map { channel in
            let written = channel.writeAndFlush(frame)
            let overdue = channel.eventLoop.scheduleTask(in: timeout) {
                logger.notice("closing a tracking connection that did not take an invalidation in time")
                channel.close(promise: nil)
            }
            written.whenComplete { _ in overdue.cancel() }
            return written
        }
        // Failed (the connection closed) is as good as taken: its client drops its cache.
        return EventLoopFuture.andAllComplete(writes, on: eventLoop)
    }
}
