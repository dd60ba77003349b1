internal import SwiftProtobuf

/// Turns protobuf messages into gRPC payloads and back, applying the stream's encoding.
struct MessageCodec: Sendable {
  /// The encoding of received compressed messages (`grpc-encoding` of the peer).
  var receiveEncoding: MessageEncoding
  /// Whether sent messages are compressed with gzip unless the call says otherwise.
  var compressSent: Bool
  var maxReceiveMessageSize: Int
  /// How deep received messages may nest (`google.protobuf.Struct` in a `Value` in a list …):
  /// decoding recurses once per level, and a stack overflow would kill the process.
  var maxMessageDepth: Int
  /// Whether messages come from the caller (the server side): a message nested too deep is
  /// then the caller's INVALID_ARGUMENT; on the client it is the server's INTERNAL fault.
  var receivesRequests: Bool

  func decode<Message: SwiftProtobuf.Message>(
    _ received: ReceivedMessage,
    as type: Message.Type
  ) throws(RPCError) -> Message {
    var payload = received.payload
    if received.compressed {
      guard self.receiveEncoding == .gzip else {
        throw RPCError(.internal, "Compressed message received without a grpc-encoding")
      }
      payload = try Gzip.decompress(payload, limit: self.maxReceiveMessageSize)
    }
    var options = BinaryDecodingOptions()
    options.messageDepthLimit = self.maxMessageDepth
    do {
      return try Message(serializedBytes: payload, options: options)
    } catch BinaryDecodingError.messageDepthLimit {
      throw RPCError(
        self.receivesRequests ? .invalidArgument : .internal, "The \(Message.protoMessageName) message nests deeper than \(self.maxMessageDepth) levels")
    } catch {
      throw RPCError(.internal, "Could not decode a \(Message.protoMessageName) message")
    }
  }

  /// The payload of `message`, compressed as `compressSent` says.
  func encode(_ message: some SwiftProtobuf.Message) throws(RPCError) -> ByteBufferPayload {
    try self.encode(message, compress: self.compressSent)
  }

  /// The payload of `message`, gzip-compressed when `compress` is set.
  func encode(_ message: some SwiftProtobuf.Message, compress: Bool) throws(RPCError) -> ByteBufferPayload {
    let bytes: [UInt8]
    do {
      bytes = try message.serializedBytes()
    } catch {
      throw RPCError(.internal, "Could not encode a \(type(of: message).protoMessageName) message")
    }
    if compress {
      return ByteBufferPayload(bytes: Gzip.compress(bytes), compressed: true)
    }
    return ByteBufferPayload(bytes: bytes, compressed: false)
  }
}

/// A serialized message ready to be framed.
struct ByteBufferPayload: Sendable {
  var bytes: [UInt8]
  var compressed: Bool
  var framedSize: Int { self.bytes.count + 5 }
}
