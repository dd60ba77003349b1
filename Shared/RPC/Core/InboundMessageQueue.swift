internal import Synchronization

/// The messages received on one stream, handed from the event loop to the task that consumes
/// them.
///
/// The event loop pushes; one consumer awaits `next()`. Each message taken is reported through
/// `onConsumed` so the connection can open the HTTP/2 flow-control window by the same amount: a
/// consumer that stops reading stops the peer from sending, and nothing buffers without bound.
final class InboundMessageQueue: Sendable {
  fileprivate struct State {
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

  /// Whether no received message waits to be taken (the consumer has read all that arrived).
  var isDrained: Bool {
    self.state.withLock { $0.head >= $0.messages.count }
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
      // The consumer counts it consumed when it takes it (`deliver`).
      waiter.resume(returning: message)
    } else if discarded {
      // Nobody will read it: give its flow-control window back at once.
      self.onConsumed(message.uncredited)
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
        for message in state.messages[state.head...] { discardedBytes += message.uncredited }
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
    if let ready = self.state.withLock({ $0.take() }) {
      return try self.deliver(ready)
    }
    let ready: Outcome = try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ReceivedMessage?, any Error>) in
        // Look again under the lock that installs the waiter: a message or the end may have
        // arrived since the first look.
        let ready = self.state.withLock { state -> Outcome? in
          if let ready = state.take() { return ready }
          if Task.isCancelled { return .end(.failure(RPCError(.cancelled, "The call was cancelled"))) }
          state.waiter = continuation
          return nil
        }
        switch ready {
        case .none: break
        case .message(let message): continuation.resume(returning: message)
        case .end(.success): continuation.resume(returning: nil)
        case .end(.failure(let error)): continuation.resume(throwing: error)
        }
      }
    } onCancel: {
      let waiter = self.state.withLock { state in
        defer { state.waiter = nil }
        return state.waiter
      }
      waiter?.resume(throwing: RPCError(.cancelled, "The call was cancelled"))
    }.map { .message($0) } ?? .end(.success(()))
    return try self.deliver(ready)
  }

  private func deliver(_ outcome: Outcome) throws -> ReceivedMessage? {
    switch outcome {
    case .message(let message):
      self.onConsumed(message.uncredited)
      return message
    case .end(let end):
      try end.get()
      return nil
    }
  }
}

private enum Outcome {
  case message(ReceivedMessage)
  case end(Result<Void, RPCError>)
}

extension InboundMessageQueue.State {
  /// Takes the next buffered message, or the end once nothing is buffered.
  fileprivate mutating func take() -> Outcome? {
    if self.head < self.messages.count {
      let message = self.messages[self.head]
      self.head += 1
      if self.head == self.messages.count {
        self.messages.removeAll(keepingCapacity: true)
        self.head = 0
      }
      return .message(message)
    }
    return self.end.map { .end($0) }
  }
}
