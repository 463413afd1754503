/// One page of a `sessions` listing.
public struct SessionPage: Sendable, Hashable {
    /// The sessions and refresh families on this page (`session` records, tag 48).
    public var sessions: [SessionInfo]
    /// Pass as `SessionsRequest.cursor` for the next page; nil on the last page (tag 49,
    /// absent or empty).
    public var nextCursor: String?

    public init(sessions: [SessionInfo], nextCursor: String?) {
        self.sessions = sessions
        self.nextCursor = nextCursor
    }

    public init(fields: Fields) throws(ProtocolError) {
        var sessions: [SessionInfo] = []
        for record in try fields.records(.sessionRecord) {
            sessions.append(try SessionInfo(fields: record))
        }
        self.sessions = sessions
        let cursor = try fields.string(.nextCursor)
        nextCursor = cursor?.isEmpty == false ? cursor : nil
    }

    public var fields: Fields {
        var fields = Fields()
        for info in sessions { fields.append(.sessionRecord, record: info.fields) }
        if let nextCursor { fields.append(.nextCursor, string: nextCursor) }
        return fields
    }
}
