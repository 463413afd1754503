internal import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

extension AsymmetricKey {
    /// The public key as a JWK (RFC 7518 §6.2 EC, §6.3 RSA; RFC 8037 OKP), without `kid`,
    /// `alg` or `use`, which the caller adds.
    public func publicJWK() throws -> JWK {
        switch kind {
        case .p256:
            let x = try bigNumberParam("qx", width: 32)
            let y = try bigNumberParam("qy", width: 32)
            return JWK(members: ["kty": "EC", "crv": "P-256", "x": Base64URL.encode(x), "y": Base64URL.encode(y)])
        case .rsa:
            let n = try bigNumberParam("n", width: nil)
            let e = try bigNumberParam("e", width: nil)
            return JWK(members: ["kty": "RSA", "n": Base64URL.encode(n), "e": Base64URL.encode(e)])
        case .ed25519:
            var raw = [UInt8](repeating: 0, count: 32)
            var length = raw.count
            guard EVP_PKEY_get_raw_public_key(pkey, &raw, &length) == 1, length == 32 else {
                throw CryptoError.openSSL("EVP_PKEY_get_raw_public_key")
            }
            return JWK(members: ["kty": "OKP", "crv": "Ed25519", "x": Base64URL.encode(raw)])
        }
    }

    /// The RFC 7638 thumbprint of the public key: tokend's default `kid`.
    public func thumbprint() throws -> String {
        guard let thumbprint = try publicJWK().thumbprint() else { throw CryptoError(.invalidKey, "no thumbprint for this key") }
        return thumbprint
    }

    /// Big-endian bytes of an integer key parameter, left-padded to `width` when given.
    private func bigNumberParam(_ name: String, width: Int?) throws -> [UInt8] {
        var number: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(pkey, name, &number) == 1, let number else {
            throw CryptoError.openSSL("EVP_PKEY_get_bn_param(\(name))")
        }
        defer { BN_free(number) }
        let natural = Int((BN_num_bits(number) + 7) / 8)
        var bytes = [UInt8](repeating: 0, count: width ?? natural)
        let written = BN_bn2binpad(number, &bytes, Int32(bytes.count))
        guard written == bytes.count else { throw CryptoError(.invalidKey, "key parameter \(name) is too wide") }
        return bytes
    }

    /// Loads a JWK, private (with `d`) or public. Meant for tests and interop; tokend's own
    /// keys live as PEM files.
    public convenience init(jwk: JWK) throws {
        func member(_ name: String) throws -> [UInt8] {
            guard let text = jwk[name], let bytes = Base64URL.decode(text) else {
                throw CryptoError(.invalidKey, "JWK member \"\(name)\" is missing or not base64url")
            }
            return bytes
        }
        let hasPrivate = jwk["d"] != nil
        switch (jwk.keyType, jwk["crv"]) {
        case ("OKP", "Ed25519"):
            let bytes = try member(hasPrivate ? "d" : "x")
            guard bytes.count == 32 else { throw CryptoError(.invalidKey, "an Ed25519 key is 32 bytes") }
            let pkey = hasPrivate
                ? EVP_PKEY_new_raw_private_key(tokend_pkey_id_ed25519(), nil, bytes, 32)
                : EVP_PKEY_new_raw_public_key(tokend_pkey_id_ed25519(), nil, bytes, 32)
            guard let pkey else { throw CryptoError.openSSL("EVP_PKEY_new_raw_key") }
            try self.init(taking: pkey, isPrivate: hasPrivate)
            if hasPrivate, let x = jwk["x"], try publicJWK()["x"] != x {
                throw CryptoError(.invalidKey, "the Ed25519 JWK's x does not match its d")
            }
        case ("EC", "P-256"):
            let x = try member("x"), y = try member("y")
            guard x.count == 32, y.count == 32 else { throw CryptoError(.invalidKey, "P-256 coordinates are 32 bytes") }
            var params: [Param] = [.utf8("group", "prime256v1"), .octets("pub", [0x04] + x + y)]
            if hasPrivate { params.append(.number("priv", try member("d"))) }
            try self.init(taking: Self.fromData("EC", params, private: hasPrivate), isPrivate: hasPrivate)
        case ("RSA", _):
            var params: [Param] = [.number("n", try member("n")), .number("e", try member("e"))]
            if hasPrivate {
                params.append(.number("d", try member("d")))
                let factors = ["p": "rsa-factor1", "q": "rsa-factor2", "dp": "rsa-exponent1", "dq": "rsa-exponent2", "qi": "rsa-coefficient1"]
                for name in ["p", "q", "dp", "dq", "qi"] where jwk[name] != nil {
                    params.append(.number(factors[name]!, try member(name)))
                }
            }
            try self.init(taking: Self.fromData("RSA", params, private: hasPrivate), isPrivate: hasPrivate)
        default:
            throw CryptoError(.invalidKey, "unsupported JWK (kty \(jwk.keyType ?? "missing"), crv \(jwk["crv"] ?? "none"))")
        }
    }

    private enum Param {
        case utf8(String, String)
        case octets(String, [UInt8])
        case number(String, [UInt8])
    }

    private static func fromData(_ type: String, _ params: [Param], private isPrivate: Bool) throws -> OpaquePointer {
        guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoError.openSSL("OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        var numbers: [OpaquePointer] = []
        defer { numbers.forEach { BN_free($0) } }
        // The builder keeps the name pointers (not copies) until OSSL_PARAM_BLD_to_param, so
        // the names must outlive every push.
        var names: [UnsafeMutablePointer<CChar>] = []
        defer { names.forEach { free($0) } }
        func name(_ key: String) -> UnsafeMutablePointer<CChar> {
            let copy = strdup(key)!
            names.append(copy)
            return copy
        }
        for param in params {
            let ok: Int32
            switch param {
            case .utf8(let key, let value):
                ok = OSSL_PARAM_BLD_push_utf8_string(builder, name(key), name(value), 0)
            case .octets(let key, let value):
                ok = OSSL_PARAM_BLD_push_octet_string(builder, name(key), value, value.count)
            case .number(let key, let value):
                guard let number = BN_bin2bn(value, Int32(value.count), nil) else { throw CryptoError.openSSL("BN_bin2bn") }
                numbers.append(number)
                ok = OSSL_PARAM_BLD_push_BN(builder, name(key), number)
            }
            guard ok == 1 else { throw CryptoError.openSSL("OSSL_PARAM_BLD_push") }
        }
        guard let built = OSSL_PARAM_BLD_to_param(builder) else { throw CryptoError.openSSL("OSSL_PARAM_BLD_to_param") }
        defer { OSSL_PARAM_free(built) }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, type, nil) else { throw CryptoError.openSSL("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(context) }
        var pkey: OpaquePointer? = nil
        let selection = isPrivate ? tokend_selection_keypair() : tokend_selection_public_key()
        guard EVP_PKEY_fromdata_init(context) == 1, EVP_PKEY_fromdata(context, &pkey, selection, built) == 1, let pkey else {
            throw CryptoError(.invalidKey, "OpenSSL refused the \(type) key: \(OpenSSLErrorQueue.drain())")
        }
        return pkey
    }
}
