import Foundation
import TokenClient
import TokenProtocol

/// `tokenctl bench --op verify --near-cache`: one client with a near cache verifies one session
/// token over and over, in one task on one thread. The first verify asks the daemon; every other
/// one is answered from the cache (in the read-your-revocations mode, after a non-blocking read
/// of the tracking socket). Measures what a service pays per request once the answer is cached.
struct NearCacheBench {
    let socket: String
    let mode: NearCacheConfiguration.Mode
    let requests: Int
    let fingerprint: [UInt8]

    struct Result: Codable {
        var mode: String
        var requests: Int
        var seconds: Double
        var requestsPerSecond: Double
        /// The process's CPU time (user + system) per verify, in microseconds.
        var cpuMicrosecondsPerRequest: Double
        var hits: UInt64
        var misses: UInt64
    }

    func run() async throws -> Result {
        let client = try await TokenClient.connect(socketPath: socket, nearCache: NearCacheConfiguration(mode: mode))
        defer { Task { await client.close() } }
        let login = try await client.issue(IssueRequest(mode: .session, subject: "bench", fingerprint: fingerprint))
        let token = login.sessionToken!
        let first = try await client.verify(token: token, fingerprint: fingerprint)
        guard first.result.cacheableUntil != nil else {
            throw TokenClientError(.refused, message: "the daemon granted no cacheable answer (a shared store that cannot hear the other daemons yet, or a session that renews on every verify)")
        }
        let cpuBefore = Self.cpuSeconds()
        let started = ContinuousClock.now
        for _ in 0..<requests {
            _ = try await client.verify(token: token, fingerprint: fingerprint)
        }
        let elapsed = ContinuousClock.now - started
        let cpu = Self.cpuSeconds() - cpuBefore
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let statistics = client.nearCacheStatistics!
        return Result(mode: mode == .readYourRevocations ? "read-your-revocations" : "as-delivered", requests: requests, seconds: seconds,
                      requestsPerSecond: Double(requests) / seconds, cpuMicrosecondsPerRequest: cpu * 1e6 / Double(requests),
                      hits: statistics.hits, misses: statistics.misses)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func print(_ result: Result, json: Bool) {
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            Swift.print(String(decoding: (try? encoder.encode(result)) ?? Data(), as: UTF8.self))
            return
        }
        Swift.print("""
            verify with a near cache (\(result.mode)), one client, one task
              requests:      \(result.requests) in \(String(format: "%.3f", result.seconds)) s
              throughput:    \(String(format: "%.0f", result.requestsPerSecond)) verifies/s
              cpu/verify:    \(String(format: "%.3f", result.cpuMicrosecondsPerRequest)) us (this process, user + system)
              cache:         \(result.hits) hits, \(result.misses) misses
            """)
    }
}
