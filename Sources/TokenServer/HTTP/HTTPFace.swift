import NIOCore
import NIOHTTP1
import TokenCrypto
import TokenJWT
import TokenProtocol
import TokenStore

/// The HTTP face's routes (docs/http.md): `/auth` for forward authentication, `/introspect`
/// (RFC 7662), the JWKS and `/healthz`. Knows no sockets: `HTTPFaceHandler` feeds it whole
/// requests, and it answers through the service's own operations, so that HTTP and the binary
/// socket can never disagree on a rule.
struct HTTPFace: Sendable {
    let service: TokenService
    let configuration: HTTPFaceConfiguration

    /// A whole request: its head, and its body when it has one.
    struct Request: Sendable {
        var method: HTTPMethod
        var path: Substring
        var headers: HTTPHeaders
        var body: ByteBuffer?

        init(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: ByteBuffer? = nil) {
            self.method = method
            self.path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            self.headers = headers
            self.body = body
        }
    }

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: String

        init(_ status: HTTPResponseStatus, headers: HTTPHeaders = HTTPHeaders(), body: String = "") {
            self.status = status
            self.headers = headers
            self.body = body
        }

        static func json(_ status: HTTPResponseStatus, _ object: JSONObject, headers: HTTPHeaders = HTTPHeaders()) -> Response {
            var headers = headers
            headers.replaceOrAdd(name: "Content-Type", value: "application/json")
            return Response(status, headers: headers, body: JSONValue.object(object).json)
        }

        static func text(_ status: HTTPResponseStatus, _ text: String, headers: HTTPHeaders = HTTPHeaders()) -> Response {
            var headers = headers
            headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
            return Response(status, headers: headers, body: text)
        }
    }

    /// Who is asking: a Unix socket's peer, or a TCP peer on loopback or elsewhere.
    enum Peer: Sendable {
        case unix(PeerCredentials)
        case loopback
        case remote

        /// Whether `/auth` and (without the secret) `/introspect` answer it.
        var isLocal: Bool {
            if case .remote = self { return false }
            return true
        }

        var credentials: PeerCredentials {
            if case .unix(let credentials) = self { return credentials }
            return .unknown
        }
    }

    /// The routes, as metric labels.
    enum Route: String, Sendable, CaseIterable {
        case auth, introspect, jwks, healthz, other
    }

    static func route(of path: Substring) -> Route {
        // `/auth/...` too: Envoy's ext_authz appends the request's own path to its prefix.
        if path == "/auth" || path.hasPrefix("/auth/") { return .auth }
        return switch path {
        case "/introspect": .introspect
        case "/.well-known/jwks.json": .jwks
        case "/healthz": .healthz
        default: .other
        }
    }

    /// The answer to `request`: at once when it needs no waiting (a forward-auth verify from
    /// memory, like the socket's), else once the store has answered.
    func answer(_ request: Request, peer: Peer, on eventLoop: any EventLoop) -> StoreAnswer<Response> {
        switch Self.route(of: request.path) {
        case .auth: auth(request, peer: peer, on: eventLoop)
        case .introspect: introspect(request, peer: peer, on: eventLoop)
        case .jwks: .ready(jwks(request))
        case .healthz: .pending(healthz(request, on: eventLoop))
        case .other: .ready(.text(.notFound, "not found; tokend answers /auth, /introspect, /.well-known/jwks.json and /healthz\n"))
        }
    }

    func respond(to request: Request, peer: Peer, on eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        answer(request, peer: peer, on: eventLoop).future(on: eventLoop)
    }

    // MARK: - /auth

    func auth(_ request: Request, peer: Peer, on eventLoop: any EventLoop) -> StoreAnswer<Response> {
        guard peer.isLocal else { return .ready(Self.authRefusal(.forbidden, .forbidden)) }
        guard let token = Self.bearerToken(request.headers) ?? configuration.tokenCookie.flatMap({ Self.cookie($0, in: request.headers) }) else {
            var headers = HTTPHeaders()
            headers.add(name: "WWW-Authenticate", value: #"Bearer realm="tokend""#)
            headers.add(name: "X-Tokend-Status", value: "missing_token")
            return .ready(Response(.unauthorized, headers: headers))
        }
        let refreshToken = configuration.refreshCookie.flatMap { Self.cookie($0, in: request.headers) }
        return service.verify(token: token, fingerprint: fingerprint(request.headers), refreshToken: refreshToken, on: eventLoop)
            .map(authResponse)
    }

    private func authResponse(_ outcome: Outcome) -> Response {
        var headers = HTTPHeaders()
        switch outcome {
        case .verified(let result):
            add(result, status: outcome.status, to: &headers)
            return Response(.noContent, headers: headers)
        case .refreshed(let refreshed):
            add(refreshed.verify, status: outcome.status, to: &headers)
            add(refreshed.pair, now: service.clock.now(), to: &headers)
            return Response(.noContent, headers: headers)
        case .refused(let refusal):
            switch refusal.status {
            case .storeUnavailable: return Self.authRefusal(.serviceUnavailable, refusal.status)
            case .internalError: return Self.authRefusal(.internalServerError, refusal.status)
            case .forbidden: return Self.authRefusal(.forbidden, refusal.status)
            default: return Self.authRefusal(.unauthorized, refusal.status)
            }
        default:
            return Self.authRefusal(.internalServerError, .internalError)
        }
    }

    private static func authRefusal(_ code: HTTPResponseStatus, _ status: Status) -> Response {
        var headers = HTTPHeaders()
        headers.add(name: "X-Tokend-Status", value: status.name)
        switch code {
        case .unauthorized:
            headers.add(name: "WWW-Authenticate", value: #"Bearer realm="tokend", error="invalid_token", error_description="\#(status.name)""#)
        case .serviceUnavailable:
            headers.add(name: "Retry-After", value: "1")
        default: break
        }
        return Response(code, headers: headers)
    }

    private func add(_ result: VerifyResult, status: Status, to headers: inout HTTPHeaders) {
        headers.add(name: "X-Tokend-Status", value: status.name)
        headers.add(name: "X-Tokend-Subject", value: Self.headerSafe(result.subject))
        headers.add(name: "X-Tokend-Session", value: Self.headerSafe(result.sessionID))
        headers.add(name: "X-Tokend-Expires-At", value: String(result.expiresAt))
        if configuration.claimsHeader {
            headers.add(name: "X-Tokend-Claims", value: Base64URL.encode(result.claimsJSON))
        }
    }

    /// The new pair of a verify-or-refresh, as headers and, with cookies configured, as
    /// complete `Set-Cookie` values. Both cookies live as long as the refresh token: an expired
    /// access token must still be sent for the next refresh to find its pair.
    private func add(_ pair: IssueResult, now: Int64, to headers: inout HTTPHeaders) {
        guard let access = pair.accessToken, let refresh = pair.refreshToken else { return }
        headers.add(name: "X-Tokend-Access-Token", value: access)
        headers.add(name: "X-Tokend-Refresh-Token", value: refresh)
        let refreshExpiresAt = pair.refreshExpiresAt ?? pair.maxExpiresAt
        headers.add(name: "X-Tokend-Refresh-Expires-At", value: String(refreshExpiresAt))
        let maxAge = max(0, Int64(clamping: refreshExpiresAt) - now)
        if let name = configuration.tokenCookie {
            headers.add(name: "X-Tokend-Set-Cookie-Access", value: cookieValue(name, access, maxAge: maxAge))
        }
        if let name = configuration.refreshCookie {
            headers.add(name: "X-Tokend-Set-Cookie-Refresh", value: cookieValue(name, refresh, maxAge: maxAge))
        }
    }

    private func cookieValue(_ name: String, _ value: String, maxAge: Int64) -> String {
        let attributes = configuration.cookieAttributes.trimmingWhitespace
        return "\(name)=\(value); Max-Age=\(maxAge)" + (attributes.isEmpty ? "" : "; " + attributes)
    }

    // MARK: - /introspect

    func introspect(_ request: Request, peer: Peer, on eventLoop: any EventLoop) -> StoreAnswer<Response> {
        let noStore: HTTPHeaders = ["Cache-Control": "no-store"]
        guard request.method == .POST else {
            return .ready(.text(.methodNotAllowed, "POST /introspect with token=...\n", headers: ["Allow": "POST"]))
        }
        if let secret = configuration.introspectSecret {
            guard let presented = Self.bearerToken(request.headers), Self.constantTimeEqual(Array(presented.utf8), secret.bytes) else {
                var headers = noStore
                headers.add(name: "WWW-Authenticate", value: #"Bearer realm="tokend-introspect""#)
                return .ready(.json(.unauthorized, Self.error("invalid_client"), headers: headers))
            }
        } else if !peer.isLocal {
            return .ready(.json(.forbidden, Self.error("access_denied"), headers: noStore))
        }
        let form = request.body.map { Self.formFields(String(buffer: $0)) } ?? [:]
        guard let token = form["token"], !token.isEmpty else {
            return .ready(.json(.badRequest, Self.error("invalid_request"), headers: noStore))
        }
        return service.verify(token: token, fingerprint: Array((form["fingerprint"] ?? "").utf8), refreshToken: nil, on: eventLoop).map { outcome in
            switch (outcome, outcome.status) {
            case (.verified(let result), _):
                return .json(.ok, Self.introspection(result), headers: noStore)
            case (_, .storeUnavailable):
                var headers = noStore
                headers.add(name: "Retry-After", value: "1")
                return .json(.serviceUnavailable, Self.error("temporarily_unavailable"), headers: headers)
            case (_, .internalError):
                return .json(.internalServerError, Self.error("server_error"), headers: noStore)
            default:
                return .json(.ok, JSONObject(members: [.init(name: "active", value: .bool(false))]), headers: noStore)
            }
        }
    }

    /// RFC 7662's members, from the verify's result and the token's own claims.
    static func introspection(_ result: VerifyResult) -> JSONObject {
        let claims = try? StrictJSONParser().parseObject(Array(result.claimsJSON.utf8))
        var members: [JSONObject.Member] = [
            .init(name: "active", value: .bool(true)),
            .init(name: "sub", value: .string(result.subject)),
            .init(name: "sid", value: .string(result.sessionID)),
            .init(name: "exp", value: .number(String(result.expiresAt))),
        ]
        for name in ["iat", "iss", "aud"] {
            if let value = claims?[name] { members.append(.init(name: name, value: value)) }
        }
        members.append(.init(name: "token_type", value: .string("Bearer")))
        members.append(.init(name: "tokend_mode", value: .string(result.mode == .session ? "session" : "pair")))
        return JSONObject(members: members)
    }

    private static func error(_ code: String) -> JSONObject {
        JSONObject(members: [.init(name: "error", value: .string(code))])
    }

    // MARK: - JWKS and health

    /// The longest a JWKS may be cached when no dated key is due sooner.
    static let jwksMaximumAge: Int64 = 300

    func jwks(_ request: Request) -> Response {
        guard request.method == .GET || request.method == .HEAD else {
            return .text(.methodNotAllowed, "GET /.well-known/jwks.json\n", headers: ["Allow": "GET, HEAD"])
        }
        let body: String
        do {
            body = try service.keys.jwks()
        } catch {
            service.logger.error("JWKS export failed", metadata: ["error": "\(error)"])
            return .text(.internalServerError, "the public keys could not be exported\n")
        }
        let now = service.clock.now()
        // A key dated in the future is in this set already; a cache must not outlive the moment
        // it starts signing, so that a key added for the next rollout is fetched before then.
        let nextStart = service.keys.entries.map(\.createdAt).filter { $0 > now }.min()
        let maxAge = min(Self.jwksMaximumAge, nextStart.map { $0 - now } ?? Self.jwksMaximumAge)
        let tag = "\"" + String(Base64URL.encode(HashFunction.sha256.hash(Array(body.utf8))).prefix(22)) + "\""
        var headers: HTTPHeaders = ["Cache-Control": "public, max-age=\(maxAge)", "ETag": tag]
        if Self.matches(ifNoneMatch: request.headers, tag: tag) {
            return Response(.notModified, headers: headers)
        }
        headers.add(name: "Content-Type", value: "application/json")
        return Response(.ok, headers: headers, body: body)
    }

    func healthz(_ request: Request, on eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        guard request.method == .GET || request.method == .HEAD else {
            return eventLoop.makeSucceededFuture(.text(.methodNotAllowed, "GET /healthz\n", headers: ["Allow": "GET, HEAD"]))
        }
        let unavailable = Response.text(.serviceUnavailable, "store unavailable\n", headers: ["Cache-Control": "no-store", "Retry-After": "1"])
        return service.store.health(on: eventLoop).map { healthy in
            healthy ? .text(.ok, "ok\n", headers: ["Cache-Control": "no-store"]) : unavailable
        }.recover { _ in unavailable }
    }

    // MARK: - Reading requests

    /// The token of `Authorization: Bearer <token>` (the scheme in any case, RFC 6750 2.1).
    static func bearerToken(_ headers: HTTPHeaders) -> String? {
        guard let value = headers.first(name: "Authorization")?.trimmingWhitespace else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingWhitespace
        return token.isEmpty ? nil : token
    }

    /// The first cookie called `name` (compared exactly) in the request's `Cookie` headers.
    static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        for header in headers["Cookie"] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, parts[0].trimmingWhitespace == name else { continue }
                var value = parts[1].trimmingWhitespace
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                return value.isEmpty ? nil : value
            }
        }
        return nil
    }

    /// docs/http.md, "The fingerprint": each configured header's value (lines of one header
    /// joined with ", ", trimmed; missing: empty), joined with line feeds.
    func fingerprint(_ headers: HTTPHeaders) -> [UInt8] {
        guard !configuration.fingerprintHeaders.isEmpty else { return [] }
        let values = configuration.fingerprintHeaders.map { name in
            headers[name].map(\.trimmingWhitespace).joined(separator: ", ").trimmingWhitespace
        }
        return Array(values.joined(separator: "\n").utf8)
    }

    /// `application/x-www-form-urlencoded`: the first value of each name.
    static func formFields(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = percentDecoded(parts[0]) else { continue }
            let value = parts.count == 2 ? percentDecoded(parts[1]) : ""
            if fields[name] == nil, let value { fields[name] = value }
        }
        return fields
    }

    /// `+` as space and `%XX` as a byte; nil when the bytes are not UTF-8 or an escape is broken.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A value made safe for a header: every byte outside visible ASCII, and `%` itself,
    /// percent-encoded (so `alice` stays `alice`, and no subject can end a header line).
    static func headerSafe(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x21 || $0 > 0x7E || $0 == UInt8(ascii: "%") }) else { return text }
        var out = ""
        for byte in text.utf8 {
            if byte < 0x21 || byte > 0x7E || byte == UInt8(ascii: "%") {
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// `If-None-Match` holding `tag` (weakly compared, RFC 9110 13.1.2) or `*`.
    static func matches(ifNoneMatch headers: HTTPHeaders, tag: String) -> Bool {
        for header in headers["If-None-Match"] {
            for candidate in header.split(separator: ",") {
                var candidate = candidate.trimmingWhitespace
                if candidate == "*" { return true }
                if candidate.hasPrefix("W/") { candidate.removeFirst(2) }
                if candidate == tag { return true }
            }
        }
        return false
    }

    /// Equality of two secrets whose time tells neither where they differ nor how long the
    /// expected one is: their SHA-256 digests (the first 128 bits) are compared.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        Digest128(prefixOf: HashFunction.sha256.hash(a)).constantTimeEquals(Digest128(prefixOf: HashFunction.sha256.hash(b)))
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
