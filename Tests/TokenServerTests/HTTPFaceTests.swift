import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RedisClient
import Testing
@testable import TokenServer
import TokenCrypto
import TokenJWT
import TokenProtocol
import TokenRedisStore
import TokenStore

/// The HTTP face's routes (docs/http.md), driven in process through the service core with a
/// manual clock.
@Suite struct HTTPFaceTests {
    let fixture: ServiceFixture
    let face: HTTPFace

    init() throws {
        fixture = try ServiceFixture { $0.dedupWindowMilliseconds = 5_000 }
        var http = HTTPFaceConfiguration()
        http.listen = [.unix(path: "unused")]
        http.tokenCookie = "access"
        http.refreshCookie = "refresh"
        http.fingerprintHeaders = ["User-Agent", "X-Device-Id"]
        http.claimsHeader = true
        face = HTTPFace(service: fixture.service, configuration: http)
    }

    func get(_ path: String, _ headers: [(String, String)] = [], method: HTTPMethod = .GET, body: String? = nil,
             peer: HTTPFace.Peer = .loopback, face: HTTPFace? = nil) throws -> HTTPFace.Response {
        let request = HTTPFace.Request(method: method, uri: path, headers: HTTPHeaders(headers), body: body.map { ByteBuffer(string: $0) })
        let future = (face ?? self.face).respond(to: request, peer: peer, on: fixture.loop)
        fixture.loop.run()
        return try future.wait()
    }

    /// The fingerprint docs/http.md makes of `User-Agent: ua` and `X-Device-Id: d-42`.
    static let device: [(String, String)] = [("User-Agent", "ua"), ("X-Device-Id", "d-42")]
    static let deviceFingerprint = Array("ua\nd-42".utf8)

    @Test func sessionTokenFromBearerAnswers204WithTheVerifiedFields() throws {
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "alice smith", fingerprint: Self.deviceFingerprint, audience: "api"))
        #expect(HTTPFace.route(of: "/auth/api/orders") == .auth && HTTPFace.route(of: "/authx") == .other)
        let response = try get("/auth?from=nginx", [("Authorization", "bearer \(issued.sessionToken!)")] + Self.device)
        #expect(response.status == .noContent)
        #expect(response.headers.first(name: "X-Tokend-Status") == "ok")
        // Percent-encoded: a subject can never end a header line.
        #expect(response.headers.first(name: "X-Tokend-Subject") == "alice%20smith")
        #expect(response.headers.first(name: "X-Tokend-Session") == issued.sessionID)
        #expect(response.headers.first(name: "X-Tokend-Expires-At") == String(issued.expiresAt))
        let claims = try #require(response.headers.first(name: "X-Tokend-Claims").flatMap { Base64URL.decode($0) })
        #expect(String(decoding: claims, as: UTF8.self).contains(#""aud":"api""#))
        #expect(response.body.isEmpty)
    }

    @Test func tokenFromCookieWhenNoBearer() throws {
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "bob", fingerprint: Self.deviceFingerprint))
        let cookies = "theme=dark; access=\"\(issued.sessionToken!)\"; other=1"
        let response = try get("/auth", [("Cookie", cookies)] + Self.device, method: .POST)
        #expect(response.status == .noContent)
        #expect(response.headers.first(name: "X-Tokend-Subject") == "bob")
        // A cookie of another name is not the token.
        let missing = try get("/auth", [("Cookie", "accessx=\(issued.sessionToken!)")] + Self.device)
        #expect(missing.status == .unauthorized)
        #expect(missing.headers.first(name: "X-Tokend-Status") == "missing_token")
        #expect(missing.headers.first(name: "WWW-Authenticate") == #"Bearer realm="tokend""#)
    }

    @Test func fingerprintIsTheConfiguredHeadersJoinedWithLineFeeds() throws {
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "carol", fingerprint: Self.deviceFingerprint))
        let bearer = ("Authorization", "Bearer \(issued.sessionToken!)")
        // Whitespace around a value is not part of it.
        #expect(try get("/auth", [bearer, ("user-agent", "  ua "), ("X-Device-Id", "d-42")]).status == .noContent)
        for headers in [[("User-Agent", "ua")], [("User-Agent", "ua"), ("X-Device-Id", "d-43")], [("X-Device-Id", "d-42"), ("User-Agent", "ua2")]] {
            let response = try get("/auth", [bearer] + headers)
            #expect(response.status == .unauthorized)
            #expect(response.headers.first(name: "X-Tokend-Status") == "fingerprint_mismatch")
        }
        // A missing header is an empty value: "ua\n" differs from "ua\nd-42", and matches a token issued with it.
        let partial = try fixture.issue(IssueRequest(mode: .session, subject: "carol", fingerprint: Array("ua\n".utf8)))
        #expect(try get("/auth", [("Authorization", "Bearer \(partial.sessionToken!)"), ("User-Agent", "ua")]).status == .noContent)
    }

    @Test func refusalsAre401WithTheStatusAndNeverEchoTheToken() throws {
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "dave", fingerprint: Self.deviceFingerprint))
        let token = issued.sessionToken!
        var tampered = Array(token.utf8)
        tampered[tampered.count - 2] = tampered[tampered.count - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let cases: [(String, String)] = [("not.a.jwt", "malformed_token"), (String(decoding: tampered, as: UTF8.self), "bad_signature")]
        for (presented, status) in cases {
            let response = try get("/auth", [("Authorization", "Bearer \(presented)")] + Self.device)
            #expect(response.status == .unauthorized)
            #expect(response.headers.first(name: "X-Tokend-Status") == status)
            #expect(response.headers.first(name: "WWW-Authenticate") == #"Bearer realm="tokend", error="invalid_token", error_description="\#(status)""#)
            #expect(!response.headers.contains { $0.value.contains(presented) || $0.value.contains("d-42") })
        }
        #expect(try fixture.revoke(.token(token)) == .ok)
        let revoked = try get("/auth", [("Authorization", "Bearer \(token)")] + Self.device)
        #expect(revoked.headers.first(name: "X-Tokend-Status") == "revoked")
        #expect(!revoked.headers.contains { $0.value.contains(token) })
    }

    @Test func onlyLocalPeersMayAskAuth() throws {
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "erin", fingerprint: Self.deviceFingerprint))
        let response = try get("/auth", [("Authorization", "Bearer \(issued.sessionToken!)")] + Self.device, peer: .remote)
        #expect(response.status == .forbidden)
        #expect(response.headers.first(name: "X-Tokend-Status") == "forbidden")
        #expect(try get("/auth", [("Authorization", "Bearer \(issued.sessionToken!)")] + Self.device, peer: .unix(fixture.owner)).status == .noContent)
    }

    /// The article's scheme 2 at the proxy: an expired access token and the refresh cookie give
    /// a new pair, the same one to every repeat within the dedup window.
    @Test func expiredAccessTokenIsRefreshedFromTheCookie() throws {
        let issued = try fixture.issue(IssueRequest(mode: .pair, subject: "frank", fingerprint: Self.deviceFingerprint, ttl: 60))
        let cookies = ("Cookie", "access=\(issued.accessToken!); refresh=\(issued.refreshToken!)")
        let fresh = try get("/auth", [cookies] + Self.device)
        #expect(fresh.headers.first(name: "X-Tokend-Status") == "ok")
        #expect(fresh.headers.first(name: "X-Tokend-Access-Token") == nil)

        fixture.clock.advance(61)
        // Without the refresh cookie, the expiry is the answer.
        let expired = try get("/auth", [("Cookie", "access=\(issued.accessToken!)")] + Self.device)
        #expect(expired.status == .unauthorized)
        #expect(expired.headers.first(name: "X-Tokend-Status") == "expired")

        let refreshed = try get("/auth", [cookies] + Self.device)
        #expect(refreshed.status == .noContent)
        #expect(refreshed.headers.first(name: "X-Tokend-Status") == "refreshed")
        #expect(refreshed.headers.first(name: "X-Tokend-Subject") == "frank")
        let access = try #require(refreshed.headers.first(name: "X-Tokend-Access-Token"))
        let refresh = try #require(refreshed.headers.first(name: "X-Tokend-Refresh-Token"))
        #expect(access != issued.accessToken && refresh != issued.refreshToken)
        let refreshExpiresAt = try #require(refreshed.headers.first(name: "X-Tokend-Refresh-Expires-At").flatMap(Int64.init))
        let maxAge = refreshExpiresAt - fixture.clock.now()
        #expect(refreshed.headers.first(name: "X-Tokend-Set-Cookie-Access") == "access=\(access); Max-Age=\(maxAge); Path=/; HttpOnly; Secure; SameSite=Lax")
        #expect(refreshed.headers.first(name: "X-Tokend-Set-Cookie-Refresh") == "refresh=\(refresh); Max-Age=\(maxAge); Path=/; HttpOnly; Secure; SameSite=Lax")

        // A repeat within the dedup window gets the same pair (the article's section 4).
        fixture.clock.advance(1)
        let again = try get("/auth", [cookies] + Self.device)
        #expect(again.headers.first(name: "X-Tokend-Access-Token") == access)
        #expect(again.headers.first(name: "X-Tokend-Refresh-Token") == refresh)

        // The new access token verifies; the old pair, after the window, is reuse.
        #expect(try get("/auth", [("Cookie", "access=\(access); refresh=\(refresh)")] + Self.device).headers.first(name: "X-Tokend-Status") == "ok")
        fixture.clock.advance(10)
        #expect(try get("/auth", [cookies] + Self.device).headers.first(name: "X-Tokend-Status") == "reuse_detected")
        #expect(try get("/auth", [("Cookie", "access=\(access)")] + Self.device).headers.first(name: "X-Tokend-Status") == "revoked")
    }

    @Test func refreshCookieOfAnotherLoginIsRefusedAndNotSpent() throws {
        let first = try fixture.issue(IssueRequest(mode: .pair, subject: "gina", fingerprint: Self.deviceFingerprint, ttl: 60))
        let other = try fixture.issue(IssueRequest(mode: .pair, subject: "gina", fingerprint: Self.deviceFingerprint, ttl: 60))
        fixture.clock.advance(61)
        let response = try get("/auth", [("Cookie", "access=\(first.accessToken!); refresh=\(other.refreshToken!)")] + Self.device)
        #expect(response.status == .unauthorized)
        #expect(response.headers.first(name: "X-Tokend-Status") == "bad_request")
        // The other login's refresh token still refreshes its own pair.
        let own = try get("/auth", [("Cookie", "access=\(other.accessToken!); refresh=\(other.refreshToken!)")] + Self.device)
        #expect(own.headers.first(name: "X-Tokend-Status") == "refreshed")
    }

    @Test func introspectionFollowsRFC7662() throws {
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "hal", fingerprint: [], audience: "api"))
        let form = [("Content-Type", "application/x-www-form-urlencoded")]
        let body = "token=\(issued.sessionToken!)&token_type_hint=access_token"
        let active = try get("/introspect", form, method: .POST, body: body)
        #expect(active.status == .ok)
        #expect(active.headers.first(name: "Cache-Control") == "no-store")
        let object = try StrictJSONParser().parseObject(Array(active.body.utf8))
        #expect(object.members.map(\.name) == ["active", "sub", "sid", "exp", "iat", "iss", "aud", "token_type", "tokend_mode"])
        #expect(object["active"] == .bool(true) && object["sub"] == .string("hal") && object["sid"] == .string(issued.sessionID))
        #expect(object["exp"] == .number(String(issued.expiresAt)) && object["aud"] == .string("api") && object["tokend_mode"] == .string("session"))

        // A fingerprint-bound token needs the fingerprint, as a form field (percent-encoded).
        let bound = try fixture.issue(IssueRequest(mode: .session, subject: "hal", fingerprint: Self.deviceFingerprint))
        #expect(try get("/introspect", form, method: .POST, body: "token=\(bound.sessionToken!)").body == #"{"active":false}"#)
        #expect(try get("/introspect", form, method: .POST, body: "token=\(bound.sessionToken!)&fingerprint=ua%0Ad-42").body.hasPrefix(#"{"active":true"#))

        // Refresh tokens are never active here; neither is garbage, nor a revoked token.
        let pair = try fixture.issue(IssueRequest(mode: .pair, subject: "hal"))
        #expect(try get("/introspect", form, method: .POST, body: "token=\(pair.refreshToken!)").body == #"{"active":false}"#)
        #expect(try get("/introspect", form, method: .POST, body: "token=a.b.c").body == #"{"active":false}"#)
        #expect(try fixture.revoke(.session(issued.sessionID)) == .ok)
        #expect(try get("/introspect", form, method: .POST, body: body).body == #"{"active":false}"#)

        #expect(try get("/introspect", form, method: .POST, body: "token_type_hint=x").status == .badRequest)
        #expect(try get("/introspect", method: .GET).status == .methodNotAllowed)
        #expect(try get("/introspect", form, method: .POST, body: body, peer: .remote).status == .forbidden)
    }

    @Test func introspectionSecretIsRequiredWhenConfigured() throws {
        var http = face.configuration
        http.introspectSecret = .init(Array("0123456789abcdef-secret".utf8))
        let guarded = HTTPFace(service: fixture.service, configuration: http)
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "ivy"))
        let body = "token=\(issued.sessionToken!)"
        for headers in [[], [("Authorization", "Bearer 0123456789abcdef-secreT")]] {
            let refused = try get("/introspect", headers, method: .POST, body: body, face: guarded)
            #expect(refused.status == .unauthorized && refused.body == #"{"error":"invalid_client"}"#)
        }
        // With the secret, any peer (the secret stands in for the loopback check).
        let allowed = try get("/introspect", [("Authorization", "Bearer 0123456789abcdef-secret")], method: .POST, body: body, peer: .remote, face: guarded)
        #expect(allowed.body.hasPrefix(#"{"active":true"#))
    }

    @Test func jwksCarriesAnETagAndAMaxAgeBoundedByTheNextDatedKey() throws {
        let fixture = try ServiceFixture(algorithm: .es256)
        let face = HTTPFace(service: fixture.service, configuration: self.face.configuration)
        func fetch(_ headers: [(String, String)] = [], method: HTTPMethod = .GET) throws -> HTTPFace.Response {
            let future = face.respond(to: HTTPFace.Request(method: method, uri: "/.well-known/jwks.json", headers: HTTPHeaders(headers)), peer: .remote, on: fixture.loop)
            fixture.loop.run()
            return try future.wait()
        }
        let first = try fetch()
        #expect(first.status == .ok && first.headers.first(name: "Content-Type") == "application/json")
        #expect(first.headers.first(name: "Cache-Control") == "public, max-age=300")
        #expect(try StrictJSONParser().parseObject(Array(first.body.utf8))["keys"].map { if case .array(let keys) = $0 { keys.count } else { -1 } } == 1)
        let tag = try #require(first.headers.first(name: "ETag"))
        #expect(try fetch([("If-None-Match", tag)]).status == .notModified)
        #expect(try fetch([("If-None-Match", "\"other\", W/\(tag)")]).status == .notModified)
        #expect(try fetch([("If-None-Match", "\"other\"")]).status == .ok)

        // A key dated 120 s ahead: in the set at once, and no cache may outlive its start.
        _ = try fixture.keyDirectory.create(algorithm: .es256, now: fixture.clock.now() + 120)
        _ = try fixture.service.keys.reload(now: fixture.clock.now())
        let next = try fetch()
        #expect(next.headers.first(name: "Cache-Control") == "public, max-age=120")
        #expect(next.headers.first(name: "ETag") != tag)
        #expect(try fetch([("If-None-Match", tag)]).status == .ok)
        #expect(try fetch(method: .DELETE).status == .methodNotAllowed)
    }

    @Test func healthAndUnknownRoutes() throws {
        let health = try get("/healthz")
        #expect(health.status == .ok && health.body == "ok\n")
        #expect(try get("/metrics").status == .notFound)
        #expect(try get("/healthz", method: .POST).status == .methodNotAllowed)
    }

    /// A store that cannot be reached: `/auth` answers 503 with Retry-After (never 401, which
    /// a proxy would turn into a logout), `/introspect` 503, and `/healthz` 503.
    @Test func storeOutageIs503() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        // Nothing listens on port 1 of loopback.
        let settings = try RedisClient.Configuration(endpoint: RedisEndpoint(url: "redis://127.0.0.1:1"), timeout: .milliseconds(200))
        let store = RedisStore(configuration: settings, policy: RenewalPolicy(), clock: fixture.clock, logger: Logger(label: "test"))
        defer { store.close() }
        let service = TokenService(configuration: fixture.service.configuration, store: store, keys: fixture.service.keys,
                                   digester: fixture.service.digester, clock: fixture.clock, logger: Logger(label: "test"))
        let face = HTTPFace(service: service, configuration: self.face.configuration)
        // Signed by the same keys: the token is authentic, and only the store can say more.
        let issued = try fixture.issue(IssueRequest(mode: .session, subject: "jo", fingerprint: Self.deviceFingerprint))
        let loop = group.next()
        let auth = try await face.respond(to: HTTPFace.Request(method: .GET, uri: "/auth", headers: HTTPHeaders([("Authorization", "Bearer \(issued.sessionToken!)")] + Self.device)),
                                          peer: .loopback, on: loop).get()
        #expect(auth.status == .serviceUnavailable)
        #expect(auth.headers.first(name: "Retry-After") == "1")
        #expect(auth.headers.first(name: "X-Tokend-Status") == "store_unavailable")
        let introspect = try await face.respond(to: HTTPFace.Request(method: .POST, uri: "/introspect", headers: [:], body: ByteBuffer(string: "token=\(issued.sessionToken!)")),
                                                peer: .loopback, on: loop).get()
        #expect(introspect.status == .serviceUnavailable)
        let health = try await face.respond(to: HTTPFace.Request(method: .GET, uri: "/healthz", headers: [:]), peer: .loopback, on: loop).get()
        #expect(health.status == .serviceUnavailable)
    }

    @Test func readingHelpers() {
        #expect(HTTPFace.formFields("token=a%2Bb+c&token=second&x") == ["token": "a+b c", "x": ""])
        #expect(HTTPFace.formFields("token=%ZZ") == [:])
        #expect(HTTPFace.headerSafe("alice") == "alice")
        #expect(HTTPFace.headerSafe("a\r\nX-Evil: 1") == "a%0D%0AX-Evil:%201")
        #expect(HTTPFace.headerSafe("100%") == "100%25")
        #expect(HTTPFace.headerSafe("zoë") == "zo%C3%AB")
        #expect(HTTPFace.bearerToken(HTTPHeaders([("Authorization", "Basic abc")])) == nil)
        #expect(HTTPFace.bearerToken(HTTPHeaders([("Authorization", "Bearer ")])) == nil)
        #expect(HTTPFaceServer.isLoopback(host: "127.0.0.1") && HTTPFaceServer.isLoopback(host: "::1") && HTTPFaceServer.isLoopback(host: "::ffff:127.0.0.2"))
        #expect(!HTTPFaceServer.isLoopback(host: "10.0.0.1") && !HTTPFaceServer.isLoopback(host: "::ffff:10.0.0.1"))
    }
}
