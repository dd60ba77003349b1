public import Foundation
public import PlatformCore

/// A running execution's log lines and progress, written in batches: every `interval` while it
/// runs (so watchers see them within that), and the rest with the execution's end, in the
/// statement that records it. A short run writes its lines once, not a statement each.
public actor ExecutionJournal {
  public nonisolated let id: UUID
  private let store: ExecutionStore
  private var lines: [ExecutionLog.Pending] = []
  private var progress: Int?

  public init(id: UUID, store: ExecutionStore) {
    self.id = id
    self.store = store
  }

  public func log(_ level: ExecutionLog.Level, _ message: String, metadata: [String: JSONValue] = [:]) {
    self.lines.append(ExecutionLog.Pending(level, message, metadata: metadata))
  }

  /// Progress only grows.
  public func setProgress(_ value: Int) {
    self.progress = max(self.progress ?? 0, min(max(value, 0), 100))
  }

  /// What has gathered since the last write, taken out (for the statement that ends the run).
  public func take() -> (lines: [ExecutionLog.Pending], progress: Int?) {
    defer {
      self.lines = []
      self.progress = nil
    }
    return (self.lines, self.progress)
  }

  /// Writes what has gathered; when the database refuses, it is kept for the next write.
  public func flush() async {
    let (taken, progress) = self.take()
    guard !taken.isEmpty || progress != nil else { return }
    do {
      try await self.store.append(taken, progress: progress, to: self.id)
    } catch {
      self.lines = taken + self.lines
      if let progress { self.setProgress(progress) }
    }
  }

  /// Flushes every `interval` until cancelled.
  public func flushEvery(_ interval: Duration) async {
    await Periodic.run(every: interval, starting: .afterInterval) {
      await self.flush()
    }
  }
}
