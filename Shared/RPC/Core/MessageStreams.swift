public import SwiftProtobuf

/// Where a writer's framed messages go: a server's response stream or a client's request stream.
protocol MessageSink: Sendable {
  /// Serializes (and, as the call says, compresses) one message.
  func encode(_ message: some SwiftProtobuf.Message) throws(RPCError) -> ByteBufferPayload

  /// Queues one framed message, waiting while the stream's send buffer is full.
  func send(_ payload: ByteBufferPayload) async throws
}

/// Writes messages to a stream. `write` suspends while the peer is not reading (HTTP/2
/// flow-control window exhausted or the socket not writable), so a slow peer slows the writer
/// down instead of growing a buffer.
public struct MessageWriter<Message: SwiftProtobuf.Message & Sendable>: Sendable {
  let sink: any MessageSink

  /// Sends one message.
  /// - Throws: `RPCError` when the stream has ended (for example CANCELLED after the peer reset
  ///   it) or the message cannot be encoded.
  public func write(_ message: Message) async throws {
    try await self.sink.send(try self.sink.encode(message))
  }

  /// Sends every message of a sequence, in order.
  public func write(contentsOf messages: some Sequence<Message>) async throws {
    for message in messages { try await self.write(message) }
  }
}

/// The response stream a server-streaming or bidirectional handler writes to.
public typealias ResponseStreamWriter<Message: SwiftProtobuf.Message & Sendable> = MessageWriter<Message>
/// The request stream a client-streaming or bidirectional caller writes to.
public typealias RequestStreamWriter<Message: SwiftProtobuf.Message & Sendable> = MessageWriter<Message>

/// The messages received on a stream, as an async sequence. Iterating ends at the peer's end of
/// stream and throws `RPCError` if the stream fails.
public struct MessageStream<Message: SwiftProtobuf.Message & Sendable>: AsyncSequence, Sendable {
  public typealias Element = Message
  let queue: InboundMessageQueue
  let codec: MessageCodec
  /// The response metadata, on the client.
  let head: ResponseHead?

  init(queue: InboundMessageQueue, codec: MessageCodec, head: ResponseHead? = nil) {
    self.queue = queue
    self.codec = codec
    self.head = head
  }

  /// The response headers' metadata (client side), once the first message or the end arrived.
  public var initialMetadata: Metadata { self.head?.initialMetadata ?? [:] }
  /// The trailers' metadata (client side), once the stream has ended.
  public var trailingMetadata: Metadata { self.head?.trailingMetadata ?? [:] }

  public struct AsyncIterator: AsyncIteratorProtocol {
    let queue: InboundMessageQueue
    let codec: MessageCodec

    public mutating func next() async throws -> Message? {
      guard let received = try await self.queue.next() else { return nil }
      return try self.codec.decode(received, as: Message.self)
    }
  }

  public func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(queue: self.queue, codec: self.codec)
  }
}

/// The request messages of a client-streaming or bidirectional call, on the server.
public typealias RequestStream<Message: SwiftProtobuf.Message & Sendable> = MessageStream<Message>
/// The response messages of a server-streaming or bidirectional call, on the client.
public typealias ClientResponseStream<Message: SwiftProtobuf.Message & Sendable> = MessageStream<Message>
