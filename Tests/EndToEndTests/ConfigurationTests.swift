import Foundation
import Testing
import TestSupport
import TokenClient
import TokenProtocol

/// Where tokend's settings come from: flag, then environment (`TOKEND_*`), then config file
/// (`--config` or `TOKEND_CONFIG`), then the default; and how a bad config file is refused.
/// The daemon reports the settings clients see in its `hello` reply, which is what is read here.
@Suite struct ConfigurationTests {
    /// A file in a fresh directory, removed with it.
    final class ConfigFile {
        let directory = DaemonProcess.temporaryStateDirectory()
        let path: String

        init(_ text: String, name: String = "tokend.conf") throws {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            path = directory.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    static func settings(_ daemon: DaemonProcess) async throws -> DaemonSettings {
        let client = try await daemon.client()
        let hello = try await client.hello(clientName: "configuration-tests")
        await client.close()
        return try #require(hello.settings, "hello carried no settings")
    }

    @Test func aFlagBeatsTheEnvironmentWhichBeatsTheConfigFileWhichBeatsTheDefault() async throws {
        let config = try ConfigFile("""
            # every level of the precedence, one setting each
            access-ttl = 100s
            refresh-ttl = 200s

            leeway = 3s   # a comment after a value
            dedup-window = 4s
            """)
        let daemon = try DaemonProcess(["--config", config.path, "--access-ttl", "120s"],
                                       environment: ["TOKEND_ACCESS_TTL": "110s", "TOKEND_REFRESH_TTL": "210s"])
        let settings = try await Self.settings(daemon)
        #expect(settings.accessTTL == 120, "flag over environment and file")
        #expect(settings.refreshTTL == 210, "environment over file")
        #expect(settings.leeway == 3, "file over default")
        #expect(settings.dedupWindowMilliseconds == 4000, "file over default")
        #expect(settings.maxLifetime == 43200, "the default, named nowhere")
        #expect(settings.idleTTL == 7200, "the default, named nowhere")
    }

    @Test func theConfigFileCanBeNamedByTheEnvironmentAndTheFlagWins() async throws {
        let named = try ConfigFile("leeway = 5s\nmax-lifetime = 2h\n")
        let viaEnvironment = try DaemonProcess(environment: ["TOKEND_CONFIG": named.path])
        let settings = try await Self.settings(viaEnvironment)
        #expect(settings.leeway == 5 && settings.maxLifetime == 7200, "TOKEND_CONFIG names the file")
        viaEnvironment.stop()

        let other = try ConfigFile("leeway = 7s\n")
        let both = try DaemonProcess(["--config", other.path], environment: ["TOKEND_CONFIG": named.path])
        let chosen = try await Self.settings(both)
        #expect(chosen.leeway == 7 && chosen.maxLifetime == 43200, "--config over TOKEND_CONFIG: only its file is read")
    }

    /// A bad line stops the start and names the file and line; a bad value from the
    /// environment or a flag names the variable or the flag.
    @Test func configFileErrorsNameTheFileAndLine() throws {
        let directory = DaemonProcess.temporaryStateDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [(text: String, line: Int, named: String)] = [
            ("access-ttl = 15m\n# fine so far\nno-such-option = 1\n", 3, "no-such-option"),
            ("access-ttl = 15m\nrefresh-ttl = soon\n", 2, "soon"),
            ("\nleeway 5s\n", 2, "leeway 5s"),
            ("fsync = sometimes\n", 1, "sometimes"),
            ("log-level = chatty\n", 1, "chatty"),
            ("issue-uids = root\n", 1, "root"),
        ]
        for (text, line, named) in cases {
            let config = try ConfigFile(text)
            let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: ["--config", config.path]),
                                       "tokend started with \(text.debugDescription)")
            #expect(failure.status != 0)
            #expect(failure.output.contains("\(config.path):\(line)") && failure.output.contains(named),
                    "\(text.debugDescription): \(failure.output)")
        }
        let missing = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: ["--config", "/nonexistent/tokend.conf"]))
        #expect(missing.status != 0 && missing.output.contains("cannot read config file /nonexistent/tokend.conf"), "\(missing.output)")

        // The same bad value from the environment and from a flag: each names its source.
        let fromEnvironment = try #require(try DaemonProcess.startFailure(stateDirectory: directory, environment: ["TOKEND_ACCESS_TTL": "soon"]))
        #expect(fromEnvironment.status != 0 && fromEnvironment.output.contains("TOKEND_ACCESS_TTL"), "\(fromEnvironment.output)")
        let fromFlag = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: ["--access-ttl", "soon"]))
        #expect(fromFlag.status != 0 && fromFlag.output.contains("--access-ttl"), "\(fromFlag.output)")
        // Windows to the millisecond, no longer than a login lives.
        for (name, value) in [("--dedup-window", "2h"), ("--rotation-grace", "106751991167d"), ("--rotation-grace", "1.5s")] {
            let failure = try #require(try DaemonProcess.startFailure(stateDirectory: directory, arguments: ["--max-lifetime", "1h", name, value]),
                                       "\(name) \(value) was taken")
            #expect(failure.status != 0 && failure.output.contains(name), "\(failure.output)")
        }
        // A good flag over a bad file value: the flag's is the one used.
        let config = try ConfigFile("access-ttl = soon\n")
        #expect(try DaemonProcess.startFailure(stateDirectory: directory, arguments: ["--config", config.path, "--access-ttl", "60s"]) == nil,
                "a flag replaces the file's value before it is read")
    }
}
