public import Foundation
public import Logging
internal import PostgresNIO

/// The SQL of the `jobs` and `job_events` tables. Every transition is one guarded statement
/// (the state it starts from, and for a running job the worker holding its lease) that also
/// records its event, so two workers can never both move the same job.
public struct JobStore: Sendable {
  /// The channel workers LISTEN on: `queued:<type>` when a job can be claimed, `cancel:<id>`
  /// when a running job is to stop.
  public static let channel = "platform_jobs"

  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  static let columns = """
    id, type, state, priority, dedup_key, attempts, max_attempts, scheduled_at, lease_holder, lease_expires_at, \
    cancel_requested, payload::text, last_error, trace_id, created_at, updated_at
    """
  private typealias Row = (
    UUID, String, String, Int, String?, Int, Int, Date, String?, Date?, Bool, String, String?, String?, Date, Date
  )

  private static func job(_ row: Row) throws -> Job {
    guard let state = JobState(rawValue: row.2) else { throw JobError.invalid("unknown state \(row.2)") }
    return Job(
      id: row.0, type: row.1, state: state, priority: row.3, dedupKey: row.4, attempts: row.5, maxAttempts: row.6,
      scheduledAt: row.7, leaseHolder: row.8, leaseExpiresAt: row.9, cancelRequested: row.10, payload: row.11,
      lastError: row.12, traceID: row.13, createdAt: row.14, updatedAt: row.15)
  }

  private static func jobs(_ rows: [PostgresRow]) throws -> [Job] {
    try rows.map { try Self.job($0.decode(Row.self)) }
  }

  /// Adds a job (and wakes the workers when the transaction commits); with a dedup key already
  /// used, returns the job that key made instead.
  /// - Returns: the job, and whether this call added it.
  public func enqueue(type: String, payload: String, options: JobOptions) async throws -> (job: Job, added: Bool) {
    try await self.transaction { connection in
      try await self.enqueue(type: type, payload: payload, options: options, in: connection)
    }
  }

  /// `enqueue` inside the caller's transaction on `connection`: the job exists exactly when the
  /// caller's own writes commit (and the workers are woken then).
  public func enqueue(
    type: String, payload: String, options: JobOptions, in connection: DatabaseConnection
  ) async throws -> (job: Job, added: Bool) {
    let runAt = options.runAt ?? Date()
    let inserted = try Self.jobs(
      try await connection.query(
        """
        INSERT INTO jobs (type, priority, dedup_key, max_attempts, scheduled_at, payload, trace_id)
        VALUES (\(type), \(options.priority), \(options.dedupKey), \(options.maxAttempts), \(runAt), \(payload)::jsonb, \(options.traceID))
        ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger))
    if let job = inserted.first {
      try await connection.query(
        """
        INSERT INTO job_events (job_id, event, attempt, trace_id) VALUES (\(job.id), 'enqueued', 0, \(job.traceID))
        """, logger: self.logger)
      try await connection.query("SELECT pg_notify(\(Self.channel), \("queued:" + type))", logger: self.logger)
      return (job, true)
    }
    guard let dedupKey = options.dedupKey,
      let earlier = try Self.jobs(
        try await connection.query(
          "SELECT \(unescaped: Self.columns) FROM jobs WHERE dedup_key = \(dedupKey)", logger: self.logger)
      ).first
    else { throw JobError.invalid("the insert returned nothing") }
    return (earlier, false)
  }

  public func find(id: UUID) async throws -> Job? {
    try Self.jobs(
      try await self.database.query("SELECT \(unescaped: Self.columns) FROM jobs WHERE id = \(id)", logger: self.logger)
    ).first
  }

  /// Claims up to `limit` due queued jobs of `type`, highest priority first (oldest first), for
  /// `worker` with a lease of `lease`. One type per statement: the claim index then yields the
  /// rows in order instead of sorting every queued row.
  public func claim(type: String, limit: Int, worker: String, lease: Duration) async throws -> [Job] {
    try Self.jobs(
      try await self.database.query(
        """
        WITH picked AS (
          SELECT id FROM jobs
          WHERE state = 'queued' AND type = \(type) AND scheduled_at <= now()
          ORDER BY priority DESC, scheduled_at, id
          LIMIT \(limit)
          FOR UPDATE SKIP LOCKED
        ), claimed AS (
          UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, lease_holder = \(worker),
            lease_expires_at = now() + \(lease.wholeMilliseconds) * interval '1 millisecond', updated_at = now()
          FROM picked WHERE jobs.id = picked.id
          RETURNING jobs.*
        ), recorded AS (
          INSERT INTO job_events (job_id, event, attempt, worker, trace_id)
          SELECT id, 'claimed', attempts, \(worker), trace_id FROM claimed
        )
        SELECT \(unescaped: Self.columns) FROM claimed ORDER BY priority DESC, scheduled_at, id
        """, logger: self.logger)
    )
  }

  /// Extends the lease of `worker` on running job `id`.
  /// - Returns: whether cancellation was requested; nil when the lease is no longer the
  ///   worker's (it expired and the job went back to the queue).
  public func renew(id: UUID, worker: String, lease: Duration) async throws -> Bool? {
    var cancelRequested: Bool?
    for row in try await self.database.query(
      """
      UPDATE jobs SET lease_expires_at = now() + \(lease.wholeMilliseconds) * interval '1 millisecond', updated_at = now()
      WHERE id = \(id) AND state = 'running' AND lease_holder = \(worker)
      RETURNING cancel_requested
      """, logger: self.logger
    ) {
      (cancelRequested,) = try row.decode((Bool,).self)
    }
    return cancelRequested
  }

  /// How a running job ended, as its worker reports it.
  public enum Outcome: Sendable, Equatable {
    case succeeded
    /// Retried after `retryAfter` while attempts remain; failed for good otherwise or when
    /// `permanent`.
    case failed(error: String, retryAfter: Duration, permanent: Bool)
    case cancelled
  }

  /// Records how `worker`'s run of job `id` ended.
  /// - Returns: the job's new state; nil when the lease was no longer the worker's (the result
  ///   is dropped: the job went back to the queue and runs again).
  @discardableResult
  public func finish(id: UUID, worker: String, outcome: Outcome) async throws -> JobState? {
    let query: PostgresQuery
    switch outcome {
    case .succeeded, .cancelled:
      // A final state whose event has the same name.
      let final = outcome == .succeeded ? JobState.succeeded.rawValue : JobState.cancelled.rawValue
      query = """
        WITH done AS (
          UPDATE jobs SET state = \(final), lease_holder = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
          WHERE id = \(id) AND state = 'running' AND lease_holder = \(worker)
          RETURNING id, state, attempts, trace_id
        ), recorded AS (
          INSERT INTO job_events (job_id, event, attempt, worker, trace_id) SELECT id, state, attempts, \(worker), trace_id FROM done
        )
        SELECT state FROM done
        """
    case .failed(let error, let retryAfter, let permanent):
      let message = String(error.prefix(2000))
      query = """
        WITH done AS (
          UPDATE jobs SET
            state = CASE WHEN cancel_requested THEN 'cancelled' WHEN \(permanent) OR attempts >= max_attempts THEN 'failed'
              ELSE 'queued' END,
            scheduled_at = CASE WHEN cancel_requested OR \(permanent) OR attempts >= max_attempts THEN scheduled_at
              ELSE now() + \(retryAfter.wholeMilliseconds) * interval '1 millisecond' END,
            finished_at = CASE WHEN cancel_requested OR \(permanent) OR attempts >= max_attempts THEN now() END,
            lease_holder = NULL, lease_expires_at = NULL, last_error = \(message), updated_at = now()
          WHERE id = \(id) AND state = 'running' AND lease_holder = \(worker)
          RETURNING id, state, attempts, trace_id
        ), recorded AS (
          INSERT INTO job_events (job_id, event, attempt, worker, detail, trace_id)
          SELECT id, CASE WHEN state = 'queued' THEN 'retried' ELSE state END, attempts, \(worker), \(message), trace_id FROM done
        )
        SELECT state FROM done
        """
    }
    var state: JobState?
    for row in try await self.database.query(query, logger: self.logger) {
      state = JobState(rawValue: try row.decode(String.self))
    }
    if state == .queued { try await self.notifyQueued() }
    return state
  }

  /// Gives `worker`'s running jobs `ids` back to the queue unfinished (graceful shutdown); the
  /// attempt does not count.
  public func release(ids: [UUID], worker: String) async throws {
    guard !ids.isEmpty else { return }
    try await self.database.query(
      """
      WITH released AS (
        UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
          finished_at = CASE WHEN cancel_requested THEN now() END,
          attempts = CASE WHEN cancel_requested THEN attempts ELSE greatest(attempts - 1, 0) END,
          lease_holder = NULL, lease_expires_at = NULL, scheduled_at = now(), updated_at = now()
        WHERE id = ANY(\(ids)) AND state = 'running' AND lease_holder = \(worker)
        RETURNING id, state, attempts, trace_id
      )
      INSERT INTO job_events (job_id, event, attempt, worker, trace_id)
      SELECT id, CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE 'released' END,
        CASE WHEN state = 'cancelled' THEN attempts ELSE attempts + 1 END, \(worker), trace_id FROM released
      """, logger: self.logger)
    try await self.notifyQueued()
  }

  /// Puts back the running jobs whose lease expired (their worker crashed or was cut off), or
  /// fails them when that was their last attempt.
  /// - Returns: how many were put back or failed.
  public func recoverExpiredLeases() async throws -> Int {
    let recovered = try await self.database.query(
      """
      WITH expired AS (
        UPDATE jobs SET
          state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
          finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN now() END,
          lease_holder = NULL, lease_expires_at = NULL, scheduled_at = now(), updated_at = now(),
          last_error = 'its worker stopped renewing the lease (crashed or cut off)'
        WHERE id IN (
          SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED
        )
        RETURNING id, state, attempts, trace_id
      )
      INSERT INTO job_events (job_id, event, attempt, detail, trace_id)
      SELECT id, CASE WHEN state = 'queued' THEN 'lease_expired' ELSE state END, attempts, 'lease expired', trace_id FROM expired
      RETURNING job_id
      """, logger: self.logger
    ).count
    if recovered > 0 { try await self.notifyQueued() }
    return recovered
  }

  /// Cancels job `id`: a queued job at once; a running one is flagged, and its worker stops it
  /// (told by NOTIFY, and by its next lease renewal at the latest).
  /// - Returns: the job as it is after the request.
  /// - Throws: `JobError.notFound`.
  public func cancel(id: UUID) async throws -> Job {
    try await self.transaction { connection in
      guard
        let job = try Self.jobs(
          try await connection.query(
            "SELECT \(unescaped: Self.columns) FROM jobs WHERE id = \(id) FOR UPDATE", logger: self.logger)
        ).first
      else { throw JobError.notFound }
      switch job.state {
      case .queued:
        try await connection.query(
          """
          UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now() WHERE id = \(id)
          """, logger: self.logger)
        try await connection.query(
          "INSERT INTO job_events (job_id, event, attempt, trace_id) VALUES (\(id), 'cancelled', \(job.attempts), \(job.traceID))",
          logger: self.logger)
      case .running:
        try await connection.query(
          "UPDATE jobs SET cancel_requested = true, updated_at = now() WHERE id = \(id)", logger: self.logger)
        try await connection.query(
          "SELECT pg_notify(\(Self.channel), \("cancel:" + id.lowercasedString))", logger: self.logger)
      case .succeeded, .failed, .cancelled:
        break
      }
      return try Self.jobs(
        try await connection.query("SELECT \(unescaped: Self.columns) FROM jobs WHERE id = \(id)", logger: self.logger)
      ).first ?? job
    }
  }

  /// A transaction whose own errors (`JobError`) come out as they are, not wrapped.
  private func transaction<Result: Sendable>(_ body: (DatabaseConnection) async throws -> sending Result) async throws -> Result {
    try await self.database.withTransaction(logger: self.logger, body)
  }

  private func notifyQueued() async throws {
    try await self.database.query("SELECT pg_notify(\(Self.channel), 'queued:*')", logger: self.logger)
  }
}
