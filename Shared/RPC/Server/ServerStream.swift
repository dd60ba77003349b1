internal import NIOCore

/// The event loop's state of one server stream: the request head as it is parsed, the messages
/// received, and the response waiting for nghttp2 to send it.
final class ServerStream {
  let id: Int32
  let connection: ServerConnectionHandler

  // The request head, filled by nghttp2's header callback.
  var path: String?
  var isPost = false
  var contentType: ContentTypeCheck = .missing
  var hasTETrailers = false
  var timeoutHeader: String?
  var encodingHeader: String?
  var acceptsGzip = false
  var metadata = Metadata()
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
  var outbound = CircularBuffer<ByteBuffer>()
  var outboundBytes = 0
  var waitingWriters = CircularBuffer<CheckedContinuation<Void, any Error>>()
  /// The trailers, once the call has finished and they wait for the buffered messages.
  var trailers: HeaderList?
  /// Whether nghttp2 holds the data provider deferred until more is queued.
  var dataDeferred = false

  init(id: Int32, connection: ServerConnectionHandler, maxMessageSize: Int) {
    self.id = id
    self.connection = connection
    self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
  }

  /// Fails every writer waiting for room: the stream will never take their messages.
  func failWaitingWriters(_ error: RPCError) {
    while let writer = self.waitingWriters.popFirst() {
      writer.resume(throwing: error)
    }
  }

  /// Resumes waiting writers once the buffer has drained below the limit.
  func resumeWritersIfRoom(limit: Int) {
    while self.outboundBytes < limit, let writer = self.waitingWriters.popFirst() {
      writer.resume()
    }
  }

  /// Copies up to `capacity` buffered bytes into `destination`; returns how many.
  func drainOutbound(into destination: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int {
    var written = 0
    while written < capacity, !self.outbound.isEmpty {
      let index = self.outbound.startIndex
      let count = min(self.outbound[index].readableBytes, capacity - written)
      self.outbound[index].withUnsafeReadableBytes { bytes in
        (destination + written).update(
          from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count)
      }
      self.outbound[index].moveReaderIndex(forwardBy: count)
      if self.outbound[index].readableBytes == 0 { self.outbound.removeFirst() }
      written += count
    }
    self.outboundBytes -= written
    return written
  }
}
