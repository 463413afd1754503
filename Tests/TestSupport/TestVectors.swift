import Foundation

/// Locates `../shared/testvectors` beside the repository (they stay in shared/, never copied).
public enum TestVectors {
    public static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() } // Tests/TestSupport/TestVectors.swift
        return url.deletingLastPathComponent().appendingPathComponent("shared/testvectors")
    }()

    public static func json(_ relativePath: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(relativePath))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// The Wycheproof test groups of one file, each with its tests.
    public static func wycheproofGroups(_ name: String) throws -> [[String: Any]] {
        try json("wycheproof/\(name)")["testGroups"] as! [[String: Any]]
    }
}

extension Array where Element == UInt8 {
    public init(hex: String) {
        var bytes: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            bytes.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
        }
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
