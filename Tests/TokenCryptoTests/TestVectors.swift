import Foundation

/// Locates `../shared/testvectors` beside the repository (they stay in shared/, never copied).
enum TestVectors {
    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() } // Tests/TokenCryptoTests/TestVectors.swift
        return url.deletingLastPathComponent().appendingPathComponent("shared/testvectors")
    }()

    static func json(_ relativePath: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(relativePath))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// The Wycheproof test groups of one file, each with its tests.
    static func wycheproofGroups(_ name: String) throws -> [[String: Any]] {
        try json("wycheproof/\(name)")["testGroups"] as! [[String: Any]]
    }
}

extension Array where Element == UInt8 {
    init(hex: String) {
        var bytes: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            bytes.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
        }
        self = bytes
    }
}
