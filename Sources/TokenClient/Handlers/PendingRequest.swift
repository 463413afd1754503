import NIOCore
import TokenProtocol

/// A request on its way into the pipeline, with the promise its response completes.
///
/// ``ResponseRouter`` gives the request its id, so callers never pick ids themselves.
struct PendingRequest: Sendable {
    var request: Request
    var promise: EventLoopPromise<Response>
}
