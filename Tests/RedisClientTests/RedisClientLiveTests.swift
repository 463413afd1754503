import Logging
import NIOCore
import NIOPosix
@testable import RedisClient
import TestSupport
import Testing

/// Against real redis-server processes (installed by tools/test).
@Suite(.serialized) struct RedisClientLiveTests {
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    func client(_ url: String, timeout: TimeAmount = .milliseconds(500), scripts: [RedisScript] = []) throws -> RedisClient {
        RedisClient(configuration: try .init(endpoint: try RedisEndpoint(url: url), timeout: timeout, scripts: scripts), logger: Logger(label: "test"))
    }

    func send(_ client: RedisClient, _ arguments: RedisArgument..., key: String? = nil) async throws -> RESPValue {
        try await client.send(RedisCommand(arguments), key: key.map { Array($0.utf8) }, on: loop).get()
    }

    @Test func pipelinedCommandsAreAnsweredInOrder() async throws {
        let server = try RedisServer()
        // Order is the point here, not speed: the last of a thousand replies may take longer than
        // the default 500 ms on a machine busy with other tests (aSlowReplyTimesOut... checks the timeout).
        let client = try client(server.unixURL, timeout: .seconds(30))
        defer { client.close() }
        let futures = (0..<1000).map { i in client.send(RedisCommand("INCR", "n"), key: Array("n".utf8), on: loop).map { ($0, i) } }
        let replies = try await EventLoopFuture.whenAllSucceed(futures, on: loop).get()
        #expect(replies.map(\.0.integer) == (1...1000).map { Optional(Int64($0)) })
        #expect(try await send(client, "GET", "n") == .bulkString(Array("1000".utf8)))
        #expect(client.health.healthy && client.health.mode == .single)
    }

    @Test func scriptsSurviveScriptFlush() async throws {
        let server = try RedisServer()
        let script = RedisScript(name: "echo", source: "return ARGV[1] .. KEYS[1]")
        let client = try client(server.unixURL, scripts: [script])
        defer { client.close() }
        #expect(try await client.evaluate(script, keys: [Array("k".utf8)], arguments: ["a"], on: loop).get() == .bulkString(Array("ak".utf8)))
        #expect(script.sha?.count == 40)
        try server.cli(["SCRIPT", "FLUSH"])
        #expect(try await client.evaluate(script, keys: [Array("k".utf8)], arguments: ["b"], on: loop).get() == .bulkString(Array("bk".utf8)))
    }

    @Test func aSlowReplyTimesOutAndTheClientRecovers() async throws {
        let server = try RedisServer()
        let client = try client(server.unixURL, timeout: .milliseconds(200))
        defer { client.close() }
        let started = ContinuousClock.now
        await #expect(throws: RedisError.timeout) { _ = try await send(client, "BLPOP", "empty", "5") }
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(try await send(client, "PING") == .simpleString("PONG"))
    }

    @Test func anUnreachableServerFailsFastThenRecovers() async throws {
        let server = try RedisServer(appendOnly: true)
        let client = try client(server.unixURL, timeout: .milliseconds(300))
        defer { client.close() }
        _ = try await send(client, "SET", "k", "v")
        server.stop(kill: true)
        for _ in 0..<5 {
            let started = ContinuousClock.now
            await #expect(throws: RedisError.self) { _ = try await send(client, "GET", "k") }
            #expect(ContinuousClock.now - started < .seconds(1))
        }
        #expect(!client.health.healthy)
        try server.start()
        var reply: RESPValue?
        for _ in 0..<100 where reply == nil {
            reply = try? await send(client, "GET", "k")
            if reply == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(reply == .bulkString(Array("v".utf8)))
        #expect(client.health.healthy)
    }

    @Test func passwordsAreSentAndWrongOnesRefused() async throws {
        let server = try RedisServer(extra: ["--requirepass", "s3cret-pass"])
        let good = RedisClient(configuration: try .init(endpoint: try RedisEndpoint(url: server.unixURL), password: "s3cret-pass"), logger: Logger(label: "t"))
        defer { good.close() }
        #expect(try await send(good, "PING") == .simpleString("PONG"))
        let bad = RedisClient(configuration: try .init(endpoint: try RedisEndpoint(url: server.unixURL), password: "wrong"), logger: Logger(label: "t"))
        defer { bad.close() }
        do {
            _ = try await send(bad, "PING")
            Issue.record("a wrong password was accepted")
        } catch {
            #expect("\(error)".contains("AUTH refused"))
            #expect(!"\(error)".contains("wrong"))
        }
    }

    @Test func clusterRoutingFollowsMovedAndAsk() async throws {
        let cluster = try RedisCluster()
        let client = try client(cluster.url)
        defer { client.close() }
        // Keys in every master's slots.
        for i in 0..<200 { #expect(try await send(client, "SET", .string("key\(i)"), .integer(Int64(i)), key: "key\(i)") == .simpleString("OK")) }
        for i in 0..<200 { #expect(try await send(client, "GET", .string("key\(i)"), key: "key\(i)") == .bulkString(Array("\(i)".utf8))) }
        #expect(client.health.mode == .cluster)

        // ASK: the slot is being migrated and the key already lives on the importing node.
        let key = "{moving}k"
        let slot = HashSlot.of(Array(key.utf8))
        let (source, sourceID) = try cluster.owner(of: slot)
        let target = cluster.masters.first { $0 !== source }!
        let targetID = try target.cli(["CLUSTER", "MYID"])
        try target.cli(["CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", sourceID])
        try source.cli(["CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", targetID])
        #expect(try await send(client, "SET", .string(key), "asked", key: key) == .simpleString("OK"))
        #expect(try target.cli(["CLUSTER", "COUNTKEYSINSLOT", "\(slot)"]) == "1")
        let redirectionsBefore = client.health.redirections
        #expect(redirectionsBefore >= 1)

        // MOVED: the slot now belongs to the target for good.
        for server in cluster.masters { try server.cli(["CLUSTER", "SETSLOT", "\(slot)", "NODE", targetID]) }
        #expect(try await send(client, "GET", .string(key), key: key) == .bulkString(Array("asked".utf8)))
        #expect(client.health.redirections > redirectionsBefore)
        // The map was updated: no further redirection for that slot.
        let settled = client.health.redirections
        #expect(try await send(client, "GET", .string(key), key: key) == .bulkString(Array("asked".utf8)))
        #expect(client.health.redirections == settled)
    }

    @Test func aUserWithoutClusterCommandsUsesTheNodeAlone() async throws {
        let server = try RedisServer(tcp: true)
        try server.cli(["ACL", "SETUSER", "limited", "on", ">pw-limited", "~*", "+@all", "-cluster"])
        let client = RedisClient(configuration: try .init(endpoint: try RedisEndpoint(url: "redis://limited@127.0.0.1:\(server.port!)"), password: "pw-limited"),
                                 logger: Logger(label: "t"))
        defer { client.close() }
        #expect(try await send(client, "SET", "k", "v", key: "k") == .simpleString("OK"))
        #expect(client.health.mode == .single)
        #expect(try await send(client, "GET", "k", key: "k") == .bulkString(Array("v".utf8)))
    }
}
