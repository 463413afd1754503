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

    /// Schedules the work on the event loop (a timer there, as cheap as before it was a
    /// service) and waits for graceful shutdown, or cancellation, to cancel it.
    public func run() async throws {
        let work = self.work
        let task = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in work() }
        defer { task.cancel() }
        do {
            try await gracefulShutdown()
        } catch is CancellationError {
            // The group is ending without a graceful shutdown (another service failed).
        }
    }
}
