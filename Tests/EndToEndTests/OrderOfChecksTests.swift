import Foundation
import NIOCore
import Testing
import TokenClient
import TokenProtocol

/// proto-spec.md 14.1: the order in which the daemon checks a request, each step seen through
/// a request that fails two steps at once, so that the status tells which came first.
@Suite struct OrderOfChecksTests {
    /// A frame of `body` bytes as is (the header included), for bodies the codec cannot make.
    static func frame(_ body: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) } + body
    }

    /// A request body: version, opcode, id, then raw field bytes.
    static func body(version: UInt8 = 1, opcode: UInt8, id: UInt32, fields: [UInt8] = []) -> [UInt8] {
        [version, opcode] + withUnsafeBytes(of: id.bigEndian) { Array($0) } + fields
    }

    /// A field header whose length points past the end of the body (6.2 rule 4).
    static let brokenFieldSequence: [UInt8] = [FieldTag.subject.rawValue, 0, 0, 1, 0, 65]

    /// Sends one request on `connection` and returns its response, checking the echoed id.
    static func ask(_ connection: RawConnection, _ body: [UInt8]) throws -> Response {
        connection.send(frame(body))
        let response = try #require(try connection.readResponse(), "no response: the connection closed")
        let id = body[2..<6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(response.id == id, "the reply echoes the request id")
        return response
    }

    static func ask(_ connection: RawConnection, _ opcode: Opcode, id: UInt32, _ fields: Fields = Fields()) throws -> Response {
        var buffer = ByteBuffer()
        fields.write(to: &buffer)
        return try ask(connection, body(opcode: opcode.rawValue, id: id, fields: Array(buffer.readableBytesView)))
    }

    @Test func versionThenOpcodeThenFieldSequenceThenRoleThenFieldValues() async throws {
        // This test's uid holds neither role here; the second daemon grants both.
        let plain = try DaemonProcess(["--issue-uids", "4242", "--admin-uids", "4242"])
        let admin = try DaemonProcess()
        let nobody = try RawConnection(plain.socketPath)
        let operator_ = try RawConnection(admin.socketPath)

        // 3 before 4: a version not spoken, with an unknown opcode and broken fields.
        #expect(try Self.ask(nobody, Self.body(version: 9, opcode: 0x7F, id: 1, fields: Self.brokenFieldSequence)).status == .unsupportedVersion)
        // 4 before 5: an unknown opcode with a broken field sequence.
        #expect(try Self.ask(nobody, Self.body(opcode: 0x7F, id: 2, fields: Self.brokenFieldSequence)).status == .unknownOperation)
        // 5 before 6: the field sequence before the role, for an admin operation and for issue.
        #expect(try Self.ask(nobody, Self.body(opcode: Opcode.stats.rawValue, id: 3, fields: Self.brokenFieldSequence)).status == .badRequest)
        #expect(try Self.ask(nobody, Self.body(opcode: Opcode.issue.rawValue, id: 4, fields: Self.brokenFieldSequence)).status == .badRequest)

        // 6 before 7: the role before the values of the fields. An issue without a subject, and
        // a sessions request whose limit is not a u64: forbidden without the role, bad_request
        // with it.
        var badLimit = Fields()
        badLimit.append(.limit, bytes: [1, 2, 3])
        var noSubject = Fields()
        noSubject.append(.mode, uint8: 1)
        var oversizedSubject = Fields()
        oversizedSubject.append(.subject, string: String(repeating: "s", count: 257))
        for (opcode, fields, name) in [(Opcode.sessions, badLimit, "sessions with a 3-byte limit"),
                                       (.issue, noSubject, "issue without a subject"),
                                       (.issue, oversizedSubject, "issue with a 257-byte subject"),
                                       (.sessions, oversizedSubject, "sessions with a 257-byte subject")] {
            #expect(try Self.ask(nobody, opcode, id: 5, fields).status == .forbidden, "\(name), without the role")
            #expect(try Self.ask(operator_, opcode, id: 6, fields).status == .badRequest, "\(name), with the role")
        }

        // 7 before 8 for revoke: its fields are checked before the role its target needs.
        var longSessionID = Fields()
        longSessionID.append(.sessionID, string: String(repeating: "A", count: 129))
        var twoTargets = Fields()
        twoTargets.append(.sessionID, string: "AAAAAAAAAAAAAAAAAAAAAA")
        twoTargets.append(.subject, string: "alice")
        var duplicated = Fields()
        duplicated.append(.subject, string: "alice")
        duplicated.append(.subject, string: "bob")
        for (fields, name) in [(longSessionID, "a 129-byte session_id"), (twoTargets, "two targets"), (duplicated, "subject twice"), (Fields(), "no target")] {
            #expect(try Self.ask(nobody, .revoke, id: 7, fields).status == .badRequest, "revoke with \(name), without the issue role")
        }
        // Well-formed: then the role decides, by target.
        var bySession = Fields()
        bySession.append(.sessionID, string: "AAAAAAAAAAAAAAAAAAAAAA")
        var bySubject = Fields()
        bySubject.append(.subject, string: "alice")
        #expect(try Self.ask(nobody, .revoke, id: 8, bySession).status == .forbidden)
        #expect(try Self.ask(nobody, .revoke, id: 9, bySubject).status == .forbidden)
        #expect(try Self.ask(operator_, .revoke, id: 10, bySession).status == .sessionUnknown)
        var byToken = Fields()
        byToken.append(.token, string: "x.y.z")
        #expect(try Self.ask(nobody, .revoke, id: 11, byToken).status == .malformedToken, "revoke by token needs no role")
        // The connection stayed open through all of it.
        #expect(try Self.ask(nobody, .ping, id: 12).status == .ok)
    }

    /// Every operation that needs the admin role, and those that need the issue role, refused
    /// with `forbidden` to a peer without it, changing nothing; then allowed with the role.
    @Test func everyAdminOperationIsForbiddenWithoutTheRole() async throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plain = try DaemonProcess(["--issue-uids", "4242", "--admin-uids", "4242"], stateDirectory: directory)
        let nobody = try RawConnection(plain.socketPath)
        let keysBefore = try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("keys").path).sorted()
        let admin: [Opcode] = [.stats, .sessions, .keysList, .keysRotate, .snapshot, .keysReload, .metrics]
        for (index, opcode) in admin.enumerated() {
            let response = try Self.ask(nobody, opcode, id: UInt32(100 + index))
            #expect(response.status == .forbidden, "\(opcode.name): \(response.status.name)")
            #expect(response.opcode == opcode)
        }
        var issue = Fields()
        issue.append(.subject, string: "mallory")
        #expect(try Self.ask(nobody, .issue, id: 200, issue).status == .forbidden)
        // Nothing changed: no key made, no snapshot written.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("keys").path).sorted() == keysBefore)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("snapshot.tks").path))
        plain.stop()

        // The control: the same requests from a peer with the role succeed.
        let granted = try DaemonProcess(stateDirectory: directory)
        let root = try RawConnection(granted.socketPath)
        for (index, opcode) in admin.enumerated() {
            let response = try Self.ask(root, opcode, id: UInt32(300 + index))
            #expect(response.status == .ok, "\(opcode.name) with the admin role: \(response.status.name) \(response.message ?? "")")
        }
        #expect(try Self.ask(root, .issue, id: 400, issue).status == .ok)
    }
}
