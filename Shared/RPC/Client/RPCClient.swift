public import NIOCore
internal import NIOPosix
public import SwiftProtobuf

/// The task side of one client call.
final class ClientCall: MessageSink {
  let codec: MessageCodec
  let stream: NIOLoopBound<ClientStream>
  let connection: NIOLoopBound<ClientConnectionHandler>
  let outcome: EventLoopFuture<ClientCallOutcome>
  let responses: InboundMessageQueue?
  let head: ResponseHead

  init(
    stream: NIOLoopBound<ClientStream>, connection: NIOLoopBound<ClientConnectionHandler>,
    outcome: EventLoopFuture<ClientCallOutcome>, responses: InboundMessageQueue?, head: ResponseHead,
    codec: MessageCodec
  ) {
    self.codec = codec
    self.stream = stream
    self.connection = connection
    self.outcome = outcome
    self.responses = responses
    self.head = head
  }

  func encode(_ message: some Message) throws(RPCError) -> ByteBufferPayload {
    try self.codec.encode(message)
  }

  func send(_ payload: ByteBufferPayload) async throws {
    let (stream, connection) = (self.stream, self.connection)
    if stream.eventLoop.inEventLoop {
      // A writer on the connection's loop queues at once and waits only when the buffer is full.
      if try connection.value.enqueue(payload, on: stream.value) { return }
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        connection.value.waitForRoom(on: stream.value, continuation)
      }
      return
    }
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      stream.eventLoop.execute {
        do {
          if try connection.value.enqueue(payload, on: stream.value) {
            continuation.resume()
          } else {
            connection.value.waitForRoom(on: stream.value, continuation)
          }
        } catch {
          continuation.resume(throwing: error)
        }
      }
    }
  }

  func endRequests() {
    let (stream, connection) = (self.stream, self.connection)
    stream.eventLoop.execute { connection.value.endRequests(stream.value) }
  }

  func cancel(_ error: RPCError = RPCError(.cancelled, "The call was cancelled")) {
    let (stream, connection) = (self.stream, self.connection)
    stream.eventLoop.execute { connection.value.cancel(stream.value, error) }
  }

  /// The outcome, with the pool's internal "unprocessed" marker removed.
  func result() async throws -> ClientCallOutcome {
    do {
      return try await self.outcome.get()
    } catch let error as UnprocessedCallError {
      throw error.error
    }
  }
}

/// A gRPC client: multiplexes calls over HTTP/2 connections (libnghttp2) to one or more
/// servers, and serves as the channel of generated typed clients.
///
/// ```swift
/// let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:50052"]))
/// let personas = Platform_Persona_V1_PersonaServiceClient(channel: client)
/// ```
public final class RPCClient: RPCChannel, Sendable {
  public let configuration: RPCClientConfiguration
  private let pool: ConnectionPool

  /// - Parameters:
  ///   - configuration: targets, TLS, limits, interceptors.
  ///   - eventLoopGroup: defaults to `RuntimeEventLoops.shared` (one loop per usable CPU).
  /// - Throws: when the TLS configuration is invalid.
  public init(
    configuration: RPCClientConfiguration,
    eventLoopGroup: any EventLoopGroup = RuntimeEventLoops.shared
  ) throws {
    self.configuration = configuration
    self.pool = try ConnectionPool(configuration: configuration, group: eventLoopGroup)
  }

  /// Closes every connection; calls in flight fail with UNAVAILABLE.
  public func close() async {
    await self.pool.close()
  }

  // MARK: Calls

  private func head(for method: MethodDescriptor, options: CallOptions) -> ClientCallHead {
    var head = ClientCallHead(method: method, metadata: options.metadata, timeout: options.timeout)
    for interceptor in self.configuration.interceptors { interceptor.prepare(&head) }
    return head
  }

  private func codec(_ options: CallOptions) -> MessageCodec {
    MessageCodec(
      receiveEncoding: .gzip, compressSent: options.compression == .gzip,
      maxReceiveMessageSize: self.configuration.maxReceiveMessageSize,
      maxMessageDepth: self.configuration.maxMessageDepth, receivesRequests: false)
  }

  /// Starts a call on a pooled connection.
  private func start(
    _ head: ClientCallHead,
    codec: MessageCodec,
    compression: MessageEncoding,
    firstMessage: ByteBufferPayload?,
    endOfRequests: Bool
  ) async throws -> ClientCall {
    if let timeout = head.timeout, timeout <= .zero {
      throw RPCError(.deadlineExceeded, "The call's deadline was exceeded before it started")
    }
    let connection = try await self.pool.acquire()
    let streamingResponses = !head.method.kind.hasSingleResponse
    let maxSize = self.configuration.maxReceiveMessageSize
    let handler = connection.handler
    return try await handler.eventLoop.submit {
      let outcome = handler.eventLoop.makePromise(of: ClientCallOutcome.self)
      let stream = ClientStream(method: head.method, maxReceiveMessageSize: maxSize, outcome: outcome)
      let bound = NIOLoopBound(stream, eventLoop: handler.eventLoop)
      // Taken before `start`, which may end the stream at once (and the stream then drops it).
      let responses = streamingResponses ? handler.value.makeResponseQueue(for: bound) : nil
      stream.responses = responses
      handler.value.start(stream, head: head, compression: compression, firstMessage: firstMessage, endOfRequests: endOfRequests)
      return ClientCall(
        stream: bound, connection: handler, outcome: outcome.futureResult,
        responses: responses, head: stream.head, codec: codec)
    }.get()
  }

  /// Runs `attempt` again, with backoff, when it fails before the server processed the call, or
  /// with UNAVAILABLE on an idempotent call; never past the call's deadline.
  private func withRetries<Result>(
    _ head: ClientCallHead,
    options: CallOptions,
    _ attempt: (ClientCallHead) async throws -> Result
  ) async throws -> Result {
    let policy = self.configuration.retry
    let deadline = head.timeout.map { ContinuousClock.now + $0 }
    var backoff = policy.initialBackoff
    var attemptNumber = 1
    var head = head
    while true {
      do {
        return try await attempt(head)
      } catch let error as UnprocessedCallError {
        guard attemptNumber < policy.maxAttempts else { throw error.error }
      } catch let error as RPCError {
        guard options.idempotent, error.code == .unavailable, attemptNumber < policy.maxAttempts else { throw error }
        try await Task.sleep(for: backoff)
        backoff = min(backoff * policy.multiplier, policy.maximumBackoff)
      }
      attemptNumber += 1
      if let deadline {
        head.timeout = deadline - .now
      }
    }
  }

  /// A unary call with its response metadata.
  public func unaryCall<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, request: Request, options: CallOptions
  ) async throws -> ClientResponse<Response> {
    let codec = self.codec(options)
    let payload = try codec.encode(request)
    let outcome = try await self.withRetries(self.head(for: method, options: options), options: options) { head in
      let call = try await self.start(head, codec: codec, compression: options.compression, firstMessage: payload, endOfRequests: true)
      return try await withTaskCancellationHandler {
        // Unprocessed failures stay marked here so `withRetries` can retry them.
        try await call.outcome.get()
      } onCancel: {
        call.cancel()
      }
    }
    return ClientResponse(
      message: try codec.decode(outcome.message!, as: Response.self),
      initialMetadata: outcome.initialMetadata, trailingMetadata: outcome.trailingMetadata)
  }

  public func serverStreaming<Request: Message & Sendable, Response: Message & Sendable, Result: Sendable>(
    _ method: MethodDescriptor, request: Request, options: CallOptions,
    responses: (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result {
    let codec = self.codec(options)
    let payload = try codec.encode(request)
    let call = try await self.start(
      self.head(for: method, options: options), codec: codec, compression: options.compression, firstMessage: payload, endOfRequests: true)
    return try await withTaskCancellationHandler {
      defer { call.cancel() }
      return try await responses(MessageStream(queue: call.responses!, codec: codec, head: call.head))
    } onCancel: {
      call.cancel()
    }
  }

  /// A client-streaming call with its response metadata.
  public func clientStreamingCall<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    requests: @Sendable (RequestStreamWriter<Request>) async throws -> Void
  ) async throws -> ClientResponse<Response> {
    let codec = self.codec(options)
    let call = try await self.start(
      self.head(for: method, options: options), codec: codec, compression: options.compression, firstMessage: nil, endOfRequests: false)
    return try await withTaskCancellationHandler {
      do {
        try await requests(MessageWriter(sink: call))
        call.endRequests()
      } catch {
        call.cancel()
        throw error
      }
      let outcome = try await call.result()
      return ClientResponse(
        message: try codec.decode(outcome.message!, as: Response.self),
        initialMetadata: outcome.initialMetadata, trailingMetadata: outcome.trailingMetadata)
    } onCancel: {
      call.cancel()
    }
  }

  public func bidirectionalStreaming<Request: Message & Sendable, Response: Message & Sendable, Result: Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    requests: @escaping @Sendable (RequestStreamWriter<Request>) async throws -> Void,
    responses: (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result {
    let codec = self.codec(options)
    let call = try await self.start(
      self.head(for: method, options: options), codec: codec, compression: options.compression, firstMessage: nil, endOfRequests: false)
    return try await withTaskCancellationHandler {
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          do {
            try await requests(MessageWriter(sink: call))
            call.endRequests()
          } catch {
            call.cancel()
            throw error
          }
        }
        defer { call.cancel() }
        let result = try await responses(MessageStream(queue: call.responses!, codec: codec, head: call.head))
        // The responses are complete; a writer still blocked now fails with the call's end,
        // which is not an error of the call.
        while let _ = try? await group.next() {}
        return result
      }
    } onCancel: {
      call.cancel()
    }
  }
}
