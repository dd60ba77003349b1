public import Foundation

/// A job's state (`jobs.state`).
public enum JobState: String, Sendable, CaseIterable, Codable {
  case queued
  case running
  case succeeded
  case failed
  case cancelled

  /// Whether the job is over: nothing moves it any more.
  public var isFinal: Bool {
    switch self {
    case .succeeded, .failed, .cancelled: return true
    case .queued, .running: return false
    }
  }
}

/// What moves a job from one state to another; the store applies each as one guarded UPDATE.
public enum JobEvent: String, Sendable, CaseIterable {
  /// A worker took it.
  case claimed
  /// Its handler finished.
  case succeeded
  /// Its handler failed and attempts remain: back to the queue, after a backoff.
  case retried
  /// Its handler failed for the last time, or permanently.
  case failed
  /// Cancelled: at once when queued, by its worker when running.
  case cancelled
  /// Its worker stopped holding the lease (crashed or cut off): back to the queue.
  case leaseExpired = "lease_expired"
  /// Its worker gave it back unfinished (graceful shutdown): back to the queue, the attempt not
  /// counted.
  case released
}

/// The job lifecycle as a state machine:
///
///     queued ──claimed──▶ running ──succeeded──▶ succeeded
///       ▲                  │  │ └──failed──────▶ failed
///       └─retried / lease_expired / released─┘  └─cancelled──▶ cancelled
///     queued ──cancelled──▶ cancelled
public enum JobLifecycle {
  public struct InvalidTransition: Error, Equatable, CustomStringConvertible {
    public var state: JobState
    public var event: JobEvent
    public var description: String { "A \(self.state.rawValue) job cannot be \(self.event.rawValue)" }
  }

  /// The state `event` moves a job in `state` to.
  /// - Throws: `InvalidTransition` when the event cannot happen in that state.
  public static func next(after state: JobState, on event: JobEvent) throws(InvalidTransition) -> JobState {
    switch (state, event) {
    case (.queued, .claimed): return .running
    case (.queued, .cancelled): return .cancelled
    case (.running, .succeeded): return .succeeded
    case (.running, .failed): return .failed
    case (.running, .cancelled): return .cancelled
    case (.running, .retried), (.running, .leaseExpired), (.running, .released): return .queued
    default: throw InvalidTransition(state: state, event: event)
    }
  }

  /// The states from which `event` can happen (what the store's UPDATE requires).
  public static func sources(of event: JobEvent) -> [JobState] {
    JobState.allCases.filter { (try? Self.next(after: $0, on: event)) != nil }
  }
}

/// One background job (`jobs` row).
public struct Job: Sendable, Hashable {
  public var id: UUID
  public var type: String
  public var state: JobState
  public var priority: Int
  public var dedupKey: String?
  /// Attempts started so far (the running one included).
  public var attempts: Int
  public var maxAttempts: Int
  public var scheduledAt: Date
  public var leaseHolder: String?
  public var leaseExpiresAt: Date?
  public var cancelRequested: Bool
  /// The job's input as JSON text.
  public var payload: String
  public var lastError: String?
  public var traceID: String?
  public var createdAt: Date
  public var updatedAt: Date
}

/// How a job is enqueued.
public struct JobOptions: Sendable {
  /// 0–100; higher runs first. Default 50.
  public var priority: Int = 50
  /// A second enqueue with the same key returns the first job instead of adding one.
  public var dedupKey: String?
  /// Attempts before the job fails for good (default 5).
  public var maxAttempts: Int = 5
  /// Not before this time (default now).
  public var runAt: Date?
  /// The trace the job belongs to (default the current call's).
  public var traceID: String?

  public init(priority: Int = 50, dedupKey: String? = nil, maxAttempts: Int = 5, runAt: Date? = nil, traceID: String? = nil) {
    self.priority = priority
    self.dedupKey = dedupKey
    self.maxAttempts = maxAttempts
    self.runAt = runAt
    self.traceID = traceID
  }
}

/// Why a job cannot be enqueued or changed.
public enum JobError: Error, Equatable, CustomStringConvertible {
  case invalid(String)
  case notFound

  public var description: String {
    switch self {
    case .invalid(let reason): "Invalid job: \(reason)"
    case .notFound: "Job not found"
    }
  }
}
