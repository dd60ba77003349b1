public import Foundation
public import Logging
public import PlatformRedis
internal import NIOCore
internal import Synchronization

/// The long-running work of this instance by id (code runs, agent executions), so that a cancel
/// reaches it wherever it runs: here it cancels the task; otherwise it is published on a Redis
/// channel that every instance follows (`follow`), and the instance running it cancels it.
public final class RunningTasks: Sendable {
  private let cancels = Mutex<[UUID: @Sendable () -> Void]>([:])
  private let redis: RedisClient?
  private let channel: String
  private let logger: Logger

  public init(redis: RedisClient?, channel: String, logger: Logger) {
    self.redis = redis
    self.channel = channel
    self.logger = logger
  }

  /// Runs `operation` in a task of its own, known by `id` while it runs; cancelling the caller
  /// cancels it too.
  public func run<Result: Sendable>(
    _ id: UUID, _ operation: @escaping @Sendable () async throws -> Result
  ) async throws -> Result {
    let task = Task { try await operation() }
    self.cancels.withLock { $0[id] = { task.cancel() } }
    defer { _ = self.cancels.withLock { $0.removeValue(forKey: id) } }
    return try await withTaskCancellationHandler {
      try await task.value
    } onCancel: {
      task.cancel()
    }
  }

  /// Whether this instance runs `id`.
  public func isRunning(_ id: UUID) -> Bool { self.cancels.withLock { $0[id] != nil } }

  /// Cancels `id` here, or asks every instance to (through Redis).
  /// - Returns: whether it ran here.
  @discardableResult
  public func cancel(_ id: UUID) async -> Bool {
    if self.cancelHere(id) { return true }
    do {
      _ = try await self.redis?.publish(.string(id.lowercasedString), to: self.channel)
    } catch {
      self.logger.warning("A cancellation could not be published", metadata: ["id": "\(id)", "error": "\(error)"])
    }
    return false
  }

  private func cancelHere(_ id: UUID) -> Bool {
    guard let cancel = self.cancels.withLock({ $0[id] }) else { return false }
    cancel()
    return true
  }

  /// Follows the cancellations other instances publish, until this task is cancelled.
  public func follow() async {
    guard let redis = self.redis else { return }
    do {
      try await redis.subscribe(to: [self.channel]) { event in
        if case .message(_, let payload) = event, let id = UUID(strict: String(buffer: payload)) { _ = self.cancelHere(id) }
      }
    } catch {}
  }
}
