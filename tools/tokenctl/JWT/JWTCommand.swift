import ArgumentParser
import TokenJWT

/// `tokenctl jwt ...`: offline JWT tools, in the manner of `step crypto jwt`.
struct JWTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwt",
        abstract: "Make keys, sign, verify and inspect JWTs offline (no daemon needed).",
        subcommands: [JWTKeygen.self, JWTSign.self, JWTVerify.self, JWTDecode.self, JWTPublicJWK.self]
    )
}

extension JWSAlgorithm: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.name) }
}
