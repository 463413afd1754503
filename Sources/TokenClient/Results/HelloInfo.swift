import TokenProtocol

/// What the daemon says about itself in reply to `hello`.
public struct HelloInfo: Sendable, Hashable {
    /// The protocol version the daemon speaks.
    public var protocolVersion: UInt8
    /// The daemon's name and version.
    public var serverName: String
    /// The largest request frame the daemon accepts, in bytes (length prefix excluded).
    public var maxFrameSize: Int

    public init(protocolVersion: UInt8, serverName: String, maxFrameSize: Int) {
        self.protocolVersion = protocolVersion
        self.serverName = serverName
        self.maxFrameSize = maxFrameSize
    }

    /// Reads the fields of a `hello` reply: `protocol_version` (45), `server_name` (46) and
    /// `max_frame_size` (47).
    public init(fields: Fields) throws(ProtocolError) {
        guard let version = try fields.uint8(.protocolVersion) else { throw .badRequest("missing protocol_version") }
        protocolVersion = version
        serverName = try fields.requiredString(.serverName, "server_name")
        guard let size = try fields.uint64(.maxFrameSize) else { throw .badRequest("missing max_frame_size") }
        maxFrameSize = Int(clamping: size)
    }
}
