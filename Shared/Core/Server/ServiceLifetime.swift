internal import Synchronization

/// What a service runs beside its RPCs for as long as the server serves: loops such as
/// subscriptions and sweeps (`run`), started once the server is up and cancelled when it stops,
/// before Redis and the database close; and what to release after the RPCs have drained
/// (`onStop`: helper processes, thread pools). Without it such work would outlive the server:
/// in a test process, every stopped service would leave its loops running.
public final class ServiceLifetime: Sendable {
  private let state = Mutex<(tasks: [@Sendable () async -> Void], stops: [@Sendable () async -> Void])>(([], []))

  public init() {}

  /// Runs `body` beside the RPCs; it must return when its task is cancelled.
  public func run(_ body: @escaping @Sendable () async -> Void) {
    self.state.withLock { $0.tasks.append(body) }
  }

  /// Calls `body` once the server has stopped serving, in the reverse order of registration.
  public func onStop(_ body: @escaping @Sendable () async -> Void) {
    self.state.withLock { $0.stops.append(body) }
  }

  /// Starts the loops registered so far; the task ends when they have all returned.
  func start() -> Task<Void, Never> {
    let tasks = self.state.withLock { state in
      defer { state.tasks = [] }
      return state.tasks
    }
    return Task {
      await withDiscardingTaskGroup { group in
        for task in tasks { group.addTask { await task() } }
      }
    }
  }

  /// Runs the stop handlers (each once).
  func stop() async {
    let stops = self.state.withLock { state in
      defer { state.stops = [] }
      return state.stops
    }
    for stop in stops.reversed() { await stop() }
  }
}
