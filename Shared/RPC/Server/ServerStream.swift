internal import NIOCore

/// The event loop's state of one server stream: the request head as it is parsed, the messages
/// received, and the response waiting for nghttp2 to send it.
final class ServerStream {
  let id: Int32
  let connection: ServerConnectionHandler

  // The request head, filled by nghttp2's header callback.
  /// The method `:path` names, routed as the header arrives (no String is made for it).
  var routedMethod: ServerMethod?
  /// A `:path` that names no method, kept for the error message.
  var unroutedPath: String?
  var isPost = false
  var contentType: ContentTypeCheck = .missing
  var hasTETrailers = false
  var timeoutHeader: String?
  var encodingHeader: String?
  var acceptsGzip = false
  var metadata = ReceivedHeaders()
  var headerBytes = 0
  var headersTooLarge = false

  enum ContentTypeCheck {
    case missing
    case grpc
    case unsupported
  }

  // The call, once routed.
  var method: ServerMethod?
  var codec: MessageCodec?
  var deframer: MessageDeframer
  var request: ReceivedMessage?
  var requestCount = 0
  var requests: InboundMessageQueue?
  var requestEnded = false
  var task: Task<Void, Never>?
  var deadlineTimer: Scheduled<Void>?
  var context: ServerContext?

  // The response.
  var headersSent = false
  /// Set once the status is decided; nothing more is written after it.
  var finished = false
  var outbound = OutboundMessageBuffer()
  /// The trailers, once the call has finished and they wait for the buffered messages.
  var trailers: Trailers?

  enum Trailers {
    /// `grpc-status: 0` alone.
    case ok
    case custom(HeaderList)
  }
  /// Whether nghttp2 holds the data provider deferred until more is queued.
  var dataDeferred = false

  init(id: Int32, connection: ServerConnectionHandler, maxMessageSize: Int) {
    self.id = id
    self.connection = connection
    self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
  }
}
