
/// One received gRPC message: the payload as sent, and whether it was compressed.
struct ReceivedMessage: Sendable {
  var compressed: Bool
  var payload: [UInt8]
}

/// Splits the bytes of a stream's DATA frames into gRPC's length-prefixed messages: a one-byte
/// compressed flag, a four-byte big-endian length, then the payload. A message may span any
/// number of DATA frames and a frame may carry any number of messages.
///
/// A message that spans frames is received straight into its own payload array, reserved at its
/// declared size once the prefix is checked, and handed on without another copy: a 1 MiB
/// request costs one 1 MiB buffer, not two.
struct MessageDeframer {
  /// The largest payload accepted, before decompression.
  let maxMessageSize: Int
  /// The first bytes of a prefix that arrived split (fewer than five).
  private var prefix: [UInt8] = []
  /// The message being received: its flag, declared length and the payload so far.
  private var partial: (compressed: Bool, length: Int, payload: [UInt8])?

  init(maxMessageSize: Int) {
    self.maxMessageSize = maxMessageSize
  }

  /// Whether bytes of an unfinished message are buffered: at the end of a stream this means
  /// the message was truncated.
  var hasPartialMessage: Bool { !self.prefix.isEmpty || self.partial != nil }

  /// Appends `chunk` and emits every message it completes.
  /// - Throws: `RPCError` RESOURCE_EXHAUSTED for a message over the limit, INTERNAL for a
  ///   malformed prefix.
  mutating func append(
    _ chunk: UnsafeRawBufferPointer,
    emit: (ReceivedMessage) -> Void
  ) throws(RPCError) {
    var offset = 0
    while offset < chunk.count {
      if var message = self.partial {
        // Released here so that the payload array is uniquely referenced and grows in place.
        self.partial = nil
        let count = min(message.length - message.payload.count, chunk.count - offset)
        message.payload.append(contentsOf: chunk[offset..<offset + count])
        offset += count
        guard message.payload.count == message.length else {
          self.partial = message
          return
        }
        emit(ReceivedMessage(compressed: message.compressed, payload: message.payload))
        continue
      }
      let compressed: Bool
      let length: Int
      if self.prefix.isEmpty && chunk.count - offset >= 5 {
        (compressed, length) = try self.header { chunk[offset + $0] }
        offset += 5
      } else {
        let count = min(5 - self.prefix.count, chunk.count - offset)
        self.prefix.append(contentsOf: chunk[offset..<offset + count])
        offset += count
        guard self.prefix.count == 5 else { return }
        let prefix = self.prefix
        self.prefix.removeAll(keepingCapacity: true)
        (compressed, length) = try self.header { prefix[$0] }
      }
      if chunk.count - offset >= length {
        emit(ReceivedMessage(compressed: compressed, payload: Array(chunk[offset..<offset + length])))
        offset += length
      } else {
        var payload: [UInt8] = []
        payload.reserveCapacity(length)
        self.partial = (compressed, length, payload)
      }
    }
  }

  /// The flag and length of a prefix whose five bytes `byte` gives.
  private func header(_ byte: (Int) -> UInt8) throws(RPCError) -> (Bool, Int) {
    let flag = byte(0)
    guard flag <= 1 else {
      throw RPCError(.internal, "Invalid gRPC message flag \(flag)")
    }
    let length = Int(byte(1)) << 24 | Int(byte(2)) << 16 | Int(byte(3)) << 8 | Int(byte(4))
    guard length <= self.maxMessageSize else {
      throw RPCError(
        .resourceExhausted,
        "Received message of \(length) bytes exceeds the limit of \(self.maxMessageSize) bytes"
      )
    }
    return (flag == 1, length)
  }
}
