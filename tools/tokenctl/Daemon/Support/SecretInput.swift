import ArgumentParser
import Foundation

/// Where a secret (a token, a fingerprint) comes from: the command line, standard input (`-`) or
/// a file. The command line is visible to every local user in `ps` and `/proc/PID/cmdline`;
/// standard input and files are not.
enum SecretInput {
    /// The bytes of `value` (`-`: standard input) or of `file`, one trailing newline removed.
    static func bytes(value: String?, file: String?) throws -> [UInt8]? {
        if let file {
            // A FileHandle rather than FileManager.contents, which cannot read a pipe (`<(...)`).
            guard let handle = FileHandle(forReadingAtPath: file) else {
                throw UsageError("cannot read \(file): \(String(cString: strerror(errno)))")
            }
            defer { try? handle.close() }
            return trimmingNewline(Array(handle.readDataToEndOfFile()))
        }
        guard let value else { return nil }
        guard value == "-" else { return Array(value.utf8) }
        return trimmingNewline(Array(FileHandle.standardInput.readDataToEndOfFile()))
    }

    /// The text of `value` (`-`: standard input) or of `file`; it must be UTF-8.
    static func text(value: String?, file: String?, name: String) throws -> String? {
        guard let bytes = try bytes(value: value, file: file) else { return nil }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw UsageError("the \(name) is not UTF-8 text") }
        return text
    }

    /// Refuses two secrets read from standard input, and a value given twice.
    static func check(_ sources: [(name: String, value: String?, file: String?)]) throws {
        for source in sources where source.value != nil && source.file != nil {
            throw ValidationError("give the \(source.name) or its file, not both")
        }
        if sources.filter({ $0.value == "-" }).count > 1 {
            throw ValidationError("only one value can be read from standard input ('-'); put the others in files")
        }
    }

    private static func trimmingNewline(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        return bytes
    }
}

/// `--fingerprint F`, `--fingerprint -` or `--fingerprint-file FILE`.
struct FingerprintOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The fingerprint of the client (sent as its UTF-8 bytes); '-' reads it from standard input.",
        valueName: "fingerprint"
    ))
    var fingerprint: String?

    @Option(help: ArgumentHelp("Read the fingerprint from this file (its bytes, one trailing newline removed).", valueName: "file"))
    var fingerprintFile: String?

    var source: (name: String, value: String?, file: String?) { ("fingerprint", fingerprint, fingerprintFile) }

    /// The fingerprint's bytes; empty when none was given.
    func bytes() throws -> [UInt8] { try SecretInput.bytes(value: fingerprint, file: fingerprintFile) ?? [] }
}

/// A token given as the argument, as `-` (standard input) or with `--token-file`.
struct TokenArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The token; '-' reads it from standard input.", valueName: "token"))
    var token: String?

    @Option(help: ArgumentHelp("Read the token from this file (one trailing newline removed).", valueName: "file"))
    var tokenFile: String?

    var source: (name: String, value: String?, file: String?) { ("token", token, tokenFile) }

    func validate() throws {
        guard token != nil || tokenFile != nil else { throw ValidationError("give the token, '-' to read it from standard input, or --token-file") }
    }

    func text() throws -> String {
        guard let text = try SecretInput.text(value: token, file: tokenFile, name: "token") else {
            throw ValidationError("give the token, '-' to read it from standard input, or --token-file")
        }
        return text
    }
}
