/// A request or response that breaks the protocol: the status to answer with and why.
public struct ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public let status: Status
    public let reason: String

    public init(_ status: Status, _ reason: String) {
        self.status = status
        self.reason = reason
    }

    public static func badRequest(_ reason: String) -> ProtocolError { ProtocolError(.badRequest, reason) }

    public var description: String { "\(status): \(reason)" }
}
