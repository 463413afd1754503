/// Size limits on request fields; a longer value is a `bad_request`.
public enum FieldLimits {
    public static let subject = 256
    public static let fingerprint = 1024
    public static let audience = 256
    public static let claims = 16 * 1024
    public static let idempotencyKey = 256
    public static let token = 8 * 1024
    public static let sessionID = 128
    public static let cursor = 256
    public static let clientName = 256
}
