import Foundation
import Logging
import NIOCore

/// Appends journal records from the store and makes them durable on its own thread.
///
/// The store appends under its lock, so the journal's order is the order changes happened;
/// each change's reply waits for `whenWritten`. The writer thread takes everything queued at
/// once, writes it, and under `always` fsyncs once for the whole batch before releasing the
/// replies: concurrent requests share fsyncs (group commit). Under `everysec` the replies go
/// after the write and an fsync follows within about a second; under `no`, never.
public final class JournalWriter: @unchecked Sendable {
    public let directory: String
    public let policy: FsyncPolicy
    private let logger: Logger
    private let condition = NSCondition()

    // Guarded by `condition`:
    private var queued: [Item] = []
    private var appended: UInt64 = 0
    private var written: UInt64 = 0
    private var waiters: [(ticket: UInt64, promise: EventLoopPromise<Void>)] = []
    private var stopping = false
    private var failure: (any Error)?
    private var thread: Thread?

    // Touched by the writer thread only:
    private var fd: Int32 = -1
    private var dirty = false
    private var lastSync = ContinuousClock.now

    private enum Item {
        case bytes([UInt8], ticket: UInt64)
        case switchTo(sequence: UInt64, createdAt: Int64)
    }

    /// Told how long each fsync took (for the metrics).
    private let syncObserver: (@Sendable (Duration) -> Void)?

    public init(directory: String, policy: FsyncPolicy, logger: Logger, syncObserver: (@Sendable (Duration) -> Void)? = nil) {
        self.directory = directory
        self.policy = policy
        self.logger = logger
        self.syncObserver = syncObserver
    }

    public static func path(directory: String, sequence: UInt64) -> String {
        directory + "/" + String(format: "journal-%016llx.tkj", sequence)
    }

    /// Opens journal `sequence` (a new file) and starts the writer thread.
    public func start(sequence: UInt64, createdAt: Int64) throws {
        try openFile(sequence: sequence, createdAt: createdAt)
        let thread = Thread { [self] in run() }
        thread.name = "tokend-journal"
        self.thread = thread
        thread.start()
    }

    /// Queues `records`; returns the ticket to wait on. Call with the store's lock held.
    public func append(_ records: [JournalRecord]) -> UInt64 {
        var buffer = ByteBuffer()
        for record in records { RecordCodec.append(record, to: &buffer) }
        condition.lock()
        appended += 1
        let ticket = appended
        queued.append(.bytes(Array(buffer.readableBytesView), ticket: ticket))
        condition.signal()
        condition.unlock()
        return ticket
    }

    /// Starts a new journal file: records appended after this call go there. Call with the
    /// store's lock held, together with taking the snapshot's copy of the state.
    public func switchTo(sequence: UInt64, createdAt: Int64) {
        condition.lock()
        queued.append(.switchTo(sequence: sequence, createdAt: createdAt))
        condition.signal()
        condition.unlock()
    }

    /// Succeeds once the records of `ticket` are written (and synced, under `always`).
    public func whenWritten(_ ticket: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        condition.lock()
        defer { condition.unlock() }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        if written >= ticket { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        waiters.append((ticket, promise))
        return promise.futureResult
    }

    /// Writes and syncs everything queued, then stops the thread.
    public func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        while thread?.isFinished == false { usleep(1000) }
    }

    private func run() {
        while true {
            condition.lock()
            while queued.isEmpty && !stopping {
                if policy == .everysec && dirty {
                    // Wake for the once-a-second sync even when idle.
                    _ = condition.wait(until: Date().addingTimeInterval(1))
                    if queued.isEmpty { break }
                } else {
                    condition.wait()
                }
            }
            let batch = queued
            queued.removeAll(keepingCapacity: true)
            let stop = stopping && batch.isEmpty
            condition.unlock()

            var lastTicket: UInt64 = 0
            var error: (any Error)?
            // After a failure nothing more is written: a record half on disk stays the last.
            let failed = condition.withLock { failure != nil }
            for item in batch where !failed {
                do {
                    switch item {
                    case .bytes(let bytes, let ticket):
                        try writeAll(bytes)
                        lastTicket = ticket
                    case .switchTo(let sequence, let createdAt):
                        try sync()
                        close(fd)
                        fd = -1
                        try openFile(sequence: sequence, createdAt: createdAt)
                    }
                } catch let failure {
                    error = failure
                    break
                }
            }
            do {
                if !failed, policy == .always || stop || (policy == .everysec && ContinuousClock.now - lastSync >= .seconds(1)) {
                    try sync()
                }
            } catch let failure {
                error = error ?? failure
            }
            if failed { error = condition.withLock { failure } }
            complete(through: lastTicket, error: error)
            if stop {
                close(fd)
                return
            }
        }
    }

    private func complete(through ticket: UInt64, error: (any Error)?) {
        condition.lock()
        if let error {
            failure = error
            logger.critical("journal write failed; changes are no longer durable", metadata: ["error": "\(error)"])
        }
        if ticket > written { written = ticket }
        var ready: [EventLoopPromise<Void>] = []
        waiters.removeAll { waiter in
            guard error != nil || waiter.ticket <= written else { return false }
            ready.append(waiter.promise)
            return true
        }
        let failure = failure
        condition.unlock()
        for promise in ready {
            if let failure { promise.fail(failure) } else { promise.succeed() }
        }
    }

    private func openFile(sequence: UInt64, createdAt: Int64) throws {
        let path = Self.path(directory: directory, sequence: sequence)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw PersistenceError("cannot open \(path): \(String(cString: strerror(errno)))") }
        fd = descriptor
        var info = stat()
        fstat(descriptor, &info)
        if info.st_size == 0 {
            try writeAll(FileHeader(kind: .journal, createdAt: createdAt, sequence: sequence).bytes)
            try sync()
            syncDirectory(directory)
        }
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        guard fd >= 0 else { throw PersistenceError("the journal file is not open") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw PersistenceError("journal write failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
        dirty = true
    }

    private func sync() throws {
        guard dirty, fd >= 0 else { return }
        let started = ContinuousClock.now
        guard fdatasync(fd) == 0 else { throw PersistenceError("journal fsync failed: \(String(cString: strerror(errno)))") }
        dirty = false
        lastSync = ContinuousClock.now
        syncObserver?(lastSync - started)
    }
}

/// A persistence failure: what and where.
public struct PersistenceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// fsync of a directory, so that a new or renamed entry in it survives a crash.
func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    fsync(fd)
    close(fd)
}
