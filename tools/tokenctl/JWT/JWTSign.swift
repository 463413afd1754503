import ArgumentParser
import TokenJWT

struct JWTSign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign a claims object and print the compact JWT.",
        discussion: """
            Claims are taken as given: add "exp" (tokend's verifier requires it), "iat" and the rest \
            yourself. Example: tokenctl jwt sign --alg HS256 --key hs.key --claims '{"sub":"alice","exp":2000000000}'
            """
    )

    @Option(help: "Algorithm the key is pinned to.") var alg: JWSAlgorithm
    @Option(help: "Key file: a secret for HS*, a PEM private key otherwise.") var key: String
    @Option(parsing: .unconditional, help: "Key id for the header (default: the RFC 7638 thumbprint, or a digest for HS*).") var kid: String?
    @Option(help: "Header typ.") var typ: String = "JWT"
    @Option(help: "The claims, a JSON object.") var claims: String

    func run() async throws {
        let object: JSONObject
        let parsed: JWTClaims
        do {
            object = try StrictJSONParser().parseObject(Array(claims.utf8))
            parsed = try JWTClaims(object: object)
        } catch let error as StrictJSONParser.Error {
            throw UsageError("--claims is not a strict JSON object: \(error)")
        } catch let error as JWTError {
            throw UsageError("--claims: \(error.reason)")
        }
        let signingKey = try KeyFile.load(key, algorithm: alg, kid: kid)
        guard signingKey.canSign else { throw UsageError("\(key) holds a public key; signing needs the private key") }
        print(try JWTSigner.sign(parsed, with: signingKey, type: typ))
    }
}
