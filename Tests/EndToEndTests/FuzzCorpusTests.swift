import Foundation
import Testing
import TestSupport

/// The fuzz targets' seed corpora and every crash reproducer ever found, replayed through the
/// same code the fuzzers drive (tools/fuzz builds it with libFuzzer; this build replays).
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test(arguments: ["frames", "jwt", "state", "resp"])
    func corpusAndRegressionsReplayWithoutACrash(_ target: String) throws {
        let corpus = Self.root.appendingPathComponent("fuzz/corpus/\(target)").path
        let regressions = Self.root.appendingPathComponent("fuzz/regressions/\(target)").path
        let result = try runProcess(DaemonProcess.executable("tokend-fuzz"), [target, corpus, regressions])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("replayed"), "\(result.error)")
        let count = Int(result.error.split(separator: " ").dropFirst().first ?? "0") ?? 0
        #expect(count >= 2, "the corpus was found and replayed: \(result.error)")
    }
}
