import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A small Redis client on SwiftNIO: pipelined connections (one per event loop and node),
/// timeouts on every command, reconnection with backoff, EVALSHA with script loading, and
/// Redis Cluster (slot map from CLUSTER SLOTS, MOVED and ASK redirections).
///
/// Whether the endpoint is a cluster is found out on first use: a node with cluster support
/// disabled answers CLUSTER SLOTS with an error, and is then used alone.
public final class RedisClient: Sendable {
    public struct Configuration: Sendable {
        public var endpoint: RedisEndpoint
        public var password: String?
        /// The bound on connecting and on every command's reply.
        public var timeout: TimeAmount
        public var maximumBackoff: TimeAmount
        public var scripts: [RedisScript]
        /// With a `rediss://` endpoint: how to check the server (and who the client is).
        public var tls: RedisTLS
        /// Built once from `tls` for a `rediss://` endpoint, shared by every connection.
        let tlsContext: RedisTLSContext?

        public init(endpoint: RedisEndpoint, password: String? = nil, timeout: TimeAmount = .milliseconds(500),
                    maximumBackoff: TimeAmount = .seconds(1), scripts: [RedisScript] = [], tls: RedisTLS = RedisTLS()) throws(RedisEndpointError) {
            self.endpoint = endpoint
            self.password = password
            self.timeout = timeout
            self.maximumBackoff = maximumBackoff
            self.scripts = scripts
            self.tls = tls
            tlsContext = endpoint.tls ? RedisTLSContext(context: try tls.makeContext(), serverName: tls.serverName) : nil
        }
    }

    public enum Mode: String, Sendable {
        case unknown, single, cluster
    }

    private struct Topology {
        var mode = Mode.unknown
        /// Cluster: the master serving each slot.
        var slots: [RedisAddress?] = Array(repeating: nil, count: HashSlot.count)
        var nodes: [RedisAddress: RedisNode] = [:]
        var discovery: EventLoopFuture<Void>?
        var nextFailureRefresh = NIODeadline.uptimeNanoseconds(0)
    }

    /// What `stats` reports about the store's health.
    public struct Health: Sendable {
        public var mode: Mode
        public var healthy: Bool
        public var commands: UInt64
        public var failures: UInt64
        public var redirections: UInt64
    }

    private struct Counters {
        var commands: UInt64 = 0
        var failures: UInt64 = 0
        var redirections: UInt64 = 0
        var consecutiveFailures = 0
    }

    public let configuration: Configuration
    private let topology = NIOLockedValueBox(Topology())
    private let counters = NIOLockedValueBox(Counters())
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let seed = RedisNode(address: configuration.endpoint.address, settings: configuration)
        topology.withLockedValue { topology in
            topology.nodes[seed.address] = seed
            if case .unix = configuration.endpoint.address { topology.mode = .single }
        }
    }

    public var health: Health {
        let mode = topology.withLockedValue { $0.mode }
        return counters.withLockedValue {
            Health(mode: mode, healthy: $0.consecutiveFailures == 0, commands: $0.commands, failures: $0.failures, redirections: $0.redirections)
        }
    }

    public func close() {
        for node in topology.withLockedValue({ Array($0.nodes.values) }) { node.close() }
    }

    // MARK: Commands

    /// Runs `command` on the node serving `key` (any key of the command; on a cluster all of its
    /// keys must share a slot). Error replies come back as `.error` values; a missing reply
    /// fails the future with a `RedisError`.
    public func send(_ command: RedisCommand, key: [UInt8]?, on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        send(command, key: key, orOnNoScript: nil, on: loop)
    }

    /// `send`, with the command to run instead when the node answers NOSCRIPT.
    private func send(_ command: RedisCommand, key: [UInt8]?, orOnNoScript fallback: RedisCommand?, on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        let slot = key.map { HashSlot.of($0) }
        // The common case: the topology is known and this loop's connection to the node is up.
        if let (address, connection) = readyConnection(slot: slot, on: loop) {
            return connection.send(command, timeout: configuration.timeout).flatMap { reply in
                self.inspect(reply, command, fallback, slot: slot, on: loop, redirections: 0, from: address)
            }.always { self.count($0) }
        }
        // Otherwise discovery and connecting come first. Each step has the timeout, and the
        // whole call twice that: a command written in time then fails by its own timeout, which
        // also drops its connection.
        let promise = loop.makePromise(of: RESPValue.self)
        let settled = NIOLockedValueBox(false)
        let settle = { @Sendable () -> Bool in
            settled.withLockedValue { done in
                defer { done = true }
                return !done
            }
        }
        let deadline = loop.scheduleTask(in: configuration.timeout * 2) {
            if settle() { promise.fail(RedisError.timeout) }
        }
        ready(on: loop).flatMap { self.execute(command, fallback, slot: slot, on: loop, redirections: 0, asking: nil) }
            .whenComplete { result in
                deadline.cancel()
                if settle() { promise.completeWith(result) }
            }
        return promise.futureResult.always { self.count($0) }
    }

    /// The connection `slot` routes to on `loop`, when both are ready without waiting.
    private func readyConnection(slot: Int?, on loop: any EventLoop) -> (RedisAddress, RedisConnection)? {
        let routed = topology.withLockedValue { topology -> (RedisAddress, RedisNode?)? in
            guard topology.mode != .unknown else { return nil }
            let address: RedisAddress?
            if topology.mode == .cluster {
                address = slot.map { topology.slots[$0] } ?? topology.slots.lazy.compactMap { $0 }.first
            } else {
                address = configuration.endpoint.address
            }
            return address.map { ($0, topology.nodes[$0]) }
        }
        guard let (address, node) = routed, let connection = node?.readyConnection(on: loop) else { return nil }
        return (address, connection)
    }

    /// Runs a script with EVALSHA (EVAL when the node lost it). Keys route the call.
    public func evaluate(_ script: RedisScript, keys: [[UInt8]], arguments: [RedisArgument], on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        let tail: [RedisArgument] = [.integer(Int64(keys.count))] + keys.map { .bytes($0) } + arguments
        let eval = RedisCommand([.string("EVAL"), .string(script.source)] + tail)
        guard let sha = script.sha else { return send(eval, key: keys.first, on: loop) }
        return send(RedisCommand([.string("EVALSHA"), .string(sha)] + tail), key: keys.first, orOnNoScript: eval, on: loop)
    }

    /// Runs `command` on every master (SCAN, DBSIZE...), in no particular order.
    public func sendToMasters(_ command: RedisCommand, on loop: any EventLoop) -> EventLoopFuture<[(RedisAddress, RESPValue)]> {
        ready(on: loop).flatMap {
            let masters = self.masters()
            let replies = masters.map { address in
                self.sendUncounted(command, to: address, on: loop).map { (address, $0) }
            }
            return EventLoopFuture.whenAllSucceed(replies, on: loop)
        }.always { self.count($0) }
    }

    /// Runs `command` on one node.
    public func send(_ command: RedisCommand, to address: RedisAddress, on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        sendUncounted(command, to: address, on: loop).always { self.count($0) }
    }

    /// `command` on `address`'s connection on `loop`, without redirections or counting.
    private func sendUncounted(_ command: RedisCommand, to address: RedisAddress, on loop: any EventLoop) -> EventLoopFuture<RESPValue> {
        node(address).connection(on: loop).flatMap { $0.send(command, timeout: self.configuration.timeout) }
    }

    private func masters() -> [RedisAddress] {
        topology.withLockedValue { topology in
            switch topology.mode {
            case .cluster: Array(Set(topology.slots.compactMap { $0 }))
            default: [configuration.endpoint.address]
            }
        }
    }

    private func count<T>(_ result: Result<T, any Error>) {
        let recovered = counters.withLockedValue { counters -> Int? in
            counters.commands += 1
            switch result {
            case .success:
                defer { counters.consecutiveFailures = 0 }
                return counters.consecutiveFailures > 0 ? counters.consecutiveFailures : nil
            case .failure:
                counters.failures += 1
                counters.consecutiveFailures += 1
                return nil
            }
        }
        if let recovered {
            logger.notice("Redis answers again", metadata: ["redis.failed_commands": "\(recovered)"])
        }
    }

    private func node(_ address: RedisAddress) -> RedisNode {
        topology.withLockedValue { topology in
            if let node = topology.nodes[address] { return node }
            let node = RedisNode(address: address, settings: configuration)
            topology.nodes[address] = node
            return node
        }
    }

    private func execute(_ command: RedisCommand, _ fallback: RedisCommand?, slot: Int?, on loop: any EventLoop, redirections: Int,
                         asking: RedisAddress?) -> EventLoopFuture<RESPValue> {
        let address = asking ?? route(slot)
        guard let address else { return loop.makeFailedFuture(RedisError.clusterDown("no node serves slot \(slot ?? -1)")) }
        let timeout = configuration.timeout
        let node = node(address)
        let sent = node.connection(on: loop).flatMap { connection in
            asking == nil ? connection.send(command, timeout: timeout) : connection.send([RedisCommand("ASKING"), command], timeout: timeout)[1]
        }
        return sent.flatMapError { error in
            // In a cluster, an unreachable master may have failed over: ask for the map again.
            self.refreshSlotsAfterFailure(on: loop)
            return loop.makeFailedFuture(error)
        }.flatMap { reply in
            self.inspect(reply, command, fallback, slot: slot, on: loop, redirections: redirections, from: address)
        }
    }

    /// Follows a redirection, runs `fallback` on NOSCRIPT, or turns a reply that means "not now"
    /// into an error.
    private func inspect(_ reply: RESPValue, _ command: RedisCommand, _ fallback: RedisCommand?, slot: Int?, on loop: any EventLoop,
                         redirections: Int, from address: RedisAddress) -> EventLoopFuture<RESPValue> {
        guard case .error(let message) = reply else { return loop.makeSucceededFuture(reply) }
        let words = message.split(separator: " ")
        switch words.first {
        case "MOVED", "ASK":
            guard words.count == 3, var target = RedisAddress.parse(hostPort: String(words[2])), let movedSlot = Int(words[1]) else {
                return loop.makeFailedFuture(RedisError.protocolViolation("bad redirection: \(message)"))
            }
            // `:port` alone means the host of the node that answered.
            if case .tcp("", let port) = target, case .tcp(let host, _) = address { target = .tcp(host: host, port: port) }
            guard redirections < 5 else { return loop.makeFailedFuture(RedisError.tooManyRedirections) }
            counters.withLockedValue { $0.redirections += 1 }
            if words[0] == "ASK" {
                return execute(command, fallback, slot: slot, on: loop, redirections: redirections + 1, asking: target)
            }
            // The slot moved for good: note it, and fetch the whole map again in the background.
            topology.withLockedValue { topology in
                topology.mode = .cluster
                topology.slots[movedSlot] = target
            }
            refreshSlots(on: loop)
            return execute(command, fallback, slot: slot, on: loop, redirections: redirections + 1, asking: nil)
        case "READONLY", "MASTERDOWN":
            // A primary that became a replica (a failover behind one address): reconnect, so that
            // the address resolves afresh, and in a cluster ask for the map again.
            node(address).drop(on: loop)
            refreshSlotsAfterFailure(on: loop)
            return loop.makeFailedFuture(RedisError.clusterDown(message))
        case "TRYAGAIN", "CLUSTERDOWN", "LOADING":
            return loop.makeFailedFuture(RedisError.clusterDown(message))
        case "NOSCRIPT":
            // The node lost its scripts (SCRIPT FLUSH): EVAL loads the script again.
            guard let fallback else { return loop.makeSucceededFuture(reply) }
            return execute(fallback, nil, slot: slot, on: loop, redirections: redirections, asking: nil)
        default:
            return loop.makeSucceededFuture(reply)
        }
    }

    /// In cluster mode, a new CLUSTER SLOTS round at most once a second after failures.
    private func refreshSlotsAfterFailure(on loop: any EventLoop) {
        let due = topology.withLockedValue { topology -> Bool in
            guard topology.mode == .cluster, NIODeadline.now() >= topology.nextFailureRefresh else { return false }
            topology.nextFailureRefresh = .now() + .seconds(1)
            return true
        }
        if due { refreshSlots(on: loop) }
    }

    private func route(_ slot: Int?) -> RedisAddress? {
        topology.withLockedValue { topology in
            guard topology.mode == .cluster else { return configuration.endpoint.address }
            guard let slot else { return topology.slots.lazy.compactMap { $0 }.first }
            return topology.slots[slot]
        }
    }

    // MARK: Topology

    /// Completes once the mode is known (discovering it on first use).
    private func ready(on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard let pending = discover(on: loop, onlyIfUnknown: true) else { return loop.makeSucceededVoidFuture() }
        return pending.hop(to: loop)
    }

    private func refreshSlots(on loop: any EventLoop) {
        _ = discover(on: loop, onlyIfUnknown: false)
    }

    /// Starts (or joins) a CLUSTER SLOTS round, asking the seed and then the known masters in
    /// turn; nil when `onlyIfUnknown` and the mode is known.
    private func discover(on loop: any EventLoop, onlyIfUnknown: Bool) -> EventLoopFuture<Void>? {
        let seed = configuration.endpoint.address
        enum Step {
            case done
            case join(EventLoopFuture<Void>)
            case start(EventLoopPromise<Void>, [RedisAddress])
        }
        let step = topology.withLockedValue { topology -> Step in
            if onlyIfUnknown, topology.mode != .unknown { return .done }
            if let running = topology.discovery { return .join(running) }
            let promise = loop.makePromise(of: Void.self)
            topology.discovery = promise.futureResult
            return .start(promise, [seed] + Set(topology.slots.compactMap { $0 }).subtracting([seed]))
        }
        switch step {
        case .done:
            return nil
        case .join(let future):
            return future
        case .start(let promise, let candidates):
            promise.futureResult.whenComplete { _ in self.topology.withLockedValue { $0.discovery = nil } }
            askSlots(candidates[...], on: loop, lastError: nil, promise: promise)
            return promise.futureResult
        }
    }

    private func askSlots(_ candidates: ArraySlice<RedisAddress>, on loop: any EventLoop, lastError: (any Error)?, promise: EventLoopPromise<Void>) {
        guard let address = candidates.first else {
            return promise.fail(lastError ?? RedisError.clusterDown("no node to ask for the slot map"))
        }
        sendUncounted(RedisCommand("CLUSTER", "SLOTS"), to: address, on: loop)
            .whenComplete { result in
                switch result {
                case .success(.error(let message)) where address == self.configuration.endpoint.address:
                    // "cluster support disabled", or an ACL or renamed command that forbids asking:
                    // either way, use the node alone (a MOVED would still reveal a cluster).
                    self.logger.debug("using Redis as a single node", metadata: ["redis.reply": "\(message)"])
                    self.topology.withLockedValue { if $0.mode == .unknown { $0.mode = .single } }
                    promise.succeed()
                case .success(let reply):
                    guard let map = Self.slotMap(reply, default: address) else {
                        return self.askSlots(candidates.dropFirst(), on: loop, lastError: RedisError.protocolViolation("unexpected CLUSTER SLOTS reply"), promise: promise)
                    }
                    self.topology.withLockedValue { topology in
                        topology.mode = .cluster
                        topology.slots = map
                    }
                    self.logger.info("redis cluster slot map loaded", metadata: ["redis.masters": "\(Set(map.compactMap { $0 }).count)"])
                    promise.succeed()
                case .failure(let error):
                    self.askSlots(candidates.dropFirst(), on: loop, lastError: error, promise: promise)
                }
            }
    }

    /// CLUSTER SLOTS: `[[start, end, [host, port, id...], replicas...]...]`.
    static func slotMap(_ reply: RESPValue, default seed: RedisAddress) -> [RedisAddress?]? {
        guard let ranges = reply.array else { return nil }
        var map = [RedisAddress?](repeating: nil, count: HashSlot.count)
        for range in ranges {
            guard let fields = range.array, fields.count >= 3, let start = fields[0].integer, let end = fields[1].integer,
                  let master = fields[2].array, master.count >= 2, let port = master[1].integer,
                  start >= 0, end < HashSlot.count, start <= end
            else { return nil }
            var host = master[0].string ?? ""
            if host.isEmpty || host == "?" {
                guard case .tcp(let seedHost, _) = seed else { return nil }
                host = seedHost
            }
            for slot in Int(start)...Int(end) { map[slot] = .tcp(host: host, port: Int(port)) }
        }
        return map
    }
}
