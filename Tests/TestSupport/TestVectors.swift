import Foundation

/// The test vectors kept in `Tests/Vectors/` (their origin and licence are in its README.md).
///
/// Every accessor throws a `FixtureError` naming the file (and the member) instead of trapping,
/// so that a missing or damaged fixture fails the one test that reads it.
public enum TestVectors {
    public static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent() // Tests/TestSupport/TestVectors.swift
        return url.deletingLastPathComponent().appendingPathComponent("Vectors")
    }()

    /// The JSON object in a file under `Tests/Vectors/`.
    public static func json(_ relativePath: String) throws -> Fixture {
        let url = directory.appendingPathComponent(relativePath)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw FixtureError(path: url.path, problem: "cannot be read (\(error.localizedDescription))")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FixtureError(path: url.path, problem: "is not a JSON object")
        }
        return Fixture(path: url.path, object: object)
    }

    /// The Wycheproof test groups of one file, each with its tests.
    public static func wycheproofGroups(_ name: String) throws -> [Fixture] {
        try json("wycheproof/\(name)").objects("testGroups")
    }
}

/// A fixture that is missing or not what the test expects.
public struct FixtureError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "test fixture \(path): \(problem)" }

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }
}

/// A JSON object read from a fixture file; its accessors throw, naming the file and the member.
public struct Fixture: @unchecked Sendable {
    public let path: String
    public let object: [String: Any]

    func value<T>(_ key: String, as type: T.Type) throws -> T {
        guard let value = object[key] else { throw FixtureError(path: path, problem: "lacks \"\(key)\"") }
        guard let typed = value as? T else { throw FixtureError(path: path, problem: "\"\(key)\" is not a \(T.self)") }
        return typed
    }

    public func string(_ key: String) throws -> String { try value(key, as: String.self) }
    /// A whole number (JSONSerialization hands numbers over as NSNumber).
    public func int(_ key: String) throws -> Int {
        let number = try value(key, as: NSNumber.self)
        guard let int = Int(exactly: number.doubleValue) else { throw FixtureError(path: path, problem: "\"\(key)\" is not a whole number") }
        return int
    }
    public func bool(_ key: String) throws -> Bool { try value(key, as: Bool.self) }
    public func strings(_ key: String) throws -> [String: String] { try value(key, as: [String: String].self) }
    public func optionalInt64(_ key: String) throws -> Int64? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        return try Int64(int(key))
    }

    /// The bytes of a member written in hexadecimal.
    public func hex(_ key: String) throws -> [UInt8] {
        guard let bytes = [UInt8](hexString: try string(key)) else {
            throw FixtureError(path: path, problem: "\"\(key)\" is not hexadecimal")
        }
        return bytes
    }

    /// An array of objects, each a fixture of the same file.
    public func objects(_ key: String) throws -> [Fixture] {
        try value(key, as: [[String: Any]].self).map { Fixture(path: path, object: $0) }
    }
}

extension Array where Element == UInt8 {
    /// Bytes from hexadecimal text; nil unless it is an even number of hexadecimal digits.
    public init?(hexString hex: String) {
        guard hex.utf8.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let byte = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        self = bytes
    }

    /// Bytes from hexadecimal text written in a test's own source; traps on a typo there.
    public init(hex: String) {
        guard let bytes = [UInt8](hexString: hex) else { preconditionFailure("not hexadecimal: \(hex)") }
        self = bytes
    }

    /// Lower-case hexadecimal.
    public var hex: String { map { String(format: "%02x", $0) }.joined() }
}

/// Runs a program to completion, returning its exit status and standard output.
public func runProcess(_ path: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe(), error = Pipe(), stdin = Pipe()
    process.standardOutput = output
    process.standardError = error
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    // Read both pipes concurrently so that a full stderr pipe cannot block the child; the
    // semaphore orders the reader's write of errorData before this thread's read of it.
    nonisolated(unsafe) var errorData = Data()
    let done = DispatchSemaphore(value: 0)
    let reader = Thread {
        errorData = error.fileHandleForReading.readDataToEndOfFile()
        done.signal()
    }
    reader.start()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    done.wait()
    return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
}
