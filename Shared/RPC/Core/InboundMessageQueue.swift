internal import Synchronization

/// The messages received on one stream, handed from the event loop to the task that consumes
/// them.
///
/// The event loop pushes; one consumer awaits `next()`. Each message taken is reported through
/// `onConsumed` so the connection can open the HTTP/2 flow-control window by the same amount: a
/// consumer that stops reading stops the peer from sending, and nothing buffers without bound.
final class InboundMessageQueue: Sendable {
  private struct State {
    var messages: [ReceivedMessage] = []
    var head = 0
    var waiter: CheckedContinuation<ReceivedMessage?, any Error>?
    /// nil while open; the end (nil error) or failure once finished.
    var end: Result<Void, RPCError>?
  }

  private let state = Mutex(State())
  private let onConsumed: @Sendable (Int) -> Void

  init(onConsumed: @escaping @Sendable (Int) -> Void) {
    self.onConsumed = onConsumed
  }

  /// Called on the event loop with each message received.
  func push(_ message: ReceivedMessage) {
    var discarded = false
    let waiter = self.state.withLock { state -> CheckedContinuation<ReceivedMessage?, any Error>? in
      guard state.end == nil else {
        discarded = true
        return nil
      }
      if let waiter = state.waiter {
        state.waiter = nil
        return waiter
      }
      state.messages.append(message)
      return nil
    }
    if let waiter {
      self.onConsumed(message.payload.count + 5)
      waiter.resume(returning: message)
    } else if discarded {
      // Nobody will read it: give its flow-control window back at once.
      self.onConsumed(message.payload.count + 5)
    }
  }

  /// Ends the sequence: after the buffered messages, `next()` returns nil, or throws `error`.
  /// An error discards buffered messages.
  func finish(throwing error: RPCError? = nil) {
    var discardedBytes = 0
    let waiter = self.state.withLock { state -> CheckedContinuation<ReceivedMessage?, any Error>? in
      guard state.end == nil else { return nil }
      if let error {
        state.end = .failure(error)
        for message in state.messages[state.head...] { discardedBytes += message.payload.count + 5 }
        state.messages.removeAll()
        state.head = 0
      } else {
        state.end = .success(())
      }
      defer { state.waiter = nil }
      return state.waiter
    }
    if discardedBytes > 0 { self.onConsumed(discardedBytes) }
    if let error {
      waiter?.resume(throwing: error)
    } else {
      waiter?.resume(returning: nil)
    }
  }

  /// The next message, nil at the end.
  /// - Throws: the error the stream failed with, or `RPCError` CANCELLED when the waiting task
  ///   is cancelled.
  func next() async throws -> ReceivedMessage? {
    enum Immediate {
      case message(ReceivedMessage)
      case end(Result<Void, RPCError>)
      case wait
    }
    let immediate = self.state.withLock { state -> Immediate in
      if state.head < state.messages.count {
        let message = state.messages[state.head]
        state.head += 1
        if state.head == state.messages.count {
          state.messages.removeAll(keepingCapacity: true)
          state.head = 0
        }
        return .message(message)
      }
      if let end = state.end { return .end(end) }
      return .wait
    }
    switch immediate {
    case .message(let message):
      self.onConsumed(message.payload.count + 5)
      return message
    case .end(let end):
      try end.get()
      return nil
    case .wait:
      return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
          let ready = self.state.withLock { state -> Result<Void, RPCError>? in
            if let end = state.end { return end }
            if Task.isCancelled { return .failure(RPCError(.cancelled, "The call was cancelled")) }
            state.waiter = continuation
            return nil
          }
          switch ready {
          case .none: break
          case .success: continuation.resume(returning: nil)
          case .failure(let error): continuation.resume(throwing: error)
          }
        }
      } onCancel: {
        let waiter = self.state.withLock { state in
          defer { state.waiter = nil }
          return state.waiter
        }
        waiter?.resume(throwing: RPCError(.cancelled, "The call was cancelled"))
      }
    }
  }
}
