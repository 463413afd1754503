import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
@testable import TokenServer
import TokenJWT
import TokenProtocol
import TokenStore

/// A clock the test moves by hand.
final class ManualClock: TokenClock {
    /// Unix milliseconds.
    private let time: NIOLockedValueBox<Int64>
    init(_ start: Int64 = 1_800_000_000) { time = NIOLockedValueBox(start * 1000) }
    func milliseconds() -> Int64 { time.withLockedValue { $0 } }
    func advance(_ seconds: Int64) { time.withLockedValue { $0 += seconds * 1000 } }
    func advance(milliseconds: Int64) { time.withLockedValue { $0 += milliseconds } }
}

/// tokend's service core in this process: an embedded store without files, keys in a
/// temporary directory, a manual clock, and an embedded event loop (the store answers at once).
final class ServiceFixture {
    let clock = ManualClock()
    let loop = EmbeddedEventLoop()
    let directory: String
    let service: TokenService
    let keyDirectory: KeyDirectory
    /// A peer holding every role: the test's own uid.
    let owner = PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid())

    init(algorithm: JWSAlgorithm = .hs256, configure: (inout TokendConfiguration) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-service-\(UUID().uuidString)").path
        var configuration = TokendConfiguration()
        configuration.stateDirectory = directory
        configuration.algorithm = algorithm
        configure(&configuration)
        let logger = Logger(label: "test")
        keyDirectory = KeyDirectory(path: configuration.keysDirectory)
        let (entries, secret) = try keyDirectory.loadOrCreate(algorithm: algorithm, now: clock.now(), logger: logger)
        let keys = SigningKeys(directory: keyDirectory, entries: entries, policy: JWTValidationPolicy(leeway: configuration.leeway), now: clock.now())
        let policy = RenewalPolicy(renewBelow: configuration.renewBelow, renewBy: configuration.renewBy, dedupWindowMilliseconds: configuration.dedupWindowMilliseconds,
                                   rotationGraceMilliseconds: configuration.rotationGraceMilliseconds)
        let store = try EmbeddedStore(policy: policy, clock: clock, persistence: nil, logger: logger)
        service = TokenService(configuration: configuration, store: store, keys: keys, digester: try Digester(secret: secret), clock: clock, logger: logger)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// One request through the service, answered on the embedded loop.
    func call(_ opcode: Opcode, _ fields: Fields, peer: PeerCredentials? = nil) throws -> Response {
        let future = service.handle(Request(opcode: opcode, id: 1, fields: fields), peer: peer ?? owner, on: loop)
        loop.run()
        return try future.wait()
    }

    func issue(_ request: IssueRequest) throws -> IssueResult {
        let response = try call(.issue, request.fields)
        guard response.status == .ok else { throw FixtureFailure("issue answered \(response.status.name)") }
        return try IssueResult(fields: response.fields)
    }

    func revoke(_ request: RevokeRequest) throws -> Status {
        try call(.revoke, request.fields).status
    }
}

struct FixtureFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
