internal import NIOCore
internal import Synchronization

/// How a client call ended, as the calling task sees it.
struct ClientCallOutcome: Sendable {
  var message: ReceivedMessage?
  var initialMetadata: Metadata
  var trailingMetadata: Metadata
}

/// Response metadata of a streaming call, shared between the event loop and the caller.
final class ResponseHead: Sendable {
  private struct State {
    var initial = Metadata()
    var trailing = Metadata()
  }
  private let state = Mutex(State())

  var initialMetadata: Metadata {
    get { self.state.withLock { $0.initial } }
    set { self.state.withLock { $0.initial = newValue } }
  }

  var trailingMetadata: Metadata {
    get { self.state.withLock { $0.trailing } }
    set { self.state.withLock { $0.trailing = newValue } }
  }
}

/// The event loop's state of one client stream.
final class ClientStream {
  var id: Int32 = -1
  let method: MethodDescriptor
  weak var connection: ClientConnectionHandler?

  // The request.
  var outbound = OutboundMessageBuffer()
  var requestsFinished = false
  var dataDeferred = false

  // The response.
  var httpStatus: Int?
  var responseCompressed = false
  var contentTypeValid = false
  var statusCode: StatusCode?
  var statusMessage = ""
  var initialMetadata = Metadata()
  var trailingMetadata = Metadata()
  var inTrailers = false
  var headerBytes = 0
  var deframer: MessageDeframer
  var singleResponse: ReceivedMessage?
  var responseCount = 0
  /// The streaming responses (nil for single-response kinds).
  var responses: InboundMessageQueue?
  let head: ResponseHead
  /// Completed once, when the call ends.
  let outcome: EventLoopPromise<ClientCallOutcome>
  var finished = false
  /// An error decided on this side (deadline, cancellation, bad response) before the close.
  var localError: RPCError?
  var deadlineTimer: Scheduled<Void>?

  init(
    method: MethodDescriptor,
    maxReceiveMessageSize: Int,
    outcome: EventLoopPromise<ClientCallOutcome>
  ) {
    self.method = method
    self.deframer = MessageDeframer(maxMessageSize: maxReceiveMessageSize)
    self.head = ResponseHead()
    self.outcome = outcome
  }

  /// The error request writers get once the call has ended.
  var endedError: RPCError {
    self.finalError ?? RPCError(.cancelled, "The call has ended")
  }
  private var finalError: RPCError?

  /// Ends the call once: delivers the outcome and fails or finishes every waiter.
  /// - Parameter unprocessed: the server never saw the call, so it is safe to retry anywhere.
  func complete(_ result: Result<ClientCallOutcome, RPCError>, unprocessed: Bool = false) {
    guard !self.finished else { return }
    self.finished = true
    self.finalError = result.failure
    self.deadlineTimer?.cancel()
    self.outbound.failWaitingWriters(self.endedError)
    switch result {
    case .success(let outcome):
      self.head.initialMetadata = outcome.initialMetadata
      self.head.trailingMetadata = outcome.trailingMetadata
      self.responses?.finish()
      self.outcome.succeed(outcome)
    case .failure(let error):
      self.head.initialMetadata = self.initialMetadata
      self.head.trailingMetadata = error.metadata
      self.responses?.finish(throwing: error)
      self.outcome.fail(unprocessed ? UnprocessedCallError(error: error) : error)
    }
    // The queue's consume callback holds this stream (it needs the stream's id): keeping the
    // queue here too would keep both alive for good, 1 KB and more per streaming call. The
    // caller still holds the queue for the responses it has not read yet.
    self.responses = nil
  }
}

extension Result {
  var failure: Failure? {
    if case .failure(let error) = self { return error }
    return nil
  }
}

/// A call failure the server never processed (refused stream, GOAWAY, connection gone before
/// the request was sent): retried transparently.
struct UnprocessedCallError: Error {
  var error: RPCError
}
