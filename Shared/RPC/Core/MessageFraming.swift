
/// One received gRPC message: the payload as sent, and whether it was compressed.
struct ReceivedMessage: Sendable {
  var compressed: Bool
  var payload: [UInt8]
  /// Its bytes already given back to the HTTP/2 flow-control window while it was arriving
  /// (`MessageDeframer.creditHeldBytes`); the rest are given back when it is consumed.
  var credited = 0

  /// The bytes still to give back to the flow-control window once it is consumed.
  var uncredited: Int { self.payload.count + 5 - self.credited }
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

  /// The bytes of the unfinished message held now (its prefix included).
  private var heldBytes: Int { self.prefix.count + (self.partial.map { 5 + $0.payload.count } ?? 0) }
  /// How many of `heldBytes` were given back to the flow-control window already.
  private var creditedHeldBytes = 0

  /// Appends `chunk` and emits every message it completes. A message carries how many of its
  /// bytes were credited to the flow-control window while it was unfinished
  /// (`creditHeldBytes`).
  /// - Throws: `RPCError` RESOURCE_EXHAUSTED for a message over the limit, INTERNAL for a
  ///   malformed prefix.
  mutating func append(
    _ chunk: UnsafeRawBufferPointer,
    emit: (ReceivedMessage) -> Void
  ) throws(RPCError) {
    // The held bytes credited so far belong to the first message this chunk completes.
    var carried = self.creditedHeldBytes
    try self.appendMessages(chunk) { message in
      var message = message
      message.credited = carried
      carried = 0
      emit(message)
    }
    self.creditedHeldBytes = carried
  }

  /// Marks the unfinished message's bytes as credited and returns how many were not yet: the
  /// connection gives them back to the HTTP/2 flow-control window when the stream's consumer has
  /// read every complete message. Complete messages are credited only as they are consumed, so
  /// a consumer that stops reading stops the peer; but a message larger than the stream's window
  /// (1 MiB by default, messages up to 4 MiB) could otherwise never finish arriving for a
  /// consumer waiting for it, and the call would hang. What this lets in is bounded by the
  /// message size limit: one message per stream.
  mutating func creditHeldBytes() -> Int {
    let held = self.heldBytes
    defer { self.creditedHeldBytes = held }
    return held - self.creditedHeldBytes
  }

  private mutating func appendMessages(
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
