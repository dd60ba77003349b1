public import Foundation
public import Logging
public import PlatformCore
internal import NIOCore
internal import PostgresNIO

/// The SQL of executions and execution_logs in agent_db. Status changes are conditional on the
/// lifecycle (`Execution.Status.predecessors`), so two writers never both move one execution.
public struct ExecutionStore: Sendable {
  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  /// Where a page of executions ends: newest first.
  public struct ListCursor: Codable, Sendable, Equatable {
    public var createdAt: Date
    public var id: UUID
  }

  static let columns = """
    id, agent_id, user_id, workflow_id, status, progress, input::text, output::text, error::text, execution_time_ms, tokens_used,
    cost::float8, created_at, started_at, completed_at, retry_count, max_retries, parent_execution_id, callback_url,
    callback_events
    """

  static func execution(_ row: PostgresRow) throws -> Execution {
    let c = try row.decode(
      (UUID, UUID, UUID, UUID?, String, Int, String, String?, String?, Int?, Int?, Double?, Date, Date?, Date?, Int, Int, UUID?).self)
    let callback = try row.decode((String?, [String]).self, startingAt: 18)
    return Execution(
      id: c.0, agentID: c.1, userID: c.2, workflowID: c.3, status: Execution.Status(rawValue: c.4) ?? .failed, progress: c.5,
      input: (try? JSONValue(jsonText: c.6)) ?? .object([:]), output: c.7.flatMap { try? JSONValue(jsonText: $0) },
      error: Execution.Failure(stored: c.8.flatMap { try? JSONValue(jsonText: $0) }), executionMilliseconds: c.9, tokensUsed: c.10,
      cost: c.11, createdAt: c.12, startedAt: c.13, completedAt: c.14, retryCount: c.15, maxRetries: c.16, parentID: c.17,
      callbackURL: callback.0, callbackEvents: callback.0 == nil ? nil : callback.1)
  }

  /// What a new execution is.
  public struct NewExecution: Sendable {
    public var agentID: UUID
    public var userID: UUID
    public var workflowID: UUID?
    public var parentID: UUID?
    public var input: JSONValue
    public var retryCount: Int
    public var maxRetries: Int
    public var requestID: UUID?
    public var callback: ExecutionCallback?
  }

  /// Inserts the execution, pending, with its first log `lines` in the same statement, and runs
  /// `then` in the same transaction (the job that runs it is enqueued there, so neither exists
  /// without the other); without `then`, the statement is the whole write and needs no
  /// transaction. A request id the user already used returns that execution (`created` false),
  /// and neither the lines nor `then` are written.
  public func insert(
    _ new: NewExecution, lines: [ExecutionLog.Pending] = [], then: ((DatabaseConnection, Execution) async throws -> Void)? = nil
  ) async throws -> (execution: Execution, created: Bool) {
    let insert: PostgresQuery = """
      WITH inserted AS (
        INSERT INTO executions (agent_id, user_id, workflow_id, parent_execution_id, input, retry_count, max_retries, request_id,
          callback_url, callback_events, callback_secret)
        VALUES (\(new.agentID), \(new.userID), \(new.workflowID), \(new.parentID), \(new.input.jsonText)::jsonb, \(new.retryCount),
          \(new.maxRetries), \(new.requestID), \(new.callback?.url), \(new.callback?.events ?? []), \(new.callback?.sealedSecret))
        ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
        RETURNING \(unescaped: Self.columns)),
      \(loggingInserted: lines)
      SELECT \(unescaped: Self.columns) FROM inserted
      """
    let earlier: PostgresQuery =
      "SELECT \(unescaped: Self.columns) FROM executions WHERE user_id = \(new.userID) AND request_id = \(new.requestID)"
    /// The new execution, or the earlier one with the request id, through `query`.
    func insertOrEarlier(
      _ query: (PostgresQuery) async throws -> PostgresRow?, then: ((Execution) async throws -> Void)? = nil
    ) async throws -> (execution: Execution, created: Bool) {
      if let row = try await query(insert) {
        let execution = try Self.execution(row)
        try await then?(execution)
        return (execution, true)
      }
      guard let row = try await query(earlier) else { throw AgentError.unavailable("The execution could not be created; retry") }
      return (try Self.execution(row), false)
    }
    guard let then else {
      return try await insertOrEarlier { try await self.database.query($0, logger: self.logger).first }
    }
    return try await self.database.withTransaction(logger: self.logger) { connection in
      try await insertOrEarlier({ try await connection.query($0, logger: self.logger).first }) { try await then(connection, $0) }
    }
  }

  /// Stores an execution's files (in its creating transaction).
  public func attach(_ files: [ExecutionFile], to id: UUID, in connection: DatabaseConnection) async throws {
    for file in files {
      try await connection.query(
        """
        INSERT INTO execution_files (execution_id, name, content_type, content)
        VALUES (\(id), \(file.name), \(file.contentType), \(ByteBuffer(bytes: file.content)))
        """, logger: self.logger)
    }
  }

  /// Gives a retry its parent's files (in its creating transaction).
  public func copyFiles(from parent: UUID, to child: UUID, in connection: DatabaseConnection) async throws {
    try await connection.query(
      """
      INSERT INTO execution_files (execution_id, name, content_type, content)
      SELECT \(child), name, content_type, content FROM execution_files WHERE execution_id = \(parent)
      """, logger: self.logger)
  }

  /// Another retry of `parent` than `child`, if there is one. Takes a lock on the parent until
  /// the transaction ends, so that of two retries created at once the second sees the first (an
  /// advisory lock: the child's insert already holds a key-share lock on the parent's row, and
  /// two of those upgrading to an update lock would deadlock).
  public func retryOfParent(_ parent: UUID, other child: UUID, in connection: DatabaseConnection) async throws -> UUID? {
    try await connection.query(
      "SELECT pg_advisory_xact_lock(hashtextextended(\("execution-retry:" + parent.lowercasedString), 0))", logger: self.logger)
    return try await connection.query(
      """
      SELECT id FROM executions
      WHERE parent_execution_id = \(parent) AND retry_count > 0 AND id <> \(child) AND user_id = (SELECT user_id FROM executions WHERE id = \(parent))
      LIMIT 1
      """, logger: self.logger
    ).first.map { try $0.decode(UUID.self) }
  }

  /// Whether the execution was started with files.
  public func hasFiles(_ id: UUID) async throws -> Bool {
    try await self.database.query("SELECT EXISTS (SELECT 1 FROM execution_files WHERE execution_id = \(id))", logger: self.logger)
      .first?.decode(Bool.self) ?? false
  }

  /// An execution's files, in name order.
  public func files(of id: UUID) async throws -> [ExecutionFile] {
    try await self.database.query(
      "SELECT name, content_type, content FROM execution_files WHERE execution_id = \(id) ORDER BY name", logger: self.logger
    ).map { row in
      let (name, type, content) = try row.decode((String, String, ByteBuffer).self)
      return ExecutionFile(name: name, contentType: type, content: Data(content.readableBytesView))
    }
  }

  /// Where the execution's events go, with the sealed secret; nil without a callback.
  public func callback(of id: UUID) async throws -> ExecutionCallback? {
    guard let row = try await self.database.query(
      "SELECT callback_url, callback_events, callback_secret FROM executions WHERE id = \(id)", logger: self.logger
    ).first else { return nil }
    let (url, events, secret) = try row.decode((String?, [String], String?).self)
    guard let url, let secret else { return nil }
    return ExecutionCallback(url: url, events: events, sealedSecret: secret)
  }

  /// The user's execution (nil for another user's or none).
  public func execution(_ id: UUID, owner: UUID) async throws -> Execution? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM executions WHERE id = \(id) AND user_id = \(owner)", logger: self.logger
    ).first.map(Self.execution)
  }

  public func execution(_ id: UUID) async throws -> Execution? {
    try await self.database.query("SELECT \(unescaped: Self.columns) FROM executions WHERE id = \(id)", logger: self.logger)
      .first.map(Self.execution)
  }

  public func list(
    owner: UUID, agentID: UUID?, status: Execution.Status?, workflowID: UUID?, after: ListCursor?, limit: Int
  ) async throws -> (executions: [Execution], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM executions
      WHERE user_id = \(owner) AND (\(agentID)::uuid IS NULL OR agent_id = \(agentID))
        AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue)) AND (\(workflowID)::uuid IS NULL OR workflow_id = \(workflowID))
        AND (\(after?.createdAt)::timestamptz IS NULL OR (created_at, id) < (\(after?.createdAt ?? Date()), \(after?.id ?? UUID())))
      ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      """
      SELECT count(*)::int8 FROM executions
      WHERE user_id = \(owner) AND (\(agentID)::uuid IS NULL OR agent_id = \(agentID))
        AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue)) AND (\(workflowID)::uuid IS NULL OR workflow_id = \(workflowID))
      """, logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.execution), Int(total), rows.count > limit)
  }

  /// Moves a pending execution to running; nil when it is not pending any more (cancelled, or
  /// another worker took it). A running one is taken back only by `resume`.
  public func start(_ id: UUID, then: StatusChange? = nil) async throws -> Execution? {
    try await self.changing(
      """
      UPDATE executions SET status = 'running', started_at = now(), progress = 0
      WHERE id = \(id) AND status = 'pending' RETURNING \(unescaped: Self.columns)
      """, then: then
    ).first
  }

  /// What else happens in the transaction that changes an execution's status (its callback is
  /// queued there, so that a status change and its notice are never one without the other).
  public typealias StatusChange = @Sendable (DatabaseConnection, Execution) async throws -> Void

  /// The executions `query` changed (and returned); `then` for each in the same transaction.
  private func changing(_ query: PostgresQuery, then: StatusChange?) async throws -> [Execution] {
    guard let then else { return try await self.database.query(query, logger: self.logger).map(Self.execution) }
    return try await self.database.withTransaction(logger: self.logger) { connection in
      let changed = try await connection.query(query, logger: self.logger).map(Self.execution)
      for execution in changed { try await then(connection, execution) }
      return changed
    }
  }

  /// A running execution whose worker died is started again from the beginning (its job was
  /// claimed by another worker); its progress goes back to zero.
  public func resume(_ id: UUID) async throws -> Execution? {
    try await self.database.query(
      """
      UPDATE executions SET progress = 0, started_at = now()
      WHERE id = \(id) AND status = 'running' RETURNING \(unescaped: Self.columns)
      """, logger: self.logger
    ).first.map(Self.execution)
  }


  /// Ends the execution with `status` if the lifecycle allows it from where it is.
  /// - Returns: the finished execution, or nil when it had already ended (a cancel won).
  public func finish(
    _ id: UUID, status: Execution.Status, output: JSONValue?, error: Execution.Failure?, milliseconds: Int?, tokens: Int?, cost: Double?,
    lines: [ExecutionLog.Pending] = [], progress: Int? = nil, then: StatusChange? = nil
  ) async throws -> Execution? {
    try await self.changing(
      """
      WITH \(logging: lines, of: id)
      UPDATE executions SET status = \(status.rawValue), output = \(output?.jsonText)::jsonb, error = \(error?.json.jsonText)::jsonb,
        execution_time_ms = \(milliseconds), tokens_used = \(tokens), cost = \(cost)::numeric(10, 4), completed_at = now(),
        progress = CASE WHEN \(status.rawValue) = 'completed' THEN 100 ELSE greatest(progress, \(progress ?? 0)) END
      WHERE id = \(id) AND status = ANY(\(status.predecessors.map(\.rawValue)))
      RETURNING \(unescaped: Self.columns)
      """, then: then
    ).first
  }

  /// Cancels the user's pending or running execution.
  /// - Returns: the execution as it is now (cancelled, or finished otherwise before), nil when
  ///   there is none of the user's.
  public func cancel(_ id: UUID, owner: UUID, then: StatusChange? = nil) async throws -> Execution? {
    let changed = try await self.changing(
      """
      UPDATE executions SET status = 'cancelled', completed_at = now()
      WHERE id = \(id) AND user_id = \(owner) AND status IN ('pending', 'running') RETURNING \(unescaped: Self.columns)
      """, then: then)
    if let cancelled = changed.first { return cancelled }
    return try await self.execution(id, owner: owner)
  }

  /// Executions no one is running any more fail as interrupted: pending or running for longer
  /// than the longest run, with no queued or running job to (re)start them (a sync run whose
  /// service died, a job out of attempts). Returns them.
  public func failInterrupted(olderThan age: Duration, then: StatusChange? = nil) async throws -> [Execution] {
    let error = Execution.Failure(code: "interrupted", message: "The service running it stopped before the execution finished")
    return try await self.changing(
      """
      UPDATE executions e SET status = 'failed', completed_at = now(), error = \(error.json.jsonText)::jsonb
      WHERE e.status IN ('pending', 'running')
        AND coalesce(e.started_at, e.created_at) < now() - make_interval(secs => \(Double(age.components.seconds)))
        AND NOT EXISTS (
          SELECT 1 FROM jobs j WHERE j.dedup_key = 'execution:' || e.id::text AND j.state IN ('queued', 'running'))
      RETURNING \(unescaped: Self.columns)
      """, then: then)
  }

  // MARK: - Logs

  /// Appends a line (message and metadata cut to their caps).
  public func log(_ executionID: UUID, _ level: ExecutionLog.Level, _ message: String, metadata: [String: JSONValue] = [:]) async throws {
    try await self.append([ExecutionLog.Pending(level, message, metadata: metadata)], progress: nil, to: executionID)
  }

  /// Appends lines, in order, and raises a running execution's progress to `progress`: one
  /// statement (on `connection` when given, inside the caller's transaction).
  public func append(
    _ lines: [ExecutionLog.Pending], progress: Int?, to id: UUID, in connection: DatabaseConnection? = nil
  ) async throws {
    let query: PostgresQuery = """
      WITH \(logging: lines, of: id)
      UPDATE executions SET progress = greatest(progress, \(progress ?? 0))
      WHERE id = \(id) AND status = 'running' AND \(progress)::int IS NOT NULL
      """
    if let connection {
      try await connection.query(query, logger: self.logger)
    } else {
      try await self.database.query(query, logger: self.logger)
    }
  }


  /// An execution's lines after `afterID`, oldest first, at `minLevel` or above. The time range
  /// is bounded by the execution's own (its creation to its end, or now), so only the partitions
  /// of those months are read.
  public func logs(of execution: Execution, minLevel: ExecutionLog.Level, afterID: Int64, limit: Int) async throws -> [ExecutionLog] {
    let levels = ExecutionLog.Level.allCases.filter { $0 >= minLevel }.map(\.rawValue)
    let from = execution.createdAt.addingTimeInterval(-1)
    let until = (execution.completedAt ?? Date()).addingTimeInterval(60)
    return try await self.database.query(
      """
      SELECT id, execution_id, level, message, coalesce(metadata, '{}')::text, created_at FROM execution_logs
      WHERE execution_id = \(execution.id) AND created_at >= \(from) AND created_at < \(until) AND id > \(afterID)
        AND level = ANY(\(levels))
      ORDER BY id LIMIT \(limit)
      """, logger: self.logger
    ).map { row in
      let c = try row.decode((Int64, UUID, String, String, String, Date).self)
      return ExecutionLog(
        id: c.0, executionID: c.1, level: ExecutionLog.Level(rawValue: c.2) ?? .info, message: c.3,
        metadata: (try? JSONValue(jsonText: c.4)) ?? .object([:]), createdAt: c.5)
    }
  }
}

extension PostgresQuery.StringInterpolation {
  /// The common table expression `logged AS (INSERT …)` that writes `lines` of execution `id` in
  /// order (their ids follow it), to put before a statement that changes the execution too.
  mutating func appendInterpolation(logging lines: [ExecutionLog.Pending], of id: UUID) {
    self.appendLiteral("logged AS (INSERT INTO execution_logs (execution_id, level, message, metadata, created_at) SELECT ")
    self.appendInterpolation(id)
    self.appendLiteral(", line.level, line.message, line.metadata::jsonb, line.at FROM unnest(")
    self.appendLines(lines)
  }

  /// The same for the execution of the common table expression `inserted` (none if it is empty).
  mutating func appendInterpolation(loggingInserted lines: [ExecutionLog.Pending]) {
    self.appendLiteral(
      "logged AS (INSERT INTO execution_logs (execution_id, level, message, metadata, created_at) SELECT inserted.id, line.level, line.message, line.metadata::jsonb, line.at FROM inserted, unnest("
    )
    self.appendLines(lines)
  }

  private mutating func appendLines(_ lines: [ExecutionLog.Pending]) {
    self.appendInterpolation(lines.map(\.level.rawValue))
    self.appendLiteral("::text[], ")
    self.appendInterpolation(lines.map(\.message))
    self.appendLiteral("::text[], ")
    self.appendInterpolation(lines.map(\.metadata))
    self.appendLiteral("::text[], ")
    self.appendInterpolation(lines.map(\.at))
    self.appendLiteral("::timestamptz[]) WITH ORDINALITY AS line(level, message, metadata, at, n) ORDER BY line.n RETURNING id)")
  }
}
