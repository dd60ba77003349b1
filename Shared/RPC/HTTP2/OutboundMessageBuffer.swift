/// The messages a stream has queued for nghttp2 to send, and the writers waiting for room.
///
/// nghttp2 pulls bytes through the stream's data provider as flow control allows; the buffer
/// copies the five-byte gRPC prefix and the payload straight into nghttp2's frame, so a message
/// costs no intermediate buffer. The first message is held inline (a unary response allocates
/// nothing here). A writer that finds the buffer over its limit waits until nghttp2 has taken
/// enough: a peer that stops reading stops the writer, and the buffer never grows past one
/// message over the limit.
struct OutboundMessageBuffer {
  private struct Pending {
    var payload: ByteBufferPayload
    /// Bytes of prefix + payload already handed to nghttp2.
    var sent = 0
    var remaining: Int { self.payload.framedSize - self.sent }
  }

  private var head: Pending?
  private var queue: [Pending] = []
  private var queueStart = 0
  private var waitingWriters: [CheckedContinuation<Void, any Error>] = []
  /// Bytes queued and not yet taken by nghttp2.
  private(set) var byteCount = 0

  var isEmpty: Bool { self.head == nil }

  /// Queues one message.
  mutating func append(_ payload: ByteBufferPayload) {
    self.byteCount += payload.framedSize
    if self.head == nil {
      self.head = Pending(payload: payload)
    } else {
      self.queue.append(Pending(payload: payload))
    }
  }

  /// Queues one message; true while the buffer is under `limit`, so its writer may go on, false
  /// when the writer must wait for room (`waitForRoom`).
  mutating func append(_ payload: ByteBufferPayload, limit: Int) -> Bool {
    self.append(payload)
    return self.byteCount < limit
  }

  /// Resumes `writer` now if the buffer is under `limit`, else once nghttp2 has drained it below.
  mutating func waitForRoom(_ writer: CheckedContinuation<Void, any Error>, limit: Int) {
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
    while written < capacity, var pending = self.head {
      written += Self.copy(&pending, into: destination + written, capacity: capacity - written)
      if pending.remaining > 0 {
        self.head = pending
        break
      }
      self.head = self.nextQueued()
    }
    self.byteCount -= written
    if self.byteCount < limit && !self.waitingWriters.isEmpty {
      let writers = self.waitingWriters
      self.waitingWriters.removeAll()
      for writer in writers { writer.resume() }
    }
    return written
  }

  private mutating func nextQueued() -> Pending? {
    guard self.queueStart < self.queue.count else { return nil }
    let next = self.queue[self.queueStart]
    self.queueStart += 1
    if self.queueStart == self.queue.count {
      self.queue.removeAll(keepingCapacity: true)
      self.queueStart = 0
    }
    return next
  }

  /// Copies the next bytes of one message: the prefix (flag, big-endian length), then payload.
  private static func copy(_ pending: inout Pending, into destination: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int {
    var written = 0
    let length = UInt32(pending.payload.bytes.count)
    while pending.sent < 5 && written < capacity {
      destination[written] =
        switch pending.sent {
        case 0: pending.payload.compressed ? 1 : 0
        default: UInt8(truncatingIfNeeded: length >> (8 * UInt32(4 - pending.sent)))
        }
      pending.sent += 1
      written += 1
    }
    let offset = pending.sent - 5
    let count = min(pending.payload.bytes.count - offset, capacity - written)
    if count > 0 {
      pending.payload.bytes.withUnsafeBufferPointer { bytes in
        (destination + written).update(from: bytes.baseAddress! + offset, count: count)
      }
      pending.sent += count
      written += count
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
