public import NIOCore
internal import Logging
internal import Synchronization

/// What a subscriber receives.
public enum RedisSubscriberEvent: Sendable, Equatable {
  /// The subscription is in place: the first time, and again after a lost connection. Anything
  /// published while it was not in place was missed (a cache should drop what it holds).
  case subscribed
  /// A message published to one of the channels.
  case message(channel: String, payload: ByteBuffer)
}

extension RedisClient {
  /// Messages, and their bytes, held for a slow handler before the subscription is dropped and
  /// made again (the handler then sees `.subscribed`, its signal that messages were missed).
  static let subscriberBacklog = 10_000
  static let subscriberBacklogBytes = 32 * 1024 * 1024
  /// How often an idle subscription is checked with PING: a connection that died silently
  /// (half-open) would otherwise stop delivering without a `.subscribed` to say so.
  static let subscriberPingInterval: Duration = .seconds(5)

  /// Subscribes to `channels` on a connection of its own and hands every message to `handler`,
  /// until the calling task is cancelled. A lost connection is reopened with the client's
  /// backoff and the channels subscribed again.
  /// - Throws: `CancellationError` when cancelled.
  public func subscribe(
    to channels: [String], _ handler: @Sendable (RedisSubscriberEvent) async -> Void
  ) async throws {
    precondition(!channels.isEmpty, "subscribe needs a channel")
    var failures = 0
    while true {
      try Task.checkCancellation()
      let (stream, continuation) = AsyncStream.makeStream(
        of: (channel: String, payload: ByteBuffer).self, bufferingPolicy: .bufferingOldest(Self.subscriberBacklog))
      let backlog = BacklogBytes()
      do {
        let connection = try await RedisConnection.connect(
          configuration: self.configuration, sslContext: self.sslContext, group: self.group,
          onPush: { value in
            guard let elements = value.elements, elements.count == 3, let channel = elements[1].string,
              let payload = elements[2].bytes
            else { return true }
            // A copy: a slice would keep the whole receive buffer it came in alive.
            let copy = ByteBuffer(bytes: payload.readableBytesView)
            guard backlog.take(copy.readableBytes, limit: Self.subscriberBacklogBytes) else { return false }
            if case .dropped = continuation.yield((channel, copy)) { return false }
            return true
          })
        connection.channel.closeFuture.whenComplete { _ in continuation.finish() }
        try await withTaskCancellationHandler {
          let commands = channels.map { RedisCommand("SUBSCRIBE", .string($0)) }
          for (channel, confirmation) in zip(channels, try await connection.send(commands).get()) {
            guard let elements = confirmation.elements, elements.first?.string == "subscribe",
              elements.count == 3, elements[1].string == channel
            else {
              connection.close()
              throw RedisError(.unexpectedReply, "SUBSCRIBE \(channel) was not confirmed")
            }
          }
          if failures > 0 {
            self.logger.notice("Redis subscription is back", metadata: ["channels": "\(channels)"])
          }
          failures = 0
          await handler(.subscribed)
          await withTaskGroup(of: Void.self) { group in
            group.addTask {
              // A PING without an answer within the command timeout closes the connection.
              while (try? await Task.sleep(for: Self.subscriberPingInterval)) != nil {
                _ = try? await connection.send(RedisCommand("PING")).get()
              }
            }
            for await message in stream {
              backlog.give(message.payload.readableBytes)
              await handler(.message(channel: message.channel, payload: message.payload))
            }
            group.cancelAll()
          }
        } onCancel: {
          connection.close()
        }
      } catch let error as RedisError {
        failures += 1
        if failures == 1 {
          self.logger.warning(
            "Redis subscription lost; resubscribing with backoff",
            metadata: ["channels": "\(channels)", "error": "\(error.message)"])
        }
      }
      try Task.checkCancellation()
      try await Task.sleep(for: failures > 0 ? self.backoff(failures: failures) : .zero)
    }
  }
}

/// The bytes of messages a subscriber holds that its handler has not taken yet.
final class BacklogBytes: Sendable {
  private let bytes = Atomic(0)

  /// Counts `count` more bytes; false (counting nothing) when that would pass `limit`.
  func take(_ count: Int, limit: Int) -> Bool {
    let total = self.bytes.add(count, ordering: .relaxed).newValue
    if total > limit {
      self.bytes.subtract(count, ordering: .relaxed)
      return false
    }
    return true
  }

  func give(_ count: Int) {
    self.bytes.subtract(count, ordering: .relaxed)
  }
}
