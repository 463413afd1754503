import NIOCore
import NIOSSL

/// TLS to Redis (`rediss://`): the server's certificate is checked against the CA file (or the
/// system's roots) and its name against the host in the URL (or `serverName`), and a client
/// certificate is presented when Redis asks for one (`tls-auth-clients`).
public struct RedisTLS: Sendable {
    /// PEM file of the CAs that may sign Redis's certificate; nil: the system's roots.
    public var caFile: String?
    /// PEM client certificate (chain) and its key, for a Redis that verifies its clients.
    public var certificateFile: String?
    public var keyFile: String?
    /// The name to verify the server's certificate against (and send as SNI), when it is not
    /// the host in the URL (a Redis reached by IP address, whose certificate names a host).
    public var serverName: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    /// The context every connection shares; throws naming the file that cannot be used.
    public func makeContext() throws(RedisEndpointError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        do {
            if let caFile { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        } catch {
            throw RedisEndpointError("--redis-tls-ca-file \(caFile ?? ""): not a PEM certificate file (\(error))")
        }
        switch (certificateFile, keyFile) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw RedisEndpointError("--redis-tls-cert-file and --redis-tls-key-file: cannot load the client certificate (\(error))")
            }
        default:
            throw RedisEndpointError("--redis-tls-cert-file and --redis-tls-key-file go together")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedisEndpointError("cannot set up TLS for Redis: \(error)")
        }
    }
}

/// A TLS context with the name to check, as connections need it.
struct RedisTLSContext: Sendable {
    let context: NIOSSLContext
    let serverName: String?

    /// The handler for a connection to `host`: the certificate is checked against `serverName`,
    /// else the host; an IP address is checked against the certificate's IP addresses (it cannot
    /// be sent as SNI).
    func handler(host: String) throws -> NIOSSLClientHandler {
        let name = serverName ?? host
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : name)
    }
}
