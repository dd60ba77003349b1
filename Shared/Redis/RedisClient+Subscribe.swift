public import NIOCore
internal import Logging

/// What a subscriber receives.
public enum RedisSubscriberEvent: Sendable, Equatable {
  /// The subscription is in place: the first time, and again after a lost connection. Anything
  /// published while it was not in place was missed (a cache should drop what it holds).
  case subscribed
  /// A message published to one of the channels.
  case message(channel: String, payload: ByteBuffer)
}

extension RedisClient {
  /// Messages held for a slow handler before the subscription is dropped and made again (the
  /// handler then sees `.subscribed`, its signal that messages were missed).
  static let subscriberBacklog = 10_000

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
        of: RESPValue.self, bufferingPolicy: .bufferingOldest(Self.subscriberBacklog))
      do {
        let connection = try await RedisConnection.connect(
          configuration: self.configuration, sslContext: self.sslContext, group: self.group,
          onPush: { value in
            if case .dropped = continuation.yield(value) { return false }
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
          for await value in stream {
            guard let elements = value.elements, elements.count == 3, let channel = elements[1].string,
              let payload = elements[2].bytes
            else { continue }
            await handler(.message(channel: channel, payload: payload))
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
