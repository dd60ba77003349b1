internal import NIOCore
internal import SwiftProtobuf

/// The task side of one server call: what the handler's task reads, and how it hands messages
/// and the final status back to the connection's event loop.
final class ServerCall: MessageSink {
  let context: ServerContext
  let method: ServerMethod
  let codec: MessageCodec
  /// The request of a unary or server-streaming call.
  let request: ReceivedMessage?
  /// The requests of a client-streaming or bidirectional call.
  let requests: InboundMessageQueue?
  private let stream: NIOLoopBound<ServerStream>

  init(
    context: ServerContext,
    method: ServerMethod,
    codec: MessageCodec,
    request: ReceivedMessage?,
    requests: InboundMessageQueue?,
    acceptsGzip: Bool,
    stream: NIOLoopBound<ServerStream>
  ) {
    self.acceptsGzip = acceptsGzip
    self.context = context
    self.method = method
    self.codec = codec
    self.request = request
    self.requests = requests
    self.stream = stream
  }

  /// Whether the client accepts gzip-compressed responses (and the server allows them).
  let acceptsGzip: Bool

  func encode(_ message: some Message) throws(RPCError) -> ByteBufferPayload {
    let compress = self.acceptsGzip && (self.context.compressResponses ?? self.codec.compressSent)
    return try self.codec.encode(message, compress: compress)
  }

  func send(_ payload: ByteBufferPayload) async throws {
    let stream = self.stream
    if stream.eventLoop.inEventLoop {
      // The handler runs on its connection's loop (the usual case): the message is queued at
      // once and the handler goes on without a suspension until the buffer is full; the
      // messages of one turn of the loop go out in one write.
      let value = stream.value
      if try value.connection.enqueue(payload, on: value) { return }
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        value.connection.waitForRoom(on: value, continuation)
      }
      return
    }
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      stream.eventLoop.execute {
        let stream = stream.value
        do {
          if try stream.connection.enqueue(payload, on: stream) {
            continuation.resume()
          } else {
            stream.connection.waitForRoom(on: stream, continuation)
          }
        } catch {
          continuation.resume(throwing: error)
        }
      }
    }
  }

  /// Runs the method's interceptors and the handler (in the call's task, which was made with
  /// `ServerContext.current` bound: ServerConnectionHandler.start), then hands the outcome to the
  /// connection's loop. The leading synchronous interceptors run here, in this frame; only the
  /// nested ones add frames of their own.
  func run() async {
    let chain = self.method.chain
    if let refusal = chain.start(self.context) {
      self.complete(.failure(RPCError(mapping: refusal)))
      return
    }
    var response: ByteBufferPayload?
    var failure: (any Error)?
    do {
      response = chain.nested.isEmpty ? try await self.method.invoke(self) : try await self.invokeNested(chain)
    } catch {
      failure = error
    }
    if let error = chain.end(self.context, error: failure, started: chain.leading.count) {
      self.complete(.failure(RPCError(mapping: error)))
    } else {
      self.complete(.success(response))
    }
  }

  /// The handler's response, through the chain's nested interceptors.
  private func invokeNested(_ chain: InterceptorChain) async throws -> ByteBufferPayload? {
    var response: ByteBufferPayload?
    try await chain.run(context: self.context) { _ in
      response = try await self.method.invoke(self)
    }
    return response
  }

  /// Ends the call with the handler's outcome: the single response (if any) and the status.
  func complete(_ result: Result<ByteBufferPayload?, RPCError>) {
    let stream = self.stream
    let trailing = self.context.trailingMetadata
    if stream.eventLoop.inEventLoop {
      Self.finish(stream.value, result, trailing: trailing)
    } else {
      stream.eventLoop.execute { Self.finish(stream.value, result, trailing: trailing) }
    }
  }

  private static func finish(_ stream: ServerStream, _ result: Result<ByteBufferPayload?, RPCError>, trailing: Metadata) {
    switch result {
    case .success(let response):
      stream.connection.finish(stream, status: nil, trailingMetadata: trailing, response: response)
    case .failure(let error):
      var metadata = trailing
      metadata.append(contentsOf: error.metadata)
      stream.connection.finish(stream, status: error, trailingMetadata: metadata, response: nil)
    }
  }
}
