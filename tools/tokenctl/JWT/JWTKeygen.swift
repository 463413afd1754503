import ArgumentParser
import TokenJWT

struct JWTKeygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Generate a key: a random secret for HS*, a PEM private key otherwise.",
        discussion: "The file is created with mode 0600 and is never overwritten."
    )

    @Option(help: "Algorithm: \(JWSAlgorithm.allValueStrings.joined(separator: ", ")).")
    var alg: JWSAlgorithm

    @Option(help: "Where to write the key (must not exist).")
    var out: String

    func run() async throws {
        try KeyFile.writePrivate(try KeyFile.generate(alg), to: out)
        let key = try KeyFile.load(out, algorithm: alg, kid: nil)
        print("wrote \(alg.name) key to \(out) (kid \(key.kid))")
    }
}
