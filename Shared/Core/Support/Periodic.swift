public import Logging

/// Work a service repeats for as long as it runs: partition upkeep, cache pruning, sweeps of
/// interrupted runs, schedule checks, lease renewals. The one loop they share: a round that
/// throws is logged and the next comes on time, and cancelling the task ends the loop, in a
/// round's wait too.
public enum Periodic {
  /// When the first round runs.
  public enum Start: Sendable {
    /// At once, then every interval.
    case now
    /// One interval from now.
    case afterInterval
  }

  /// Runs `round` every `interval` until the task is cancelled.
  /// - Parameters:
  ///   - failure: the warning logged (with the error as `error`) when a round throws.
  ///   - metadata: more metadata for that warning.
  public static func run(
    every interval: Duration, starting start: Start = .now, logger: Logger, failure: @autoclosure () -> Logger.Message,
    metadata: Logger.Metadata = [:], _ round: () async throws -> Void
  ) async {
    await Self.run(every: interval, starting: start) {
      do {
        try await round()
      } catch {
        logger.warning(failure(), metadata: metadata.merging(["error": "\(String(reflecting: error))"]) { $1 })
      }
    }
  }

  /// Runs `round`, which cannot fail, every `interval` until the task is cancelled.
  public static func run(every interval: Duration, starting start: Start = .now, _ round: () async -> Void) async {
    if start == .afterInterval, !(await Self.wait(interval)) { return }
    while !Task.isCancelled {
      await round()
      guard await Self.wait(interval) else { return }
    }
  }

  /// Sleeps for `interval`; false when the task was cancelled meanwhile.
  private static func wait(_ interval: Duration) async -> Bool {
    do {
      try await Task.sleep(for: interval)
      return true
    } catch {
      return false
    }
  }
}
