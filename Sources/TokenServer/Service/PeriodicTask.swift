import NIOCore
import ServiceLifecycle

/// Work done every `interval` on an event loop, as a service of the daemon's `ServiceGroup`:
/// expiry sweeps, snapshot ticks, key activation, systemd watchdog pings. It stops at graceful
/// shutdown, before the server it serves (the group stops services in reverse order).
///
/// The work runs on the event loop, not on the task: a stalled loop stalls it too, which is
/// what the watchdog ping is for.
public struct PeriodicTask: Service {
    public let name: String
    let interval: TimeAmount
    let eventLoop: any EventLoop
    let work: @Sendable () -> Void

    public init(_ name: String, every interval: TimeAmount, on eventLoop: any EventLoop, _ work: @escaping @Sendable () -> Void) {
        self.name = name
        self.interval = interval
        self.eventLoop = eventLoop
        self.work = work
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: .nanoseconds(interval.nanoseconds))
                    try await eventLoop.submit(work).get()
                }
            }
        } catch is CancellationError {
            // Graceful shutdown: done.
        }
    }
}
