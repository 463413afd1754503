import Foundation
import TokenStore

/// What `tokenctl store check` found in a state directory: each state file's header, size and
/// record counts, the problems, and the files tokend leaves behind.
///
/// It holds counts, sizes, offsets, sequence numbers and times only: records are decoded to be
/// checked and counted, and their contents (subjects, digests, sealed tokens) are dropped at once.
struct StateDirectoryReport {
    /// One snapshot or journal file.
    struct FileSummary {
        var name: String
        var kind: FileHeader.Kind
        /// nil when the header is unreadable (the problem says why).
        var header: FileHeader?
        /// The file's size.
        var bytes: Int
        /// Records read up to the end of the file or its problem, by kind; a snapshot's end
        /// record counts as `snapshotEnd`.
        var records: [JournalRecord.Kind: UInt64] = [:]
        /// A journal older than the snapshot: everything in it is in the snapshot, tokend removes
        /// it at start without reading it, and so its records are not read here either.
        var coveredBySnapshot = false
        /// The first problem in this file.
        var problem: Problem?

        var recordCount: UInt64 { records.values.reduce(0, +) }
    }

    /// Where reading a file stopped, and what tokend makes of it.
    struct Problem {
        /// The file's name in the directory.
        var file: String
        var offset: Int
        var reason: String
        /// A torn tail of the newest journal, which tokend cuts off at start; otherwise damage,
        /// which stops tokend unless it is started with `--repair`.
        var torn: Bool
    }

    /// A file tokend leaves behind: an interrupted snapshot write, or one `--repair` set aside.
    struct Leftover {
        enum Kind: String {
            case temporarySnapshot = "temporary_snapshot"
            case broken
        }

        var name: String
        var kind: Kind
        var bytes: Int
    }

    var directory: String
    /// The pid of a tokend that holds the directory's lock (0 when it cannot be read), nil when
    /// none does. The check only reads either way; it never takes the daemon's lock.
    var inUseBy: Int32?
    /// The snapshot (if any), then the journals in sequence order.
    var files: [FileSummary] = []
    var leftovers: [Leftover] = []

    /// The first problem, in the order tokend reads the files.
    var problem: Problem? { files.lazy.compactMap(\.problem).first }
    /// Every problem, first one first.
    var problems: [Problem] { files.compactMap(\.problem) }
}

extension StateDirectoryReport {
    /// Reads and checks every state file in `directory`.
    ///
    /// - Throws: ``UsageError`` when the directory, or a state file in it, cannot be read.
    init(checking directory: String) throws {
        self.directory = directory
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw UsageError("no state directory at \(directory)")
        }
        guard isDirectory.boolValue else { throw UsageError("\(directory) is not a directory") }
        guard access(directory, R_OK | X_OK) == 0 else {
            throw UsageError("cannot read the state directory \(directory): \(String(cString: strerror(errno)))")
        }
        inUseBy = StateDirectoryLock.liveHolder(directory: directory)
        let names: [String]
        do {
            names = try manager.contentsOfDirectory(atPath: directory)
        } catch {
            throw UsageError("cannot list the state directory \(directory)")
        }

        // The names StateLoader reads: `journal-<hex sequence>.tkj`, in sequence order.
        let journals = names.compactMap { name -> (sequence: UInt64, name: String)? in
            StateLoader.journalSequence(fileName: name).map { ($0, name) }
        }.sorted { $0.sequence < $1.sequence }

        var firstJournal: UInt64 = 0
        let hasSnapshot = names.contains(SnapshotFile.name)
        if hasSnapshot {
            let snapshot = try Self.check(directory: directory, name: SnapshotFile.name, kind: .snapshot, newestJournal: false)
            firstJournal = snapshot.header?.sequence ?? 0
            files.append(snapshot)
        }
        for (index, journal) in journals.enumerated() {
            if journal.sequence < firstJournal {
                files.append(try Self.covered(directory: directory, name: journal.name))
            } else {
                files.append(try Self.check(directory: directory, name: journal.name, kind: .journal,
                                            newestJournal: index == journals.count - 1))
            }
        }

        // A gap in the journals loses changes silently; tokend refuses to start on one. The
        // problem is reported at the first journal after the gap (or the snapshot's number).
        if let gap = StateLoader.missingJournals(snapshot: hasSnapshot ? firstJournal : nil, journals: journals.map(\.sequence)) {
            var expected = max(hasSnapshot ? firstJournal : 1, 1)
            for journal in journals where journal.sequence >= firstJournal {
                if journal.sequence != expected, let index = files.firstIndex(where: { $0.name == journal.name }), files[index].problem == nil {
                    files[index].problem = Problem(file: journal.name, offset: 0, reason: gap, torn: false)
                    break
                }
                expected += 1
            }
        }

        for name in names.sorted() {
            let kind: Leftover.Kind
            if name == SnapshotFile.temporaryName {
                kind = .temporarySnapshot
            } else if name.hasSuffix(".broken") {
                kind = .broken
            } else {
                continue
            }
            leftovers.append(Leftover(name: name, kind: kind, bytes: Self.size(of: directory + "/" + name)))
        }
    }

    /// Reads the header and every record of one file, as tokend's start-up does.
    private static func check(directory: String, name: String, kind: FileHeader.Kind, newestJournal: Bool) throws -> FileSummary {
        let reader = try reader(directory: directory, name: name)
        var summary = FileSummary(name: name, kind: kind, bytes: reader.bytes.count)
        var records: [JournalRecord.Kind: UInt64] = [:]
        do {
            summary.header = try reader.header(kind)
            try reader.forEachRecord(snapshot: kind == .snapshot) { record, _ in
                records[record.kind, default: 0] += 1
            }
            // The reader checks a snapshot's end record and returns only after it.
            if kind == .snapshot { records[.snapshotEnd] = 1 }
        } catch let problem as RecordReader.Problem {
            // Only the newest journal can end in an interrupted write; anywhere else the same
            // signs are damage (StateLoader decides the same way).
            summary.problem = Problem(file: name, offset: problem.offset, reason: problem.reason,
                                      torn: newestJournal && problem.looksTorn)
        }
        summary.records = records
        return summary
    }

    /// A journal the snapshot covers: its header only.
    private static func covered(directory: String, name: String) throws -> FileSummary {
        let reader = try reader(directory: directory, name: name)
        var summary = FileSummary(name: name, kind: .journal, bytes: reader.bytes.count)
        summary.header = try? reader.header(.journal)
        summary.coveredBySnapshot = true
        return summary
    }

    private static func reader(directory: String, name: String) throws -> RecordReader {
        let path = directory + "/" + name
        guard access(path, R_OK) == 0 else {
            throw UsageError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        do {
            return try RecordReader(path: path)
        } catch {
            throw UsageError("cannot read \(path)")
        }
    }

    private static func size(of path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }
}
