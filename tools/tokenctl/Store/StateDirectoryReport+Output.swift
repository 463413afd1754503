import TokenJWT
import TokenStore

extension StateDirectoryReport {
    /// `ok`, `torn_tail` or `damaged`, after the first problem.
    var status: String {
        guard let problem else { return "ok" }
        return problem.torn ? "torn_tail" : "damaged"
    }

    /// Prints the report: one JSON object, or a table of the files and what to do.
    func print(json: Bool) {
        if json {
            printJSON(jsonObject)
        } else {
            Swift.print(text)
        }
    }

    // MARK: Text

    var text: String {
        let journals = files.filter { $0.kind == .journal }.count
        let snapshot = files.contains { $0.kind == .snapshot } ? "a snapshot" : "no snapshot"
        var lines = ["\(directory): \(snapshot) and \(journals) \(journals == 1 ? "journal" : "journals")"]
        if let pid = inUseBy {
            lines.append("in use by a running tokend\(pid > 0 ? " (pid \(pid))" : ""): read without changing anything; "
                + "the newest journal may be growing while it is read, so a torn tail there is expected")
        }
        if !files.isEmpty {
            var table = TextTable(header: ["FILE", "KIND", "VERSION", "SEQUENCE", "CREATED_AT", "BYTES", "RECORDS"])
            for file in files {
                table.append([
                    file.name, file.kind.name,
                    file.header.map { String($0.version) } ?? "-",
                    file.header.map { String($0.sequence) } ?? "-",
                    file.header.map { UnixTime.iso(UInt64(clamping: $0.createdAt)) } ?? "-",
                    String(file.bytes),
                    Self.describeRecords(of: file),
                ])
            }
            lines.append(table.render())
        }
        for file in files where file.coveredBySnapshot {
            lines.append("note: \(file.name) is older than the snapshot, which holds all of it; tokend removes it at start.")
        }
        for leftover in leftovers {
            switch leftover.kind {
            case .temporarySnapshot:
                lines.append("note: \(leftover.name) (\(leftover.bytes) bytes) is left from an interrupted snapshot write; tokend removes it at start.")
            case .broken:
                lines.append("note: \(leftover.name) (\(leftover.bytes) bytes) was set aside by tokend --repair; tokend ignores it and keeps it for inspection.")
            }
        }
        guard let problem else {
            let records = files.reduce(UInt64(0)) { $0 + $1.recordCount }
            lines.append("clean: \(files.count) \(files.count == 1 ? "file" : "files"), \(records) records, no problems")
            return lines.joined(separator: "\n")
        }
        lines.append("problem: \(problem.file) at byte offset \(problem.offset): \(problem.reason)")
        lines.append(Self.advice(for: problem))
        for other in problems.dropFirst() {
            lines.append("also: \(other.file) at byte offset \(other.offset): \(other.reason)")
        }
        return lines.joined(separator: "\n")
    }

    /// `7 (put_login 3, rotate 2, revoke 2)`, with where reading stopped if it did.
    private static func describeRecords(of file: FileSummary) -> String {
        if file.coveredBySnapshot { return "not read (covered by the snapshot)" }
        let counts = JournalRecord.Kind.allCases.compactMap { kind in
            file.records[kind].map { "\(kind.name) \($0)" }
        }
        var text = String(file.recordCount)
        if !counts.isEmpty { text += " (\(counts.joined(separator: ", ")))" }
        if let problem = file.problem { text += " before byte offset \(problem.offset)" }
        return text
    }

    /// What tokend will do about `problem`, and what the operator can do.
    private static func advice(for problem: Problem) -> String {
        if problem.torn {
            let cut = problem.offset == 0
                ? "removes the file (not even its header was written)"
                : "cuts the file at byte offset \(problem.offset)"
            return "torn tail: the newest journal ends in a write that a crash interrupted. At its next start tokend "
                + "\(cut) and loses only that unfinished write."
        }
        let repair = if problem.file == SnapshotFile.name {
            "it moves \(problem.file) aside as \(problem.file).broken and replays the journals without it, "
                + "so logins that only the snapshot held are lost."
        } else {
            "it keeps the \(problem.offset) bytes before the damage, sets the whole file aside as "
                + "\(problem.file).broken and goes on with the later journals."
        }
        return "damage: tokend refuses to start on this directory. Keep a copy of the directory, "
            + "then start tokend with --repair: \(repair)"
    }

    // MARK: JSON

    var jsonObject: JSONObject {
        JSONObject([
            "status": .string(status),
            "directory": .string(directory),
            "in_use_by_pid": inUseBy.map { .integer($0) } ?? .null,
            "files": .array(files.map { .object(Self.jsonObject(for: $0)) }),
            "problem": problem.map { .object(Self.jsonObject(for: $0, naming: true)) } ?? .null,
            "leftovers": .array(leftovers.map { leftover in
                .object(JSONObject([
                    "name": .string(leftover.name),
                    "kind": .string(leftover.kind.rawValue),
                    "bytes": .integer(leftover.bytes),
                ]))
            }),
        ])
    }

    private static func jsonObject(for file: FileSummary) -> JSONObject {
        var records: JSONValue = .null
        if !file.coveredBySnapshot {
            let kinds = JournalRecord.Kind.allCases.filter { $0 != .snapshotEnd || file.kind == .snapshot }
            records = .object(JSONObject(members: kinds.map { JSONObject.Member(name: $0.name, value: .integer(file.records[$0] ?? 0)) }))
        }
        return JSONObject([
            "name": .string(file.name),
            "kind": .string(file.kind.name),
            "version": file.header.map { .integer($0.version) } ?? .null,
            "sequence": file.header.map { .integer($0.sequence) } ?? .null,
            "created_at": file.header.map { .string(UnixTime.iso(UInt64(clamping: $0.createdAt))) } ?? .null,
            "bytes": .integer(file.bytes),
            "records": records,
            "covered_by_snapshot": .bool(file.coveredBySnapshot),
            "problem": file.problem.map { .object(jsonObject(for: $0, naming: false)) } ?? .null,
        ])
    }

    private static func jsonObject(for problem: Problem, naming: Bool) -> JSONObject {
        var object = JSONObject()
        if naming { object.append("file", .string(problem.file)) }
        object.append("offset", .integer(problem.offset))
        object.append("reason", .string(problem.reason))
        object.append("torn", .bool(problem.torn))
        return object
    }
}
