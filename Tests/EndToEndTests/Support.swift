import Foundation
import TokenClient
import TokenProtocol

extension DaemonProcess {
    func client() async throws -> TokenClient {
        try await TokenClient.connect(socketPath: socketPath)
    }

    /// A client with a near cache (read-your-revocations).
    func cachingClient() async throws -> TokenClient {
        try await TokenClient.connect(socketPath: socketPath, nearCache: NearCacheConfiguration())
    }
}

/// Seconds since the Unix epoch, with a fraction.
func wallClock() -> Double { Date().timeIntervalSince1970 }

/// Sleeps until the wall clock reads `time` (Unix seconds).
func sleep(until time: Double) async throws {
    let delay = time - wallClock()
    if delay > 0 { try await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
}

/// The status a call was refused with, or nil when it succeeded.
func refusal<T>(_ body: () async throws -> T) async -> Status? {
    do {
        _ = try await body()
        return nil
    } catch let error as TokenClientError {
        return error.status
    } catch {
        return .internalError
    }
}

extension Array where Element == UInt8 {
    static func text(_ string: String) -> [UInt8] { Array(string.utf8) }
}
