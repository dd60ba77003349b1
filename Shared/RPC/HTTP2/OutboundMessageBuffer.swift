internal import NIOCore

/// The framed messages a stream has queued for nghttp2 to send, and the writers waiting for room.
///
/// nghttp2 pulls bytes through the stream's data provider as flow control allows; a writer that
/// finds the buffer over its limit waits until nghttp2 has taken enough. A peer that stops
/// reading therefore stops the writer, and the buffer never grows past one message over the
/// limit.
struct OutboundMessageBuffer {
  private var buffers: [ByteBuffer] = []
  private var head = 0
  private var waitingWriters: [CheckedContinuation<Void, any Error>] = []
  /// Bytes queued and not yet taken by nghttp2.
  private(set) var byteCount = 0

  var isEmpty: Bool { self.head == self.buffers.count }

  /// Frames and queues one message.
  mutating func append(_ payload: ByteBufferPayload, allocator: ByteBufferAllocator) {
    var buffer = allocator.buffer(capacity: payload.framedSize)
    MessageFramer.frame(payload.bytes, compressed: payload.compressed, into: &buffer)
    self.buffers.append(buffer)
    self.byteCount += payload.framedSize
  }

  /// Frames and queues one message for `writer`, which resumes now if the buffer is under
  /// `limit` and otherwise once nghttp2 has drained it below.
  mutating func append(
    _ payload: ByteBufferPayload, allocator: ByteBufferAllocator, limit: Int,
    writer: CheckedContinuation<Void, any Error>
  ) {
    self.append(payload, allocator: allocator)
    if self.byteCount < limit {
      writer.resume()
    } else {
      self.waitingWriters.append(writer)
    }
  }

  /// Copies up to `capacity` queued bytes into `destination` and resumes writers once the
  /// buffer is under `limit`; returns how many bytes were copied.
  mutating func drain(into destination: UnsafeMutablePointer<UInt8>, capacity: Int, limit: Int) -> Int {
    var written = 0
    while written < capacity, self.head < self.buffers.count {
      let count = min(self.buffers[self.head].readableBytes, capacity - written)
      self.buffers[self.head].withUnsafeReadableBytes { bytes in
        (destination + written).update(from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count)
      }
      self.buffers[self.head].moveReaderIndex(forwardBy: count)
      if self.buffers[self.head].readableBytes == 0 { self.head += 1 }
      written += count
    }
    if self.head == self.buffers.count {
      self.buffers.removeAll(keepingCapacity: true)
      self.head = 0
    }
    self.byteCount -= written
    if self.byteCount < limit && !self.waitingWriters.isEmpty {
      let writers = self.waitingWriters
      self.waitingWriters.removeAll()
      for writer in writers { writer.resume() }
    }
    return written
  }

  /// Fails every waiting writer: the stream will never take their messages.
  mutating func failWaitingWriters(_ error: RPCError) {
    let writers = self.waitingWriters
    self.waitingWriters.removeAll()
    for writer in writers { writer.resume(throwing: error) }
  }
}
