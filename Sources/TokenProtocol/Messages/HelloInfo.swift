/// What the daemon says about itself in reply to `hello`: encoded by the daemon, decoded by
/// clients, here in one place.
public struct HelloInfo: Sendable, Hashable {
    /// The protocol version the daemon speaks.
    public var protocolVersion: UInt8
    /// The daemon's name and version.
    public var serverName: String
    /// The largest request frame the daemon accepts, in bytes (length prefix excluded).
    public var maxFrameSize: Int
    /// The settings a client needs to behave well (retry inside the dedup window, ask for TTLs
    /// the daemon accepts); nil from a daemon that predates them.
    public var settings: DaemonSettings?
    /// Whether the state store serves every operation now; nil from a daemon that predates it.
    public var storeHealthy: Bool?

    public init(protocolVersion: UInt8, serverName: String, maxFrameSize: Int, settings: DaemonSettings? = nil, storeHealthy: Bool? = nil) {
        self.protocolVersion = protocolVersion
        self.serverName = serverName
        self.maxFrameSize = maxFrameSize
        self.settings = settings
        self.storeHealthy = storeHealthy
    }

    /// Reads the fields of a `hello` reply: `protocol_version` (45), `server_name` (46),
    /// `max_frame_size` (47) and the settings (59 to 66).
    public init(fields: Fields) throws(ProtocolError) {
        guard let version = try fields.uint8(.protocolVersion) else { throw .badRequest("missing protocol_version") }
        protocolVersion = version
        serverName = try fields.requiredString(.serverName, "server_name")
        guard let size = try fields.uint64(.maxFrameSize) else { throw .badRequest("missing max_frame_size") }
        maxFrameSize = Int(clamping: size)
        settings = try DaemonSettings(fields: fields)
        storeHealthy = try fields.bool(.storeHealthy)
    }

    /// The reply's fields, in the order of proto-spec.md 12.1.
    public var fields: Fields {
        var fields = Fields()
        fields.append(.protocolVersion, uint8: protocolVersion)
        fields.append(.serverName, string: serverName)
        fields.append(.maxFrameSize, uint64: UInt64(maxFrameSize))
        settings?.append(to: &fields)
        if let storeHealthy { fields.append(.storeHealthy, bool: storeHealthy) }
        return fields
    }
}

/// The daemon's settings that shape what a client sees (proto-spec.md section 11). Durations
/// are in seconds, except the dedup window, which is kept to the millisecond.
public struct DaemonSettings: Sendable, Hashable {
    public var dedupWindowMilliseconds: UInt64
    /// Session mode's idle TTL; also the largest `ttl` a session-mode issue may ask.
    public var idleTTL: UInt64
    public var renewBelow: UInt64
    public var renewBy: UInt64
    /// Pair mode's access-token TTL; also the largest `ttl` a pair-mode issue may ask.
    public var accessTTL: UInt64
    /// Also the largest `refresh_ttl` an issue may ask.
    public var refreshTTL: UInt64
    /// Also the largest `max_lifetime` an issue may ask.
    public var maxLifetime: UInt64
    public var leeway: UInt64

    public init(dedupWindowMilliseconds: UInt64, idleTTL: UInt64, renewBelow: UInt64, renewBy: UInt64,
                accessTTL: UInt64, refreshTTL: UInt64, maxLifetime: UInt64, leeway: UInt64) {
        self.dedupWindowMilliseconds = dedupWindowMilliseconds
        self.idleTTL = idleTTL
        self.renewBelow = renewBelow
        self.renewBy = renewBy
        self.accessTTL = accessTTL
        self.refreshTTL = refreshTTL
        self.maxLifetime = maxLifetime
        self.leeway = leeway
    }

    private static let tags: [FieldTag] = [
        .dedupWindowMilliseconds, .idleTTL, .renewBelow, .renewBy, .accessTTL, .refreshTokenTTL, .maxLoginLifetime, .leeway,
    ]

    private var values: [UInt64] { [dedupWindowMilliseconds, idleTTL, renewBelow, renewBy, accessTTL, refreshTTL, maxLifetime, leeway] }

    /// nil when the reply carries none of them (an older daemon); a reply with some but not all
    /// is malformed.
    init?(fields: Fields) throws(ProtocolError) {
        var values: [UInt64] = []
        for tag in Self.tags {
            if let value = try fields.uint64(tag) { values.append(value) }
        }
        if values.isEmpty { return nil }
        guard values.count == Self.tags.count else { throw .badRequest("hello reply carries only some of the daemon's settings") }
        self.init(dedupWindowMilliseconds: values[0], idleTTL: values[1], renewBelow: values[2], renewBy: values[3],
                  accessTTL: values[4], refreshTTL: values[5], maxLifetime: values[6], leeway: values[7])
    }

    func append(to fields: inout Fields) {
        for (tag, value) in zip(Self.tags, values) { fields.append(tag, uint64: value) }
    }
}
