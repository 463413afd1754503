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
///
/// **Faults.** A failed write, fsync or open (a full disk, no file descriptors left) does not
/// stop the journal for good. The batch that failed is cut back off the file (so the journal
/// never ends in half a record) and its waiters fail; from then on the journal is *degraded*:
/// records appended are dropped and their waiters fail at once, until a journal switch opens a
/// new file, and the store's snapshot, taken with that switch, has made everything in memory
/// durable (`recovered(epoch:)`). A switch that cannot open its new file keeps the old one.
public final class JournalWriter: @unchecked Sendable {
    public let directory: String
    public let policy: FsyncPolicy
    private let logger: Logger
    private let condition = NSCondition()

    // Guarded by `condition`:
    private var queued: [Item] = []
    private var appended: UInt64 = 0
    /// The highest ticket processed, written or dropped.
    private var processed: UInt64 = 0
    /// Tickets whose records were not written (ranges, oldest first; faults are rare).
    private var failedTickets: [ClosedRange<UInt64>] = []
    private var waiters: [(ticket: UInt64, promise: EventLoopPromise<Void>)] = []
    private var stopping = false
    private var thread: Thread?
    /// The writer's current failure: nothing can be written until a switch opens a new file.
    private var fault: PersistenceError?
    /// Counts faults; a recovery only counts if no fault came after the switch it rests on.
    private var faultEpoch: UInt64 = 0
    /// From a fault until a snapshot taken after it is durable.
    private var degradedSince: ContinuousClock.Instant?
    private var switches: UInt64 = 0
    private var switchResults: [UInt64: PersistenceError?] = [:]

    // Touched by the writer thread only:
    private var fd: Int32 = -1
    /// The end of the last whole record written to `fd`: a failed write is cut back to it.
    private var goodOffset: off_t = 0
    private var dirty = false
    private var lastSync = ContinuousClock.now

    private enum Item {
        case bytes([UInt8], ticket: UInt64)
        case switchTo(sequence: UInt64, createdAt: Int64, id: UInt64)
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
        (fd, goodOffset) = try Self.openFile(directory: directory, sequence: sequence, createdAt: createdAt)
        let thread = Thread { [self] in run() }
        thread.name = "tokend-journal"
        self.thread = thread
        thread.start()
    }

    /// Whether changes cannot be made durable now (from a fault until the snapshot after it).
    public var isDegraded: Bool { condition.withLock { degradedSince != nil } }

    /// The fault epoch, to hand to `recovered(epoch:)` once a snapshot taken now is durable.
    public var epoch: UInt64 { condition.withLock { faultEpoch } }

    /// Why the journal is degraded, for logs (never for peers).
    public var faultDescription: String? { condition.withLock { fault?.description } }

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

    /// Starts a new journal file: records appended after this call go there, once the writer
    /// has opened it. Call with the store's lock held, together with taking the snapshot's copy
    /// of the state; then `waitForSwitch` says whether it happened.
    public func switchTo(sequence: UInt64, createdAt: Int64) -> UInt64 {
        condition.lock()
        switches += 1
        let id = switches
        queued.append(.switchTo(sequence: sequence, createdAt: createdAt, id: id))
        condition.signal()
        condition.unlock()
        return id
    }

    /// Blocks until the writer has carried out switch `id`; nil when the new file is in use,
    /// else why it could not be opened (the old journal is then still the current one).
    public func waitForSwitch(_ id: UInt64) -> PersistenceError? {
        condition.lock()
        defer { condition.unlock() }
        while switchResults[id] == nil { condition.wait() }
        return switchResults.removeValue(forKey: id) ?? nil
    }

    /// A snapshot taken with a switch at `epoch` is durable: unless another fault came since,
    /// everything in memory is on disk again and the journal is healthy.
    public func recovered(epoch: UInt64) {
        condition.lock()
        let since = degradedSince
        let healed = since != nil && epoch == faultEpoch && fault == nil
        if healed { degradedSince = nil }
        condition.unlock()
        if healed, let since {
            logger.notice("the journal is writable again; changes are accepted", metadata: ["fault.seconds": "\(ContinuousClock.now - since)"])
        }
    }

    /// Whether the records of `ticket` are written (true), could not be (false), or are still
    /// on their way (nil): `whenWritten` without a future when the answer is known.
    public func written(_ ticket: UInt64) -> Bool? {
        condition.withLock { writtenLocked(ticket) }
    }

    /// `written`, with `condition` held.
    private func writtenLocked(_ ticket: UInt64) -> Bool? {
        guard ticket <= processed else { return nil }
        return !failedTickets.contains(where: { $0.contains(ticket) })
    }

    /// Succeeds once the records of `ticket` are written (and synced, under `always`); fails
    /// when they could not be.
    public func whenWritten(_ ticket: UInt64, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        condition.lock()
        defer { condition.unlock() }
        switch writtenLocked(ticket) {
        case true?: return eventLoop.makeSucceededVoidFuture()
        case false?: return eventLoop.makeFailedFuture(fault ?? PersistenceError("the journal could not write this change"))
        case nil: break
        }
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
            var failed = fault != nil
            condition.unlock()

            // Tickets written in this batch since the last sync, which a failed sync fails too.
            var unsynced: ClosedRange<UInt64>?
            for item in batch {
                switch item {
                case .bytes(let bytes, let ticket):
                    if failed {
                        // Dropped: the snapshot that ends the fault holds these changes.
                        settle(ticket...ticket, failure: condition.withLock { fault } ?? PersistenceError("the journal is not writable"))
                        continue
                    }
                    do {
                        try writeAll(bytes)
                        goodOffset += off_t(bytes.count)
                        unsynced = (unsynced?.lowerBound ?? ticket)...ticket
                        if policy != .always { settle(ticket...ticket, failure: nil) }
                    } catch let error as PersistenceError {
                        // Under always nothing of this batch was answered yet: it all fails.
                        fail(error, tickets: policy == .always ? (unsynced?.lowerBound ?? ticket)...ticket : ticket...ticket)
                        unsynced = nil
                        failed = true
                    } catch {}
                case .switchTo(let sequence, let createdAt, let id):
                    // The old file is synced whole before the new one exists: once it is not the
                    // newest journal, a torn tail in it would be damage, and stop the next start.
                    // One that cannot be synced stays current (its tail still counts as torn).
                    var result: PersistenceError?
                    if !failed {
                        do {
                            try sync()
                            if policy == .always, let range = unsynced { settle(range, failure: nil) }
                        } catch let error as PersistenceError {
                            fail(error, tickets: policy == .always ? unsynced : nil)
                            failed = true
                            result = error
                        } catch {}
                        unsynced = nil
                    } else if fd >= 0 {
                        // After a fault the old file ends at its last whole record only once that
                        // cut is durable; until then it must stay the newest journal.
                        if ftruncate(fd, goodOffset) != 0 || fdatasync(fd) != 0 {
                            result = PersistenceError("cannot cut the journal back to its last whole record: \(String(cString: strerror(errno)))")
                        }
                    }
                    if result == nil { result = switchFile(sequence: sequence, createdAt: createdAt) }
                    if result == nil { failed = false }
                    condition.withLock {
                        switchResults[id] = .some(result)
                        condition.broadcast()
                    }
                }
            }
            if !failed, policy == .always || stop || (policy == .everysec && ContinuousClock.now - lastSync >= .seconds(1)) {
                do {
                    try sync()
                    if policy == .always, let range = unsynced { settle(range, failure: nil) }
                } catch let error as PersistenceError {
                    // Under everysec and no, the replies went already: the fault stops what follows.
                    fail(error, tickets: policy == .always ? unsynced : nil)
                } catch {}
            }
            if stop {
                if fd >= 0 { close(fd) }
                return
            }
        }
    }

    /// Opens the new journal before letting go of the old one: when it cannot be opened, the
    /// old file stays current (or, after a fault, nothing is written until the next try).
    private func switchFile(sequence: UInt64, createdAt: Int64) -> PersistenceError? {
        do {
            let (descriptor, offset) = try Self.openFile(directory: directory, sequence: sequence, createdAt: createdAt)
            // The old file was synced (or, after a fault, cut back and synced) before this.
            if fd >= 0 { close(fd) }
            fd = descriptor
            goodOffset = offset
            dirty = false
            condition.withLock { fault = nil }
            return nil
        } catch let error as PersistenceError {
            logger.error("cannot start a new journal; the current one stays in use", metadata: ["error": "\(error)"])
            return error
        } catch {
            return PersistenceError("\(error)")
        }
    }

    /// Records a fault: the failed bytes are cut off the file, `tickets` (and every later one
    /// until recovery) fail.
    private func fail(_ error: PersistenceError, tickets: ClosedRange<UInt64>?) {
        if fd >= 0 { _ = ftruncate(fd, goodOffset) }
        condition.lock()
        let first = degradedSince == nil
        fault = error
        faultEpoch += 1
        if first { degradedSince = ContinuousClock.now }
        condition.unlock()
        if first {
            logger.critical("journal write failed: changes are refused until the disk takes them again; reads go on",
                            metadata: ["error": "\(error)"])
        }
        if let tickets { settle(tickets, failure: error) }
    }

    /// Marks `tickets` processed: written when `failure` is nil, else failed with it.
    private func settle(_ tickets: ClosedRange<UInt64>, failure: PersistenceError?) {
        condition.lock()
        if failure != nil {
            if let last = failedTickets.last, last.upperBound + 1 == tickets.lowerBound {
                failedTickets[failedTickets.count - 1] = last.lowerBound...tickets.upperBound
            } else {
                failedTickets.append(tickets)
                if failedTickets.count > 64 { failedTickets.removeFirst() }
            }
        }
        if tickets.upperBound > processed { processed = tickets.upperBound }
        var ready: [EventLoopPromise<Void>] = []
        waiters.removeAll { waiter in
            guard waiter.ticket <= tickets.upperBound else { return false }
            ready.append(waiter.promise)
            return true
        }
        condition.unlock()
        for promise in ready {
            if let failure { promise.fail(failure) } else { promise.succeed() }
        }
    }

    /// Creates journal `sequence` with its header, synced; returns the descriptor and the end
    /// of the header. A file that cannot be completed is removed, so that a later try starts
    /// afresh under the same name.
    private static func openFile(directory: String, sequence: UInt64, createdAt: Int64) throws -> (Int32, off_t) {
        let path = Self.path(directory: directory, sequence: sequence)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw PersistenceError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        fstat(descriptor, &info)
        if info.st_size > 0 { return (descriptor, info.st_size) }
        let header = FileHeader(kind: .journal, createdAt: createdAt, sequence: sequence).bytes
        do {
            try writeAll(header, to: descriptor)
            guard fdatasync(descriptor) == 0 else { throw PersistenceError("journal fsync failed: \(String(cString: strerror(errno)))") }
        } catch {
            close(descriptor)
            unlink(path)
            throw error
        }
        syncDirectory(directory)
        return (descriptor, off_t(header.count))
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        guard fd >= 0 else { throw PersistenceError("the journal file is not open") }
        try Self.writeAll(bytes, to: fd)
        dirty = true
    }

    private static func writeAll(_ bytes: [UInt8], to fd: Int32) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw PersistenceError("journal write failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
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
