
/// One received gRPC message: the payload as sent, and whether it was compressed.
struct ReceivedMessage: Sendable {
  var compressed: Bool
  var payload: [UInt8]
}

/// Splits the bytes of a stream's DATA frames into gRPC's length-prefixed messages: a one-byte
/// compressed flag, a four-byte big-endian length, then the payload. A message may span any
/// number of DATA frames and a frame may carry any number of messages.
struct MessageDeframer {
  /// The largest payload accepted, before decompression.
  let maxMessageSize: Int
  private var pending: [UInt8] = []

  init(maxMessageSize: Int) {
    self.maxMessageSize = maxMessageSize
  }

  /// Whether bytes of an unfinished message are buffered: at the end of a stream this means
  /// the message was truncated.
  var hasPartialMessage: Bool { !self.pending.isEmpty }

  /// Appends `chunk` and emits every message it completes.
  /// - Throws: `RPCError` RESOURCE_EXHAUSTED for a message over the limit, INTERNAL for a
  ///   malformed prefix.
  mutating func append(
    _ chunk: UnsafeRawBufferPointer,
    emit: (ReceivedMessage) -> Void
  ) throws(RPCError) {
    if self.pending.isEmpty {
      let consumed = try self.deframe(chunk, emit: emit)
      if consumed < chunk.count {
        self.pending.append(contentsOf: chunk[consumed...])
        try self.reservePendingMessage()
      }
      return
    }
    self.pending.append(contentsOf: chunk)
    let consumed = try self.withPendingBytes { bytes throws(RPCError) in
      try self.deframe(bytes, emit: emit)
    }
    if consumed > 0 { self.pending.removeFirst(consumed) }
    try self.reservePendingMessage()
  }

  /// Emits the complete messages at the start of `bytes`; returns how many bytes they took.
  private func deframe(
    _ bytes: UnsafeRawBufferPointer,
    emit: (ReceivedMessage) -> Void
  ) throws(RPCError) -> Int {
    var offset = 0
    while bytes.count - offset >= 5 {
      let (compressed, length) = try self.header(bytes, at: offset)
      guard bytes.count - offset - 5 >= length else { break }
      let start = offset + 5
      emit(ReceivedMessage(compressed: compressed, payload: Array(bytes[start..<start + length])))
      offset = start + length
    }
    return offset
  }

  private func header(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(RPCError) -> (Bool, Int) {
    let flag = bytes[offset]
    guard flag <= 1 else {
      throw RPCError(.internal, "Invalid gRPC message flag \(flag)")
    }
    let length =
      Int(bytes[offset + 1]) << 24 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 8
      | Int(bytes[offset + 4])
    guard length <= self.maxMessageSize else {
      throw RPCError(
        .resourceExhausted,
        "Received message of \(length) bytes exceeds the limit of \(self.maxMessageSize) bytes"
      )
    }
    return (flag == 1, length)
  }

  private func withPendingBytes<Result>(
    _ body: (UnsafeRawBufferPointer) throws(RPCError) -> Result
  ) throws(RPCError) -> Result {
    let result = self.pending.withUnsafeBytes { bytes in
      Swift.Result { () throws(RPCError) in try body(bytes) }
    }
    return try result.get()
  }

  /// Validates the header of a buffered partial message early, and reserves room for it.
  private mutating func reservePendingMessage() throws(RPCError) {
    guard self.pending.count >= 5 else { return }
    let length = try self.withPendingBytes { bytes throws(RPCError) in
      try self.header(bytes, at: 0).1
    }
    self.pending.reserveCapacity(5 + length)
  }
}
