internal import CoreMetrics
internal import Foundation

/// The bounded pool of sandbox slots: `size` runs at once, `queueSize` more waiting in order,
/// at most `perUser` of one user's running or waiting. Beyond any of these a run is refused at
/// once (RESOURCE_EXHAUSTED): nothing piles up. Each slot is an unprivileged uid of its own, so
/// concurrent runs cannot signal each other.
actor SandboxPool {
  private var free: [Int]
  private var waiters: [(id: UInt64, user: UUID, continuation: CheckedContinuation<Int, any Error>)] = []
  private var perUserCount: [UUID: Int] = [:]
  private var nextWaiter: UInt64 = 0
  let size: Int
  let queueSize: Int
  let perUser: Int
  private let metrics: SandboxMetrics?

  init(size: Int, queueSize: Int, perUser: Int, metrics: SandboxMetrics? = nil) {
    self.size = size
    self.queueSize = queueSize
    self.perUser = perUser
    self.metrics = metrics
    self.free = Array((0..<size).reversed())
  }

  private func report() {
    self.metrics?.busy.record(self.size - self.free.count)
    self.metrics?.waiting.record(self.waiters.count)
  }

  /// Runs `body` with a slot, waiting in the queue if every slot is busy.
  func withSlot<T: Sendable>(user: UUID, _ body: @Sendable (Int) async throws -> T) async throws -> T {
    let slot: Int
    do {
      slot = try await self.acquire(user: user)
    } catch let error as SandboxError {
      self.metrics?.refused(error == .poolFull ? "pool_full" : "user_limit")
      throw error
    }
    self.report()
    defer {
      self.release(slot, user: user)
      self.report()
    }
    return try await body(slot)
  }

  /// Running and waiting runs, for health and metrics.
  var load: (running: Int, waiting: Int) { (self.size - self.free.count, self.waiters.count) }

  private func acquire(user: UUID) async throws -> Int {
    guard self.perUserCount[user, default: 0] < self.perUser else { throw SandboxError.userLimit(self.perUser) }
    if let slot = self.free.popLast() {
      self.perUserCount[user, default: 0] += 1
      return slot
    }
    guard self.waiters.count < self.queueSize else { throw SandboxError.poolFull }
    self.perUserCount[user, default: 0] += 1
    self.nextWaiter &+= 1
    let id = self.nextWaiter
    do {
      return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
          if Task.isCancelled {
            continuation.resume(throwing: CancellationError())
          } else {
            self.waiters.append((id, user, continuation))
            self.report()
          }
        }
      } onCancel: {
        Task { await self.cancelWaiter(id) }
      }
    } catch {
      self.perUserCount[user, default: 1] -= 1
      if self.perUserCount[user] == 0 { self.perUserCount[user] = nil }
      throw error
    }
  }

  private func cancelWaiter(_ id: UInt64) {
    guard let index = self.waiters.firstIndex(where: { $0.id == id }) else { return }
    self.waiters.remove(at: index).continuation.resume(throwing: CancellationError())
  }

  private func release(_ slot: Int, user: UUID) {
    self.perUserCount[user, default: 1] -= 1
    if self.perUserCount[user] == 0 { self.perUserCount[user] = nil }
    if self.waiters.isEmpty {
      self.free.append(slot)
    } else {
      self.waiters.removeFirst().continuation.resume(returning: slot)
    }
  }
}
