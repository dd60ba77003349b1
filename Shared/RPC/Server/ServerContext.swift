internal import Synchronization

/// A key for a value interceptors attach to a call, such as the authenticated caller or the
/// trace context.
public protocol ServerContextKey {
  associatedtype Value: Sendable
}

/// Everything a handler and the interceptors know about one call: the method, the caller's
/// metadata, the deadline and the peer; and the metadata the server sends back.
///
/// The context of the call being handled is also available as `ServerContext.current`, so a
/// client call made while handling it can carry its deadline and credentials onwards.
public final class ServerContext: Sendable {
  /// The method being called.
  public let method: MethodDescriptor
  /// The custom metadata the client sent (decoded on first use).
  public var requestMetadata: Metadata {
    self.state.withLock { state in
      if let metadata = state.requestMetadata { return metadata }
      let metadata = self.receivedHeaders.decode()
      state.requestMetadata = metadata
      return metadata
    }
  }
  private let receivedHeaders: ReceivedHeaders

  /// The values the client sent for one text (not `-bin`) metadata key, in order: the cheap way
  /// to read one header, without decoding the others.
  public func requestMetadataStrings(forKey key: String) -> [String] {
    let key = Metadata.lowercased(key)
    precondition(!Metadata.isBinaryKey(key) && !Metadata.isReserved(key), "'\(key)' is not a text metadata key")
    if let metadata = self.state.withLock({ $0.requestMetadata }) {
      return metadata.compactMap { entry in
        guard entry.key == key, case .string(let value) = entry.value else { return nil }
        return value
      }
    }
    return self.receivedHeaders.strings(forKey: key)
  }
  /// When the call's headers arrived.
  public let received: ContinuousClock.Instant
  /// When the call times out (from `grpc-timeout`), if the client set a deadline.
  public let deadline: ContinuousClock.Instant?
  /// The client's address, such as `ipv4:127.0.0.1:53012`.
  public let peer: String
  /// The encoding of the client's compressed messages (`grpc-encoding`; identity if absent).
  public let requestEncoding: MessageEncoding

  private struct State {
    var initialMetadata = Metadata()
    var trailingMetadata = Metadata()
    var values: [ObjectIdentifier: any Sendable] = [:]
    var compressResponses: Bool?
    var requestMetadata: Metadata?
  }

  private let state = Mutex(State())

  init(
    method: MethodDescriptor, receivedHeaders: ReceivedHeaders, received: ContinuousClock.Instant, deadline: ContinuousClock.Instant?,
    peer: String, requestEncoding: MessageEncoding
  ) {
    self.received = received
    self.requestEncoding = requestEncoding
    self.method = method
    self.receivedHeaders = receivedHeaders
    self.deadline = deadline
    self.peer = peer
  }

  /// Metadata sent with the response headers; set it before the first response message.
  public var initialMetadata: Metadata {
    get { self.state.withLock { $0.initialMetadata } }
    set { self.state.withLock { $0.initialMetadata = newValue } }
  }

  /// Changes the metadata sent with the response headers in place (no copy of what is there);
  /// call it before the first response message.
  public func updateInitialMetadata(_ body: (inout Metadata) -> Void) {
    self.state.withLock { body(&$0.initialMetadata) }
  }

  /// Metadata sent with the status at the end of the call.
  public var trailingMetadata: Metadata {
    get { self.state.withLock { $0.trailingMetadata } }
    set { self.state.withLock { $0.trailingMetadata = newValue } }
  }

  /// Whether response messages are gzip-compressed (when the client accepts gzip); nil keeps
  /// the server's policy: compress when the request was compressed.
  public var compressResponses: Bool? {
    get { self.state.withLock { $0.compressResponses } }
    set { self.state.withLock { $0.compressResponses = newValue } }
  }

  /// A value attached by an interceptor.
  public subscript<Key: ServerContextKey>(key: Key.Type) -> Key.Value? {
    get { self.state.withLock { $0.values[ObjectIdentifier(key)] as? Key.Value } }
    set { self.state.withLock { $0.values[ObjectIdentifier(key)] = newValue } }
  }

  /// The time left before the deadline, nil when the call has none.
  public var remainingTime: Duration? {
    self.deadline.map { $0 - .now }
  }

  /// The context of the call the current task is handling.
  @TaskLocal public static var current: ServerContext?
}
