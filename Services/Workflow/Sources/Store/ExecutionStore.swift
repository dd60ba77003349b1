public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of workflow executions, their node rows and their history. A runner writes node
/// state only while its fencing token is the run's `runner_token`: a runner that lost the run
/// (its process stalled past the job's lease and another took over) can commit nothing more.
public struct ExecutionStore: Sendable {
  let database: Database
  let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  public struct ListCursor: Codable, Sendable, Equatable {
    public var createdAt: Date
    public var id: UUID
  }

  static let columns = """
    id, workflow_id, snapshot_id, workflow_version, user_id, status, input::text, output::text, error::text, current_node_id,
    coalesce(total_nodes, 0), completed_nodes, execution_time_ms, cost::float8, created_at, started_at, completed_at, resume_count, schedule_id,
    deadline_at
    """

  static func execution(_ row: PostgresRow) throws -> WorkflowExecution {
    let c = try row.decode((UUID, UUID, UUID, Int, UUID, String, String, String?, String?, String?, Int, Int, Int?, Double?, Date, Date?, Date?).self)
    let (resumes, schedule, deadline) = try row.decode((Int, String?, Date?).self, startingAt: 17)
    return WorkflowExecution(
      id: c.0, workflowID: c.1, snapshotID: c.2, workflowVersion: c.3, userID: c.4, status: .init(rawValue: c.5) ?? .failed,
      input: (try? JSONValue(jsonText: c.6)) ?? .object([:]), output: c.7.flatMap { try? JSONValue(jsonText: $0) },
      error: NodeFailure(stored: c.8.flatMap { try? JSONValue(jsonText: $0) }), currentNodeID: c.9, totalNodes: c.10, completedNodes: c.11,
      executionMilliseconds: c.12, cost: c.13, createdAt: c.14, startedAt: c.15, completedAt: c.16, resumeCount: resumes, scheduleID: schedule,
      deadline: deadline)
  }

  static let nodeColumns = """
    node_id, node_type, status, attempts, input::text, output::text, error::text, data_override::text, child_execution_id, cost::float8, start_seq,
    started_at, completed_at, execution_time_ms
    """

  static func node(_ row: PostgresRow) throws -> NodeExecution {
    let c = try row.decode((String, String, String, Int, String?, String?, String?, String?, String?, Double?, Int64?, Date?, Date?, Int?).self)
    func json(_ text: String?) -> JSONValue? { text.flatMap { try? JSONValue(jsonText: $0) } }
    return NodeExecution(
      nodeID: c.0, nodeType: c.1, status: .init(rawValue: c.2) ?? .failed, attempts: c.3, input: json(c.4), output: json(c.5),
      error: NodeFailure(stored: json(c.6)), dataOverride: json(c.7)?.objectValue, childExecutionID: c.8, cost: c.9, startSequence: c.10,
      startedAt: c.11, completedAt: c.12, executionMilliseconds: c.13)
  }

  /// What a new run is.
  public struct NewExecution: Sendable {
    public var workflowID: UUID
    public var snapshotID: UUID
    public var workflowVersion: Int
    public var userID: UUID
    public var input: JSONValue
    /// Every node that can run, with its type.
    public var nodes: [(id: String, type: String)]
    public var requestID: UUID?
    public var scheduleID: String?
    public var deadline: Date
    public var credential: (keyID: String, sealed: String)?
  }

  /// Creates the run and its node rows, then `then` in the same transaction (which enqueues its
  /// job). A request id already used returns that run instead.
  public func insert(
    _ new: NewExecution, then: (DatabaseConnection, WorkflowExecution) async throws -> Void
  ) async throws -> (execution: WorkflowExecution, created: Bool) {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        INSERT INTO workflow_executions (workflow_id, snapshot_id, workflow_version, user_id, input, total_nodes, request_id, schedule_id, deadline_at,
          credential_key_id, credential_sealed)
        VALUES (\(new.workflowID), \(new.snapshotID), \(new.workflowVersion), \(new.userID), \(new.input.jsonText)::jsonb, \(new.nodes.count),
          \(new.requestID), \(new.scheduleID), \(new.deadline), \(new.credential?.keyID), \(new.credential?.sealed))
        ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      guard let row = rows.first else {
        guard let requestID = new.requestID,
          let existing = try await connection.query(
            "SELECT \(unescaped: Self.columns) FROM workflow_executions WHERE user_id = \(new.userID) AND request_id = \(requestID)", logger: self.logger
          ).first.map(Self.execution)
        else { throw ServiceError.unavailable("The execution could not be created") }
        return (existing, false)
      }
      let execution = try Self.execution(row)
      try await connection.query(
        """
        INSERT INTO workflow_node_executions (execution_id, node_id, node_type)
        SELECT \(execution.id), node.id, node.type FROM unnest(\(new.nodes.map(\.id))::text[], \(new.nodes.map(\.type))::text[]) AS node(id, type)
        """, logger: self.logger)
      try await then(connection, execution)
      return (execution, true)
    }
  }

  public func execution(_ id: UUID, owner: UUID? = nil) async throws -> WorkflowExecution? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM workflow_executions WHERE id = \(id) AND (\(owner)::uuid IS NULL OR user_id = \(owner))",
      logger: self.logger
    ).first.map(Self.execution)
  }

  /// The run's node rows in start order (those not started last, by id).
  public func nodes(of id: UUID) async throws -> [NodeExecution] {
    try await self.database.query(
      """
      SELECT \(unescaped: Self.nodeColumns) FROM workflow_node_executions WHERE execution_id = \(id)
      ORDER BY start_seq NULLS LAST, node_id
      """, logger: self.logger
    ).map(Self.node)
  }

  public func credential(of id: UUID) async throws -> (keyID: String, sealed: String)? {
    guard let row = try await self.database.query(
      "SELECT credential_key_id, credential_sealed FROM workflow_executions WHERE id = \(id)", logger: self.logger
    ).first else { return nil }
    let (keyID, sealed) = try row.decode((String?, String?).self)
    guard let keyID, let sealed else { return nil }
    return (keyID, sealed)
  }

  public func list(
    owner: UUID, workflowID: UUID?, status: WorkflowExecution.Status?, after: ListCursor?, limit: Int
  ) async throws -> (executions: [WorkflowExecution], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM workflow_executions
      WHERE user_id = \(owner) AND (\(workflowID)::uuid IS NULL OR workflow_id = \(workflowID)) AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue))
        AND (\(after?.createdAt)::timestamptz IS NULL OR (created_at, id) < (\(after?.createdAt ?? Date()), \(after?.id ?? UUID())))
      ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      """
      SELECT count(*)::int8 FROM workflow_executions
      WHERE user_id = \(owner) AND (\(workflowID)::uuid IS NULL OR workflow_id = \(workflowID)) AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue))
      """, logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.execution), Int(total), rows.count > limit)
  }

  /// Takes the run for a runner: pending or running becomes running under `token` (a previous
  /// runner's token is replaced, fencing it out). Nil when the run has finished (or is gone).
  public func claim(_ id: UUID, token: UUID) async throws -> WorkflowExecution? {
    try await self.database.query(
      """
      UPDATE workflow_executions SET status = 'running', runner_token = \(token), started_at = coalesce(started_at, now())
      WHERE id = \(id) AND status IN ('pending', 'running')
      RETURNING \(unescaped: Self.columns)
      """, logger: self.logger
    ).first.map(Self.execution)
  }

  /// A node's move, written with its history entry and the run's counters in one statement,
  /// only while `token` holds the run and the node is in one of `from`.
  public struct NodeChange: Sendable {
    public var nodeID: String
    public var from: [NodeExecution.Status]
    public var to: NodeExecution.Status
    public var event: NodeEvent.Kind?
    public var message: String?
    public var input: JSONValue?
    public var output: JSONValue?
    public var error: NodeFailure?
    public var childExecutionID: String?
    public var cost: Double?
    public var milliseconds: Int?
    /// Counts an attempt (a start).
    public var startsAttempt = false
    /// Records a `started` event before `event` (a node run and finished in one write).
    public var alsoStarted = false
    var eventKinds: [String] { (self.alsoStarted ? ["started"] : []) + (self.event.map { [$0.rawValue] } ?? []) }
    var eventMessages: [String] { (self.alsoStarted ? [""] : []) + (self.event.map { _ in [self.message ?? ""] } ?? []) }
    /// Written only while the run is RUNNING (starts: nothing new begins in a cancelled run;
    /// ends of attempts are recorded whatever the run's status, so that a resume knows them).
    public var requiresRunningRun: Bool { self.startsAttempt }

    public init(
      _ nodeID: String, from: [NodeExecution.Status], to: NodeExecution.Status, event: NodeEvent.Kind?, message: String? = nil, input: JSONValue? = nil,
      output: JSONValue? = nil, error: NodeFailure? = nil, childExecutionID: String? = nil, cost: Double? = nil, milliseconds: Int? = nil,
      startsAttempt: Bool = false, alsoStarted: Bool = false
    ) {
      self.alsoStarted = alsoStarted
      self.nodeID = nodeID
      self.from = from
      self.to = to
      self.event = event
      self.message = message
      self.input = input
      self.output = output
      self.error = error
      self.childExecutionID = childExecutionID
      self.cost = cost
      self.milliseconds = milliseconds
      self.startsAttempt = startsAttempt
    }
  }

  /// The outcome of a change: whether it was written, and the run's status now.
  public struct ChangeResult: Sendable, Equatable {
    public var written: Bool
    public var runStatus: WorkflowExecution.Status?
    public var attempts: Int
  }

  /// Writes `change` if `token` still holds run `id`.
  public func change(_ id: UUID, token: UUID, _ change: NodeChange) async throws -> ChangeResult {
    let settles = change.to == .completed || change.to == .skipped
    let rows = try await self.database.query(
      """
      WITH run AS (
          -- Locked: a claim that replaced the token commits first or waits, and the token and
          -- status are checked on the row as it is then.
          SELECT id, status FROM workflow_executions
          WHERE id = \(id) AND runner_token = \(token) AND (status = 'running' OR NOT \(change.requiresRunningRun))
          FOR UPDATE),
        node AS (
          UPDATE workflow_node_executions n SET status = \(change.to.rawValue),
            attempts = n.attempts + \(change.startsAttempt ? 1 : 0),
            input = coalesce(\(change.input?.jsonText)::jsonb, n.input),
            output = CASE WHEN \(change.startsAttempt) THEN \(change.output?.jsonText)::jsonb ELSE coalesce(\(change.output?.jsonText)::jsonb, n.output) END,
            error = CASE WHEN \(change.startsAttempt) THEN \(change.error?.json.jsonText)::jsonb ELSE coalesce(\(change.error?.json.jsonText)::jsonb, n.error) END,
            child_execution_id = coalesce(\(change.childExecutionID), n.child_execution_id),
            cost = coalesce(\(change.cost)::numeric, n.cost),
            start_seq = CASE WHEN \(change.startsAttempt) THEN (extract(epoch FROM clock_timestamp()) * 1000000)::int8 ELSE n.start_seq END,
            started_at = CASE WHEN \(change.startsAttempt) THEN clock_timestamp() ELSE n.started_at END,
            completed_at = CASE WHEN \(change.to.rawValue) IN ('completed', 'failed', 'skipped', 'cancelled') THEN clock_timestamp() ELSE NULL END,
            execution_time_ms = coalesce(\(change.milliseconds), n.execution_time_ms)
          FROM run
          WHERE n.execution_id = run.id AND n.node_id = \(change.nodeID) AND n.status = ANY(\(change.from.map(\.rawValue))::text[])
          RETURNING n.node_id, n.attempts),
        event AS (
          INSERT INTO workflow_execution_events (execution_id, node_id, kind, attempt, message)
          SELECT \(id), node.node_id, e.kind, node.attempts, NULLIF(e.message, '')
          FROM node, unnest(\(change.eventKinds)::text[], \(change.eventMessages)::text[]) WITH ORDINALITY AS e(kind, message, n) ORDER BY e.n),
        counters AS (
          UPDATE workflow_executions e SET
            completed_nodes = e.completed_nodes + \(settles ? 1 : 0),
            current_node_id = CASE WHEN \(change.startsAttempt) THEN \(change.nodeID) ELSE e.current_node_id END,
            cost = CASE WHEN \(change.cost)::numeric IS NULL THEN e.cost ELSE coalesce(e.cost, 0) + \(change.cost)::numeric END
          FROM node WHERE e.id = \(id)
          RETURNING e.id)
      SELECT (SELECT count(*) FROM node)::int8, (SELECT status FROM run), coalesce((SELECT attempts FROM node), 0),
        (SELECT count(*) FROM counters)::int8
      """, logger: self.logger)
    guard let row = rows.first else { return ChangeResult(written: false, runStatus: nil, attempts: 0) }
    let (count, status, attempts, _) = try row.decode((Int64, String?, Int, Int64).self)
    return ChangeResult(written: count > 0, runStatus: status.flatMap(WorkflowExecution.Status.init(rawValue:)), attempts: attempts)
  }

  /// Skips `nodeIDs` (branches not taken) in one statement, if `token` holds the run.
  public func skip(_ id: UUID, token: UUID, nodes nodeIDs: [String]) async throws -> Bool {
    guard !nodeIDs.isEmpty else { return true }
    let rows = try await self.database.query(
      """
      WITH run AS (SELECT id FROM workflow_executions WHERE id = \(id) AND runner_token = \(token) AND status = 'running' FOR UPDATE),
        node AS (
          UPDATE workflow_node_executions n SET status = 'skipped', completed_at = clock_timestamp() FROM run
          WHERE n.execution_id = run.id AND n.node_id = ANY(\(nodeIDs)::text[]) AND n.status = 'pending' RETURNING n.node_id),
        event AS (
          INSERT INTO workflow_execution_events (execution_id, node_id, kind, attempt, message)
          SELECT \(id), node_id, 'skipped', 0, 'No branch leads to it' FROM node),
        counters AS (
          UPDATE workflow_executions SET completed_nodes = completed_nodes + (SELECT count(*) FROM node) WHERE id = \(id) AND EXISTS (SELECT 1 FROM node)
          RETURNING id)
      SELECT (SELECT count(*) FROM run)::int8, (SELECT count(*) FROM counters)::int8
      """, logger: self.logger)
    guard let row = rows.first else { return false }
    let (claimed, _) = try row.decode((Int64, Int64).self)
    return claimed == 1
  }

  /// Ends the run, if `token` still holds it and it is running (a cancel that came first wins).
  public func finish(
    _ id: UUID, token: UUID, status: WorkflowExecution.Status, output: JSONValue?, error: NodeFailure?
  ) async throws -> WorkflowExecution? {
    try await self.database.query(
      """
      UPDATE workflow_executions SET status = \(status.rawValue), output = \(output?.jsonText)::jsonb, error = \(error?.json.jsonText)::jsonb,
        completed_at = now(), execution_time_ms = LEAST(extract(epoch FROM now() - coalesce(started_at, created_at)) * 1000, 2147483647)::int
      WHERE id = \(id) AND runner_token = \(token) AND status = ANY(\(status.predecessors.map(\.rawValue))::text[])
      RETURNING \(unescaped: Self.columns)
      """, logger: self.logger
    ).first.map(Self.execution)
  }

  /// Cancels a pending or running run of the owner's, and its running nodes.
  public func cancel(_ id: UUID, owner: UUID) async throws -> WorkflowExecution? {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        UPDATE workflow_executions SET status = 'cancelled', completed_at = now(),
          error = '{"code": "cancelled", "message": "Cancelled by the caller"}'::jsonb,
          execution_time_ms = LEAST(extract(epoch FROM now() - coalesce(started_at, created_at)) * 1000, 2147483647)::int
        WHERE id = \(id) AND user_id = \(owner) AND status IN ('pending', 'running')
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      guard let row = rows.first else { return nil }
      try await connection.query(
        """
        WITH node AS (
            UPDATE workflow_node_executions SET status = 'cancelled', completed_at = now()
            WHERE execution_id = \(id) AND status = 'running' RETURNING node_id, attempts)
        INSERT INTO workflow_execution_events (execution_id, node_id, kind, attempt, message)
        SELECT \(id), node_id, 'failed', attempts, 'Cancelled with the run' FROM node
        """, logger: self.logger)
      return try Self.execution(row)
    }
  }

  /// Takes a failed, cancelled or timed-out run back to pending: its unfinished nodes become
  /// pending (with `overrides` as their changed data), completed and skipped ones stay; then
  /// `then` in the same transaction (which enqueues its job).
  public func resume(
    _ id: UUID, owner: UUID, overrides: [String: [String: JSONValue]], deadline: Date, credential: (keyID: String, sealed: String)?,
    then: (DatabaseConnection, WorkflowExecution) async throws -> Void
  ) async throws -> WorkflowExecution? {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        UPDATE workflow_executions SET status = 'pending', error = NULL, output = NULL, completed_at = NULL, resume_count = resume_count + 1,
          deadline_at = \(deadline), runner_token = NULL,
          credential_key_id = coalesce(\(credential?.keyID), credential_key_id), credential_sealed = coalesce(\(credential?.sealed), credential_sealed)
        WHERE id = \(id) AND user_id = \(owner) AND status IN ('failed', 'cancelled', 'timeout')
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      guard let row = rows.first else { return nil }
      let execution = try Self.execution(row)
      try await connection.query(
        """
        UPDATE workflow_node_executions n SET status = 'pending',
          data_override = coalesce((\(JSONValue.object(overrides.mapValues { .object($0) }).jsonText)::jsonb) -> n.node_id, n.data_override)
        WHERE n.execution_id = \(id) AND n.status IN ('failed', 'cancelled', 'running')
        """, logger: self.logger)
      try await then(connection, execution)
      return execution
    }
  }

  /// The run's history after `afterID`, oldest first.
  public func events(of id: UUID, after afterID: Int64, limit: Int) async throws -> [NodeEvent] {
    try await self.database.query(
      """
      SELECT id, node_id, kind, attempt, message, created_at FROM workflow_execution_events
      WHERE execution_id = \(id) AND id > \(afterID) ORDER BY id LIMIT \(limit)
      """, logger: self.logger
    ).map { row in
      let c = try row.decode((Int64, String, String, Int, String?, Date).self)
      return NodeEvent(id: c.0, nodeID: c.1, kind: .init(rawValue: c.2) ?? .started, attempt: c.3, message: c.4, createdAt: c.5)
    }
  }
}
