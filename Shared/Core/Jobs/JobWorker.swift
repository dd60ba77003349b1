public import CoreMetrics
public import Foundation
public import Logging
public import PostgresNIO
public import ServiceLifecycle
internal import Synchronization

/// Runs jobs of one type.
public struct JobHandler: Sendable {
  public var type: String
  /// How many jobs of this type one worker runs at once.
  public var concurrency: Int
  /// The wait before a failed job's next attempt: `initial` × 2^(attempt-1) up to `maximum`,
  /// with ±20% jitter.
  public var retryBackoff: (initial: Duration, maximum: Duration)
  public var run: @Sendable (Job, Logger) async throws -> Void

  public init(
    type: String, concurrency: Int = 4, retryBackoff: (initial: Duration, maximum: Duration) = (.seconds(1), .seconds(600)),
    run: @escaping @Sendable (Job, Logger) async throws -> Void
  ) {
    self.type = type
    self.concurrency = concurrency
    self.retryBackoff = retryBackoff
    self.run = run
  }

  func backoff(afterAttempt attempt: Int) -> Duration {
    var wait = self.retryBackoff.initial
    for _ in 1..<max(attempt, 1) where wait < self.retryBackoff.maximum { wait *= 2 }
    return min(wait, self.retryBackoff.maximum) * Double.random(in: 0.8...1.2)
  }
}

/// Thrown by a handler for a failure that retrying cannot fix: the job fails at once.
public struct PermanentJobFailure: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// How a worker runs.
public struct JobWorkerConfiguration: Sendable {
  /// The worker's name in `lease_holder` and `job_events` (default host, pid and a random part).
  public var workerID: String
  /// How long a claim holds a job without renewal; a crashed worker's jobs return to the queue
  /// this long after its last renewal. Default 30 s.
  public var lease: Duration = .seconds(30)
  /// How often running jobs renew their lease and look for a cancellation (at most 1 s, so a
  /// cancelled job stops within a second even without the NOTIFY).
  public var renewInterval: Duration = .seconds(1)
  /// How often the worker looks for due jobs without being woken (retries whose backoff ended,
  /// jobs scheduled for later, a missed NOTIFY), and for expired leases. Default 1 s.
  public var pollInterval: Duration = .seconds(1)
  /// On graceful shutdown, how long running jobs may go on before they are released. Default 10 s.
  public var shutdownGracePeriod: Duration = .seconds(10)

  public init(workerID: String = JobWorkerConfiguration.defaultWorkerID()) {
    self.workerID = workerID
  }

  public static func defaultWorkerID() -> String {
    "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UUID().uuidString.prefix(8).lowercased())"
  }
}

/// Claims and runs the jobs of its handlers' types from the service's database.
///
/// Woken by `NOTIFY platform_jobs` (and a poll as a fallback), it claims with
/// `FOR UPDATE SKIP LOCKED` while a type has a free slot, renews each running job's lease, and
/// records the outcome: success, a retry after exponential backoff with jitter, failure, or
/// cancellation (seen within a second). It puts back jobs whose worker stopped renewing. On
/// graceful shutdown it stops claiming, lets running jobs finish within the grace period and
/// releases the rest to the queue.
public final class JobWorker: Service, Sendable {
  private let database: Database
  private let notifications: PostgresClient
  private let store: JobStore
  private let handlers: [String: JobHandler]
  private let configuration: JobWorkerConfiguration
  private let logger: Logger
  private let state = Mutex(State())
  private let wakeUps: AsyncStream<Void>
  private let wake: AsyncStream<Void>.Continuation
  private let metrics: JobMetrics

  private struct State {
    var running: [UUID: Running] = [:]
    var stopping = false
  }

  private struct Running {
    var type: String
    var stop: AsyncStream<StopReason>.Continuation
  }

  private enum StopReason: Sendable {
    case cancelRequested
    case leaseLost
    case release
  }

  /// - Parameter database: a client of the service's database (running), for the worker's
  ///   statements.
  /// - Parameter notifications: a client of the same database (running) whose one connection
  ///   the worker holds for LISTEN. A connection of `database`'s pool held for good would leave
  ///   the service's statements one fewer (none with a pool of one: every query would wait).
  /// - Parameter metrics: records `jobs_claimed_total{type}`, `jobs_finished_total{type,outcome}`,
  ///   `job_claim_latency_seconds{type}` (due to claimed), `job_duration_seconds{type}` and
  ///   `jobs_running{type}` (default the process's `MetricsSystem`).
  public init(
    database: Database, notifications: PostgresClient, handlers: [JobHandler],
    configuration: JobWorkerConfiguration = JobWorkerConfiguration(), logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory
  ) {
    self.metrics = JobMetrics(types: handlers.map(\.type), factory: metrics)
    self.database = database
    self.notifications = notifications
    self.store = JobStore(database: database, logger: logger)
    self.handlers = Dictionary(handlers.map { ($0.type, $0) }, uniquingKeysWith: { _, last in last })
    self.configuration = configuration
    self.logger = logger
    (self.wakeUps, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// The ids of the jobs running now.
  public var runningJobs: Set<UUID> { self.state.withLock { Set($0.running.keys) } }

  public func run() async throws {
    try await withGracefulShutdownHandler {
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await self.listen() }
        group.addTask {
          while !Task.isCancelled {
            try await Task.sleep(for: self.configuration.pollInterval)
            self.wake.yield()
          }
        }
        try await self.claimLoop()
        group.cancelAll()
      }
    } onGracefulShutdown: {
      self.state.withLock { $0.stopping = true }
      self.wake.yield()
    }
  }

  /// Wakes the claim loop on `queued:` notifications and stops jobs on `cancel:<id>`.
  private func listen() async throws {
    while !Task.isCancelled {
      do {
        try await self.notifications.withConnection { connection in
          try await connection.listen(on: JobStore.channel) { notifications in
            self.wake.yield()  // anything queued while not listening
            for try await notification in notifications {
              if notification.payload.hasPrefix("cancel:"), let id = UUID(uuidString: String(notification.payload.dropFirst(7))) {
                self.stop(id, .cancelRequested)
              } else {
                self.wake.yield()
              }
            }
          }
        }
      } catch where !Task.isCancelled {
        self.logger.warning("Job notifications lost; listening again", metadata: ["error": "\(DatabaseErrors.describe(error))"])
        try await Task.sleep(for: self.configuration.pollInterval)
      }
    }
  }

  private func stop(_ id: UUID, _ reason: StopReason) {
    _ = self.state.withLock { $0.running[id] }?.stop.yield(reason)
  }

  private func claimLoop() async throws {
    let clock = ContinuousClock()
    var nextSweep = clock.now
    try await withThrowingDiscardingTaskGroup { group in
      for await _ in self.wakeUps {
        if self.state.withLock({ $0.stopping }) { break }
        if clock.now >= nextSweep {
          nextSweep = clock.now + self.configuration.pollInterval
          do {
            let recovered = try await self.store.recoverExpiredLeases()
            if recovered > 0 { self.logger.notice("Jobs of a stopped worker put back", metadata: ["jobs": "\(recovered)"]) }
          } catch {
            self.logger.warning("Lease sweep failed", metadata: ["error": "\(DatabaseErrors.describe(error))"])
          }
        }
        // Claim while a type has free slots and jobs are there, a batch of up to its free slots
        // at a time, round-robin over the types.
        var exhausted = Set<String>()
        while !self.state.withLock({ $0.stopping }) {
          let free = self.freeSlots().filter { !exhausted.contains($0.type) }
          guard let (type, slots) = free.first else { break }
          let jobs: [Job]
          do {
            jobs = try await self.store.claim(type: type, limit: slots, worker: self.configuration.workerID, lease: self.configuration.lease)
          } catch {
            self.logger.warning("Claiming jobs failed", metadata: ["error": "\(DatabaseErrors.describe(error))"])
            break
          }
          if jobs.count < slots { exhausted.insert(type) }
          for job in jobs {
            guard let handler = self.handlers[job.type] else { continue }
            self.metrics.claimed(job)
            let (stops, stop) = AsyncStream.makeStream(of: StopReason.self, bufferingPolicy: .bufferingOldest(1))
            self.state.withLock { $0.running[job.id] = Running(type: job.type, stop: stop) }
            group.addTask { await self.execute(job, handler: handler, stops: stops) }
          }
        }
      }
      // Shutting down: running jobs get the grace period (none when the task was cancelled),
      // then are released.
      let deadline = clock.now + self.configuration.shutdownGracePeriod
      while !Task.isCancelled && !self.state.withLock({ $0.running.isEmpty }) && clock.now < deadline {
        try? await Task.sleep(for: .milliseconds(20))
      }
      let left = self.state.withLock { Array($0.running.keys) }
      for id in left { self.stop(id, .release) }
    }
  }

  /// The types with free slots and how many, the emptiest first.
  private func freeSlots() -> [(type: String, slots: Int)] {
    let counts = self.state.withLock { state in
      state.running.values.reduce(into: [String: Int]()) { $0[$1.type, default: 0] += 1 }
    }
    return self.handlers.values
      .map { ($0.type, $0.concurrency - counts[$0.type, default: 0]) }
      .filter { $0.1 > 0 }
      .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
  }

  private enum RunResult: Sendable {
    case finished(JobStore.Outcome)
    case stopped(StopReason)

    var outcomeLabel: String {
      switch self {
      case .finished(.succeeded): "succeeded"
      case .finished(.failed(_, _, let permanent)): permanent ? "failed" : "error"
      case .finished(.cancelled), .stopped(.cancelRequested): "cancelled"
      case .stopped(.release): "released"
      case .stopped(.leaseLost): "lease_lost"
      }
    }
  }

  /// Runs one claimed job to its outcome, renewing its lease meanwhile.
  private func execute(_ job: Job, handler: JobHandler, stops: AsyncStream<StopReason>) async {
    let logger = {
      var logger = self.logger
      logger[metadataKey: "job_id"] = "\(job.id)"
      logger[metadataKey: "job_type"] = "\(job.type)"
      if let traceID = job.traceID { logger[metadataKey: "trace_id"] = "\(traceID)" }
      return logger
    }()
    let worker = self.configuration.workerID
    let started = ContinuousClock.now
    let result: RunResult = await withTaskGroup(of: RunResult?.self) { group in
      group.addTask {
        do {
          try await handler.run(job, logger)
          return .finished(.succeeded)
        } catch is CancellationError where Task.isCancelled {
          return nil  // stopped: the reason comes from the other task
        } catch let error as PermanentJobFailure {
          return .finished(.failed(error: error.description, retryAfter: .zero, permanent: true))
        } catch {
          return .finished(
            .failed(error: "\(error)", retryAfter: handler.backoff(afterAttempt: job.attempts), permanent: false))
        }
      }
      group.addTask {
        // Renews the lease; a cancellation or a lost lease ends the run. A worker that cannot
        // renew (the database is out of its reach) stops before its lease runs out, since another
        // worker may claim the job then.
        let clock = ContinuousClock()
        var renewed = clock.now
        while !Task.isCancelled {
          try? await Task.sleep(for: self.configuration.renewInterval)
          if Task.isCancelled { return nil }
          do {
            switch try await self.store.renew(id: job.id, worker: worker, lease: self.configuration.lease) {
            case nil: return .stopped(.leaseLost)
            case true?: return .stopped(.cancelRequested)
            case false?: renewed = clock.now
            }
          } catch {
            logger.warning("Renewing a job's lease failed", metadata: ["error": "\(DatabaseErrors.describe(error))"])
            if clock.now - renewed >= self.configuration.lease - self.configuration.renewInterval * 2 {
              return .stopped(.leaseLost)
            }
          }
        }
        return nil
      }
      group.addTask {
        for await reason in stops { return .stopped(reason) }
        return nil
      }
      var outcome: RunResult?
      while let next = await group.next() {
        if let next {
          outcome = outcome ?? next
          group.cancelAll()
        }
      }
      return outcome ?? .stopped(.release)
    }
    self.state.withLock { _ = $0.running.removeValue(forKey: job.id) }
    self.metrics.finished(job.type, result.outcomeLabel, since: started)
    do {
      switch result {
      case .finished(let outcome):
        try await self.store.finish(id: job.id, worker: worker, outcome: outcome)
      case .stopped(.cancelRequested):
        try await self.store.finish(id: job.id, worker: worker, outcome: .cancelled)
      case .stopped(.release):
        try await self.store.release(ids: [job.id], worker: worker)
      case .stopped(.leaseLost):
        logger.warning("A job's lease was lost while it ran; it runs again elsewhere")
      }
    } catch {
      // The lease runs out and another worker takes the job again.
      logger.error("Recording a job's outcome failed", metadata: ["error": "\(DatabaseErrors.describe(error))"])
    }
    self.wake.yield()
  }
}

/// The worker's metrics, one set per job type.
private final class JobMetrics: Sendable {
  private struct PerType: Sendable {
    var claimed: Counter
    var claimLatency: CoreMetrics.Timer
    var duration: CoreMetrics.Timer
    var running: Meter
    var outcomes: [String: Counter]
  }

  private let types: [String: PerType]

  init(types: [String], factory: any MetricsFactory) {
    var byType: [String: PerType] = [:]
    for type in types {
      let dimension = ("type", type)
      byType[type] = PerType(
        claimed: Counter(label: "jobs_claimed_total", dimensions: [dimension], factory: factory),
        claimLatency: CoreMetrics.Timer(label: "job_claim_latency_seconds", dimensions: [dimension], factory: factory),
        duration: CoreMetrics.Timer(label: "job_duration_seconds", dimensions: [dimension], factory: factory),
        running: Meter(label: "jobs_running", dimensions: [dimension], factory: factory),
        outcomes: Dictionary(
          uniqueKeysWithValues: ["succeeded", "error", "failed", "cancelled", "released", "lease_lost"].map {
            ($0, Counter(label: "jobs_finished_total", dimensions: [dimension, ("outcome", $0)], factory: factory))
          }))
    }
    self.types = byType
  }

  func claimed(_ job: Job) {
    guard let metrics = self.types[job.type] else { return }
    metrics.claimed.increment()
    metrics.running.increment()
    let due = max(job.scheduledAt, job.createdAt)
    metrics.claimLatency.recordNanoseconds(Int64(max(0, Date().timeIntervalSince(due)) * 1e9))
  }

  func finished(_ type: String, _ outcome: String, since start: ContinuousClock.Instant) {
    guard let metrics = self.types[type] else { return }
    metrics.running.decrement()
    metrics.duration.recordElapsed(since: start)
    metrics.outcomes[outcome]?.increment()
  }
}
