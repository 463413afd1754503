/// Reads a compact JWT without checking its signature, for display only.
///
/// The same strictness applies as when verifying (size, segments, base64url, JSON); only the
/// signature and the claims' meaning go unchecked. Never base a decision on the result.
public enum JWTDecoder {
    public static func decodeUnverified(_ token: String, maximumSize: Int = JWTValidationPolicy().maximumTokenSize) throws(JWTError) -> (header: JSONObject, payload: JSONObject) {
        try token.withJWTBytes { bytes throws(JWTError) in
            guard bytes.count <= maximumSize else { throw JWTError(.tooLarge, "the token is \(bytes.count) bytes, more than the \(maximumSize) allowed") }
            let jws = try CompactJWS(splitting: bytes)
            let policy = JWTValidationPolicy()
            let header = try bytes.withDecodedSegment(jws.header, name: "header") { raw throws(JWTError) in
                try parse(raw, "header", maximumMembers: policy.maximumHeaderMembers)
            }
            let payload = try bytes.withDecodedSegment(jws.payload, name: "payload") { raw throws(JWTError) in
                try parse(raw, "payload", maximumMembers: policy.maximumClaimMembers)
            }
            _ = try bytes.withDecodedSegment(jws.signature, name: "signature") { _ throws(JWTError) in () }
            return (header, payload)
        }
    }

    static func parse(_ raw: UnsafeRawBufferPointer, _ name: String, maximumDepth: Int = 16, maximumMembers: Int) throws(JWTError) -> JSONObject {
        do {
            return try StrictJSONParser(maximumDepth: maximumDepth, maximumMembers: maximumMembers).parseObject(raw)
        } catch {
            throw JWTError(.malformed, "the \(name) is not a strict JSON object: \(error)")
        }
    }
}
