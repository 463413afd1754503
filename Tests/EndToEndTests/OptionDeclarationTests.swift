import Foundation
import Testing
import TestSupport

/// Each tokend option is declared once (tools/tokend/Options.swift): the command line, `--help`
/// and README's table all come from that declaration.
@Suite struct OptionDeclarationTests {
    static let tokend = DaemonProcess.executable("tokend")
    static let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md")

    @Test func readmesTableIsTheDeclaredOne() throws {
        let generated = try runProcess(Self.tokend, ["--print-options-table"])
        #expect(generated.status == 0)
        let text = try String(contentsOf: Self.readme, encoding: .utf8)
        let begin = try #require(text.range(of: "<!-- options:begin"), "README has no options:begin marker")
        let tableStart = try #require(text[begin.upperBound...].range(of: "\n")).upperBound
        let end = try #require(text.range(of: "<!-- options:end -->"))
        #expect(String(text[tableStart..<end.lowerBound]) == generated.output,
                "README's option table differs from `tokend --print-options-table`: paste its output between the markers")
    }

    @Test func helpListsEveryOptionOfTheTable() throws {
        let help = try runProcess(Self.tokend, ["--help"]).output
        let table = try runProcess(Self.tokend, ["--print-options-table"]).output
        let names = table.split(separator: "\n").dropFirst(2).compactMap { row in
            row.split(separator: "`").dropFirst().first.map { $0.split(separator: " ")[0] }
        }
        #expect(names.count > 40)
        for name in names { #expect(help.contains("  \(name)"), "--help does not list \(name)") }
    }

    @Test(arguments: [
        (["--nope", "1"], "unknown option --nope"),
        (["--access-ttl"], "--access-ttl needs a value"),
        (["--repair=yes"], "--repair takes no value"),
        (["--leeway", "1s", "--leeway=2s"], "--leeway is given twice"),
        (["stray"], "unexpected argument \"stray\""),
    ])
    func aBadCommandLineIsNamedInTheError(arguments: [String], message: String) throws {
        let result = try runProcess(Self.tokend, arguments + ["--state-dir", "/nonexistent/never-created"])
        #expect(result.status != 0)
        #expect(result.error.contains(message), "stderr: \(result.error)")
    }
}
