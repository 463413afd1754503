import Foundation
import Logging

/// Rebuilds the state at start-up: the snapshot, then every journal after it, then expiry.
///
/// A torn last journal record (a crash mid-write) is cut off and logged. Any other damage
/// stops the start with the file and offset, unless `repair` is set: then the valid prefix is
/// kept, the damaged file is moved aside as `*.broken` (never deleted), and loading goes on.
/// A leftover temporary snapshot is removed.
public enum StateLoader {
    struct Loaded {
        var state: EmbeddedState
        /// The sequence number the next journal file gets.
        var nextSequence: UInt64
        /// Whether anything came from journals or was repaired: a fresh snapshot then shortens
        /// the next start and makes a repair durable.
        var replayedJournal: Bool
    }

    static func load(directory: String, policy: RenewalPolicy, now: Int64, repair: Bool, logger: Logger) throws -> Loaded {
        let started = ContinuousClock.now
        let files = FileManager.default
        let temporary = directory + "/" + SnapshotFile.temporaryName
        if files.fileExists(atPath: temporary) {
            try? files.removeItem(atPath: temporary)
            logger.notice("removed a temporary snapshot left by an interrupted write", metadata: ["file": "\(temporary)"])
        }
        var state = EmbeddedState(policy: policy, now: now)
        state.recordsChanges = false
        var firstJournal: UInt64 = 0
        var repaired = false
        var snapshotRecords = 0
        let snapshotPath = directory + "/" + SnapshotFile.name
        if files.fileExists(atPath: snapshotPath) {
            let reader = try RecordReader(path: snapshotPath)
            do {
                firstJournal = try reader.header(.snapshot).sequence
                guard firstJournal < UInt64(1) << 62 else {
                    throw RecordReader.Problem(file: snapshotPath, offset: 0, reason: "implausible journal sequence \(firstJournal)", looksTorn: false)
                }
                try reader.forEachRecord(snapshot: true) { record, _ in
                    state.apply(record, now: now)
                    snapshotRecords += 1
                }
            } catch let problem as RecordReader.Problem {
                guard repair else { throw damage(problem) }
                try moveAside(snapshotPath, logger: logger, problem: problem)
                repaired = true
            }
        }
        let journals = try journalSequences(directory)
        var journalRecords = 0
        /// The journals read (not those covered by the snapshot, nor an empty one removed).
        var read: [UInt64] = []
        for (index, sequence) in journals.enumerated() {
            let path = JournalWriter.path(directory: directory, sequence: sequence)
            guard sequence >= firstJournal else {
                // Covered by the snapshot; a crash came between the snapshot and this removal.
                try? files.removeItem(atPath: path)
                continue
            }
            let reader = try RecordReader(path: path)
            let isLast = index == journals.count - 1
            read.append(sequence)
            do {
                _ = try reader.header(.journal)
                try reader.forEachRecord(snapshot: false) { record, _ in
                    state.apply(record, now: now)
                    journalRecords += 1
                }
            } catch let problem as RecordReader.Problem {
                if isLast && problem.looksTorn {
                    if problem.offset == 0 {
                        // Not even the header made it to disk: the file holds nothing.
                        try FileManager.default.removeItem(atPath: path)
                        read.removeLast()
                    } else {
                        try truncate(path, at: problem.offset)
                    }
                    logger.warning("cut off a torn record at the end of the journal (a crash mid-write)",
                                   metadata: ["file": "\(path)", "offset": "\(problem.offset)", "reason": "\(problem.reason)"])
                } else if repair {
                    try moveAside(path, logger: logger, problem: problem, keepPrefix: problem.offset)
                    repaired = true
                } else {
                    throw damage(problem)
                }
            }
        }
        if !repaired, let gap = missingJournals(snapshot: files.fileExists(atPath: snapshotPath) ? firstJournal : nil, journals: read) {
            // Changes would be silently missing (revocations among them): a backup copied in the
            // wrong order, a snapshot or journal deleted by hand.
            guard repair else {
                throw PersistenceError("\(directory): \(gap); the state would silently lack the changes they held. Put the missing "
                                       + "files back (from the same backup), or start with --repair to load what is there")
            }
            logger.error("loading despite missing journals (--repair): their changes are lost", metadata: ["reason": "\(gap)"])
            repaired = true
        }
        state.recordsChanges = true
        let before = state.logins.count
        while state.expire(now: now, budget: .max) > 0 {}
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
        logger.notice("state loaded", metadata: [
            "snapshot.records": "\(snapshotRecords)", "journal.records": "\(journalRecords)", "journal.files": "\(journals.count)",
            "logins": "\(state.logins.count)", "expired.dropped": "\(before - state.logins.count)",
            "load.seconds": "\(String(format: "%.3f", seconds))",
        ])
        // After the journals still present: a newest journal deleted above (its header never
        // reached the disk) gives its number back, or the next start would see it missing.
        return Loaded(state: state, nextSequence: max(firstJournal, (read.last ?? 0) + 1), replayedJournal: journalRecords > 0 || repaired)
    }

    /// Why the journals after the snapshot are not the unbroken run tokend writes, or nil when
    /// they are. Each start and each snapshot opens the next sequence number, and a snapshot
    /// names the first journal it does not cover, so the journals to replay run from that
    /// number (1 without a snapshot) with no gap.
    public static func missingJournals(snapshot firstJournal: UInt64?, journals: [UInt64]) -> String? {
        let replayed = journals.filter { $0 >= (firstJournal ?? 0) }
        // Journals are numbered from 1, whatever a snapshot says.
        var expected = max(firstJournal ?? 1, 1)
        for sequence in replayed {
            // Journal 0 without a snapshot: tokend never writes it, so it cannot be ordered.
            guard sequence >= expected else { return "journal \(sequence) is not a number tokend writes (journals start at 1)" }
            guard sequence == expected else {
                let missing = expected == sequence - 1 ? "journal \(expected) is missing" : "journals \(expected) to \(sequence - 1) are missing"
                let after = firstJournal.map { "the snapshot starts at journal \($0)" } ?? "there is no snapshot"
                return "\(missing) (\(after); the next present is \(sequence))"
            }
            expected += 1
        }
        return nil
    }

    /// Journal sequence numbers present, ascending.
    static func journalSequences(_ directory: String) throws -> [UInt64] {
        try FileManager.default.contentsOfDirectory(atPath: directory).compactMap(journalSequence(fileName:)).sorted()
    }

    /// The sequence number of a journal's file name, or nil when the name is not one tokend
    /// reads as a journal: exactly the name it writes, `journal-`, 16 lower-case hexadecimal
    /// digits, `.tkj` (so one number has one name).
    public static func journalSequence(fileName name: String) -> UInt64? {
        let digits = name.utf8.dropFirst(8).dropLast(4)
        guard name.hasPrefix("journal-"), name.hasSuffix(".tkj"), name.utf8.count == 28,
              digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }),
              let sequence = UInt64(String(decoding: digits, as: UTF8.self), radix: 16), sequence < UInt64(1) << 62
        else { return nil }
        return sequence
    }

    static func damage(_ problem: RecordReader.Problem) -> PersistenceError {
        PersistenceError("\(problem); the state cannot be loaded safely. Inspect it with `tokenctl store check`, or start with --repair to keep the valid part and move the damaged file aside as .broken")
    }

    /// Renames the damaged file to `*.broken`; for a journal, writes its valid prefix back.
    static func moveAside(_ path: String, logger: Logger, problem: RecordReader.Problem, keepPrefix: Int? = nil) throws {
        // Never over an earlier .broken file: those are kept.
        var broken = path + ".broken"
        var copy = 1
        while FileManager.default.fileExists(atPath: broken) {
            copy += 1
            broken = path + ".broken.\(copy)"
        }
        guard rename(path, broken) == 0 else { throw PersistenceError("cannot move \(path) aside: \(String(cString: strerror(errno)))") }
        if let keepPrefix, keepPrefix >= FileHeader.length, let data = FileManager.default.contents(atPath: broken) {
            guard FileManager.default.createFile(atPath: path, contents: data.prefix(keepPrefix), attributes: [.posixPermissions: 0o600]) else {
                throw PersistenceError("cannot write the repaired \(path)")
            }
        }
        syncDirectory((path as NSString).deletingLastPathComponent)
        logger.error("repair: kept the valid part and moved the damaged file aside",
                     metadata: ["file": "\(path)", "moved.to": "\(broken)", "offset": "\(problem.offset)", "reason": "\(problem.reason)"])
    }

    static func truncate(_ path: String, at offset: Int) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PersistenceError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // Synced, so that the cut tail cannot come back after a power loss.
        guard ftruncate(fd, off_t(offset)) == 0, fsync(fd) == 0 else {
            throw PersistenceError("cannot cut the torn tail of \(path): \(String(cString: strerror(errno)))")
        }
    }
}
