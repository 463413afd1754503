import ArgumentParser
import Foundation
import TokenCrypto
import TokenJWT

struct JWTVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a JWT; print its header and claims as JSON (exit 0) or why it was refused (exit 1)."
    )

    @Option(help: "Algorithm the key is pinned to; the token's header must agree.") var alg: JWSAlgorithm
    @Option(help: "Key file: the secret for HS*, a PEM public or private key otherwise.") var key: String
    @Option(parsing: .unconditional, help: "The key's id (default: as jwt sign chooses it).") var kid: String?
    @Option(help: "Verify as of this Unix time instead of now.") var now: Int64?
    @Option(help: "Require this issuer.") var iss: String?
    @Option(help: "Require this audience.") var aud: String?
    @Option(help: "Require this header typ.") var typ: String?
    @Option(help: "Seconds of clock skew tolerated.") var leeway: Int64 = 0
    @OptionGroup var token: TokenArgument

    func run() async throws {
        let token = try token.text()
        let verifier = JWTVerifier(
            keyRing: JWTKeyRing(keys: [try KeyFile.load(key, algorithm: alg, kid: kid)]),
            policy: JWTValidationPolicy(leeway: leeway, issuer: iss, audience: aud, type: typ)
        )
        let time = now ?? Int64(Date().timeIntervalSince1970)
        do {
            let verified = try verifier.verify(token, now: time)
            print(#"{"header":\#(JSONValue.object(verified.header.object).json),"claims":\#(verified.claims.json)}"#)
        } catch {
            print("refused: \(error.code): \(error.reason)")
            throw CommandFailure.refused
        }
    }
}

struct JWTDecode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print a JWT's header and claims WITHOUT verifying it.",
        discussion: "The output carries \"verified\": false. Never trust what it shows."
    )

    @OptionGroup var token: TokenArgument

    func run() async throws {
        let token = try token.text()
        do {
            let (header, payload) = try JWTDecoder.decodeUnverified(token)
            print(#"{"verified":false,"header":\#(JSONValue.object(header).json),"claims":\#(JSONValue.object(payload).json)}"#)
            printError("warning: decoded without verifying the signature (unverified)")
        } catch {
            print("refused: \(error.code): \(error.reason)")
            throw CommandFailure.refused
        }
    }
}

struct JWTPublicJWK: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwk",
        abstract: "Print the public JWK of a PEM key (with kid, and alg when given)."
    )

    @Option(help: "A PEM private or public key.") var key: String
    @Option(help: "Algorithm to state in the JWK (ES256, Ed25519, EdDSA or RS256).") var alg: JWSAlgorithm?
    @Option(parsing: .unconditional, help: "Key id (default: the RFC 7638 thumbprint).") var kid: String?

    func run() async throws {
        let bytes = try KeyFile.read(key)
        let asymmetric: AsymmetricKey
        do {
            asymmetric = try AsymmetricKey(pem: String(decoding: bytes, as: UTF8.self))
        } catch let error as CryptoError {
            throw UsageError("\(key): \(error.reason) (HMAC secrets have no public JWK)")
        }
        var jwk = try asymmetric.publicJWK()
        jwk["kid"] = try kid ?? asymmetric.thumbprint()
        if let alg {
            guard alg.accepts(asymmetric.kind) else { throw UsageError("a \(asymmetric.kind) key cannot be used for \(alg.name)") }
            jwk["alg"] = alg.name
            jwk["use"] = "sig"
        }
        print(jwk.json)
    }
}
