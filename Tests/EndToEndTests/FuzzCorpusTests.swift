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

    /// One frame of an example of proto-spec.md section 17.
    struct ExampleFrame: CustomStringConvertible {
        var section: String
        var kind: String
        var bytes: [UInt8]
        var description: String { "17.\(section) \(kind)" }
    }

    /// Every request and response frame shown in proto-spec.md section 17: the continuous hex
    /// block that follows each "Request (...)" and "Response (...)" line.
    static func specExamples() throws -> [ExampleFrame] {
        let spec = try String(contentsOf: root.appendingPathComponent("proto-spec.md"), encoding: .utf8)
        guard let begin = spec.range(of: "<!-- examples:begin"), let end = spec.range(of: "<!-- examples:end") else {
            throw DaemonError("proto-spec.md has no examples:begin/end markers")
        }
        let lines = spec[begin.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var frames: [ExampleFrame] = []
        var section = ""
        var index = 0
        while index < lines.count {
            let line = lines[index]
            if let match = line.wholeMatch(of: /### 17\.(\d+) .*/) {
                section = String(match.1)
            } else if let match = line.wholeMatch(of: /(Request|Response) \(.*\):/) {
                // A blank line, the opening fence, hex lines, the closing fence.
                guard index + 2 < lines.count, lines[index + 2] == "```text" else {
                    throw DaemonError("17.\(section): no hex block after \"\(line)\"")
                }
                var hex = ""
                var cursor = index + 3
                while cursor < lines.count, lines[cursor] != "```" {
                    hex += lines[cursor]
                    cursor += 1
                }
                guard let bytes = [UInt8](hexString: hex) else { throw DaemonError("17.\(section): not hexadecimal: \(hex)") }
                frames.append(ExampleFrame(section: section, kind: match.1.lowercased(), bytes: bytes))
                index = cursor
            }
            index += 1
        }
        return frames
    }

    /// Every example frame of the spec is a seed of the frames target, byte for byte, so that
    /// the fuzzer starts from each operation and each error the spec shows.
    @Test func theFramesCorpusHoldsEveryExampleOfTheSpec() throws {
        let examples = try Self.specExamples()
        let sections = Set(examples.map(\.section))
        // 25 examples when this was written; each shows a request and its response.
        #expect(sections.count >= 25, "examples found: \(sections.sorted())")
        for section in sections {
            #expect(examples.filter { $0.section == section }.map(\.kind) == ["request", "response"], "17.\(section)")
        }
        let directory = Self.root.appendingPathComponent("fuzz/corpus/frames")
        let seeds = Set(try FileManager.default.contentsOfDirectory(atPath: directory.path).map {
            [UInt8](try Data(contentsOf: directory.appendingPathComponent($0)))
        })
        for example in examples {
            #expect(seeds.contains(example.bytes), "fuzz/corpus/frames lacks the \(example) frame of proto-spec.md (\(example.bytes.count) bytes): python3 tools/proto-examples.py --corpus fuzz/corpus/frames")
        }
    }
}
