public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of workflows and workflow_snapshots. Every read is scoped to the owner and leaves
/// soft-deleted workflows out.
public struct WorkflowStore: Sendable {
  let database: Database
  let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  /// Where a page of workflows ends: most recently updated first.
  public struct ListCursor: Codable, Sendable, Equatable {
    public var updatedAt: Date
    public var id: UUID
  }

  /// Where a page of snapshots ends: newest version first.
  public struct SnapshotCursor: Codable, Sendable, Equatable {
    public var version: Int
  }

  static let columns = """
    id, user_id, name, coalesce(description, ''), status, version, nodes::text, edges::text, coalesce(viewport, '{}')::text,
    coalesce(metadata, '{}')::text, coalesce(tags, '{}'), schedules::text, created_at, updated_at, published_at, deleted_at
    """

  static func workflow(_ row: PostgresRow) throws -> Workflow {
    let c = try row.decode((UUID, UUID, String, String, String, Int, String, String, String, String, [String], String, Date, Date, Date?, Date?).self)
    func json(_ text: String) -> JSONValue { (try? JSONValue(jsonText: text)) ?? .null }
    var definition = WorkflowDefinition(stored: .object(["nodes": json(c.6), "edges": json(c.7), "viewport": json(c.8)]))
    if definition.viewport == .null { definition.viewport = WorkflowDefinition.defaultViewport }
    let schedules: [WorkflowSchedule] = if case .array(let list) = json(c.11) { list.map(WorkflowSchedule.init(stored:)) } else { [] }
    return Workflow(
      id: c.0, userID: c.1, name: c.2, description: c.3, status: Workflow.Status(rawValue: c.4) ?? .draft, version: c.5, definition: definition,
      metadata: json(c.9).objectValue ?? [:], tags: c.10, schedules: schedules, createdAt: c.12, updatedAt: c.13, publishedAt: c.14, deletedAt: c.15)
  }

  static func nodesText(_ definition: WorkflowDefinition) -> String { JSONValue.array(definition.nodes.map(\.json)).jsonText }
  static func edgesText(_ definition: WorkflowDefinition) -> String { JSONValue.array(definition.edges.map(\.json)).jsonText }
  static func schedulesText(_ schedules: [WorkflowSchedule]) -> String { JSONValue.array(schedules.map(\.json)).jsonText }

  /// Stores a new workflow; a request id already used returns that workflow instead.
  public func insert(_ workflow: Workflow, requestID: UUID?) async throws -> (workflow: Workflow, created: Bool) {
    let rows = try await self.database.query(
      """
      INSERT INTO workflows (user_id, name, description, status, nodes, edges, viewport, metadata, tags, schedules, request_id, published_at)
      VALUES (\(workflow.userID), \(workflow.name), \(workflow.description), \(workflow.status.rawValue), \(Self.nodesText(workflow.definition))::jsonb,
        \(Self.edgesText(workflow.definition))::jsonb, \(workflow.definition.viewport.jsonText)::jsonb, \(JSONValue.object(workflow.metadata).jsonText)::jsonb,
        \(workflow.tags), \(Self.schedulesText(workflow.schedules))::jsonb, \(requestID),
        CASE WHEN \(workflow.status.rawValue) = 'active' THEN now() END)
      ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
      RETURNING \(unescaped: Self.columns)
      """, logger: self.logger)
    if let row = rows.first { return (try Self.workflow(row), true) }
    guard let requestID, let existing = try await self.workflow(requestID: requestID, owner: workflow.userID) else {
      throw ServiceError.failedPrecondition("The request id was used for a workflow that has since been deleted")
    }
    return (existing, false)
  }

  public func workflow(requestID: UUID, owner: UUID) async throws -> Workflow? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM workflows WHERE user_id = \(owner) AND request_id = \(requestID) AND deleted_at IS NULL",
      logger: self.logger
    ).first.map(Self.workflow)
  }

  /// The owner's live workflow.
  public func workflow(_ id: UUID, owner: UUID) async throws -> Workflow? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM workflows WHERE id = \(id) AND user_id = \(owner) AND deleted_at IS NULL", logger: self.logger
    ).first.map(Self.workflow)
  }

  public func list(
    owner: UUID, status: Workflow.Status?, tags: [String], query: String?, after: ListCursor?, limit: Int
  ) async throws -> (workflows: [Workflow], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM workflows \(workflowsOf: owner, status: status, tags: tags, query: query)
        AND (\(after?.updatedAt)::timestamptz IS NULL OR (updated_at, id) < (\(after?.updatedAt ?? Date()), \(after?.id ?? UUID())))
      ORDER BY updated_at DESC, id DESC LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      "SELECT count(*)::int8 FROM workflows \(workflowsOf: owner, status: status, tags: tags, query: query)", logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.workflow), Int(total), rows.count > limit)
  }

  /// Writes `workflow`'s fields if it is still at `expected` (its version becomes expected + 1),
  /// keeping the previous definition as a snapshot when the definition changed; nil when it is
  /// not at that version (or is gone).
  public func update(_ workflow: Workflow, expected: Int, previous: Workflow, editor: UUID) async throws -> Workflow? {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        UPDATE workflows SET name = \(workflow.name), description = \(workflow.description), status = \(workflow.status.rawValue),
          nodes = \(Self.nodesText(workflow.definition))::jsonb, edges = \(Self.edgesText(workflow.definition))::jsonb,
          viewport = \(workflow.definition.viewport.jsonText)::jsonb, metadata = \(JSONValue.object(workflow.metadata).jsonText)::jsonb,
          tags = \(workflow.tags), schedules = \(Self.schedulesText(workflow.schedules))::jsonb, version = version + 1, updated_at = now(),
          published_at = CASE WHEN \(workflow.status.rawValue) = 'active' AND status <> 'active' THEN now() ELSE published_at END
        WHERE id = \(workflow.id) AND user_id = \(workflow.userID) AND deleted_at IS NULL AND version = \(expected)
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      guard let row = rows.first else { return nil }
      let updated = try Self.workflow(row)
      if updated.definition != previous.definition {
        _ = try await self.snapshot(previous, createdBy: editor, published: false, in: connection)
      }
      if updated.status == .active && previous.status != .active {
        _ = try await self.snapshot(updated, createdBy: editor, published: true, in: connection)
      }
      return updated
    }
  }

  public enum DeleteOutcome: Sendable, Equatable {
    /// Deleted; these of its executions were cancelled.
    case done(cancelled: [UUID])
    case notFound
    case versionMismatch
  }

  /// Marks the workflow deleted and cancels its pending and running executions, in one statement.
  public func softDelete(_ id: UUID, owner: UUID, version: Int?) async throws -> DeleteOutcome {
    let rows = try await self.database.query(
      """
      WITH target AS (
          SELECT id, version FROM workflows WHERE id = \(id) AND user_id = \(owner) AND deleted_at IS NULL FOR UPDATE),
        deleted AS (
          UPDATE workflows w SET deleted_at = now(), updated_at = now(), version = w.version + 1 FROM target t
          WHERE w.id = t.id AND (\(version)::int IS NULL OR t.version = \(version)) RETURNING w.id),
        cancelled AS (
          UPDATE workflow_executions SET status = 'cancelled', completed_at = now(),
            error = '{"code": "cancelled", "message": "The workflow was deleted"}'::jsonb
          WHERE workflow_id IN (SELECT id FROM deleted) AND status IN ('pending', 'running') RETURNING id)
      SELECT (SELECT count(*) FROM target)::int8, (SELECT count(*) FROM deleted)::int8, coalesce((SELECT array_agg(id) FROM cancelled), '{}')
      """, logger: self.logger)
    guard let row = rows.first else { return .notFound }
    let (found, deleted, cancelled) = try row.decode((Int64, Int64, [UUID]).self)
    if found == 0 { return .notFound }
    if deleted == 0 { return .versionMismatch }
    return .done(cancelled: cancelled)
  }

  /// Makes the workflow ACTIVE at a new version and writes that version's published snapshot.
  public func publish(_ workflow: Workflow, editor: UUID) async throws -> Workflow? {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        UPDATE workflows SET status = 'active', version = version + 1, updated_at = now(), published_at = now()
        WHERE id = \(workflow.id) AND user_id = \(workflow.userID) AND deleted_at IS NULL AND version = \(workflow.version)
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      guard let row = rows.first else { return nil }
      let published = try Self.workflow(row)
      _ = try await self.snapshot(published, createdBy: editor, published: true, in: connection)
      return published
    }
  }

  /// The snapshot of `workflow`'s current version (written if it is not yet): its id.
  public func snapshot(_ workflow: Workflow, createdBy: UUID, published: Bool) async throws -> UUID {
    try await self.database.withConnection(logger: self.logger) { connection in
      try await self.snapshot(workflow, createdBy: createdBy, published: published, in: connection)
    }
  }

  func snapshot(_ workflow: Workflow, createdBy: UUID, published: Bool, in connection: DatabaseConnection) async throws -> UUID {
    var data = workflow.definition.json.objectValue ?? [:]
    data["name"] = .string(workflow.name)
    let rows = try await connection.query(
      """
      INSERT INTO workflow_snapshots (workflow_id, workflow_version, snapshot_data, published, created_by)
      VALUES (\(workflow.id), \(workflow.version), \(JSONValue.object(data).jsonText)::jsonb, \(published), \(createdBy))
      ON CONFLICT (workflow_id, workflow_version) DO UPDATE SET published = workflow_snapshots.published OR excluded.published
      RETURNING id
      """, logger: self.logger)
    guard let id = try rows.first?.decode(UUID.self) else { throw ServiceError.unavailable("The snapshot could not be written") }
    return id
  }

  /// A saved definition of one of the workflow's versions.
  public struct Snapshot: Sendable, Equatable {
    public var id: UUID
    public var workflowID: UUID
    public var workflowVersion: Int
    public var data: JSONValue
    public var published: Bool
    public var createdBy: UUID
    public var createdAt: Date

    public var definition: WorkflowDefinition { WorkflowDefinition(stored: self.data) }
  }

  static func snapshot(_ row: PostgresRow) throws -> Snapshot {
    let c = try row.decode((UUID, UUID, Int, String, Bool, UUID, Date).self)
    return Snapshot(
      id: c.0, workflowID: c.1, workflowVersion: c.2, data: (try? JSONValue(jsonText: c.3)) ?? .object([:]), published: c.4, createdBy: c.5,
      createdAt: c.6)
  }

  static let snapshotColumns = "id, workflow_id, workflow_version, snapshot_data::text, published, created_by, created_at"

  public func snapshot(of workflowID: UUID, version: Int) async throws -> Snapshot? {
    try await self.database.query(
      "SELECT \(unescaped: Self.snapshotColumns) FROM workflow_snapshots WHERE workflow_id = \(workflowID) AND workflow_version = \(version)",
      logger: self.logger
    ).first.map(Self.snapshot)
  }

  public func snapshot(id: UUID) async throws -> Snapshot? {
    try await self.database.query(
      "SELECT \(unescaped: Self.snapshotColumns) FROM workflow_snapshots WHERE id = \(id)", logger: self.logger
    ).first.map(Self.snapshot)
  }

  public func snapshots(of workflowID: UUID, after: SnapshotCursor?, limit: Int) async throws -> (snapshots: [Snapshot], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.snapshotColumns) FROM workflow_snapshots
      WHERE workflow_id = \(workflowID) AND (\(after?.version)::int IS NULL OR workflow_version < \(after?.version ?? 0))
      ORDER BY workflow_version DESC LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      "SELECT count(*)::int8 FROM workflow_snapshots WHERE workflow_id = \(workflowID)", logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.snapshot), Int(total), rows.count > limit)
  }

  /// A workflow's schedules, as the scheduler reads them.
  public struct Scheduled: Sendable {
    public var id: UUID
    public var userID: UUID
    public var schedules: [WorkflowSchedule]
  }

  /// Live, runnable workflows with schedules after `after` (by id), at most `limit`: only their
  /// ids, owners and schedules.
  public func scheduled(after: UUID?, limit: Int) async throws -> [Scheduled] {
    try await self.database.query(
      """
      SELECT id, user_id, schedules::text FROM workflows
      WHERE deleted_at IS NULL AND schedules <> '[]'::jsonb AND status IN ('draft', 'active')
        AND (\(after)::uuid IS NULL OR id > \(after ?? UUID()))
      ORDER BY id LIMIT \(limit)
      """, logger: self.logger
    ).map { row in
      let (id, userID, text) = try row.decode((UUID, UUID, String).self)
      let schedules: [WorkflowSchedule] = if case .array(let list)? = try? JSONValue(jsonText: text) { list.map(WorkflowSchedule.init(stored:)) } else { [] }
      return Scheduled(id: id, userID: userID, schedules: schedules)
    }
  }
}

extension PostgresQuery.StringInterpolation {
  /// `WHERE …` selecting the owner's live workflows with `status` (nil: all but archived), all
  /// of `tags`, and `query` in the name (full text) or as a substring of name or description.
  mutating func appendInterpolation(workflowsOf owner: UUID, status: Workflow.Status?, tags: [String], query: String?) {
    let pattern = query.map(LikePattern.containing)
    self.appendLiteral("WHERE user_id = ")
    self.appendInterpolation(owner)
    self.appendLiteral(" AND deleted_at IS NULL AND ((")
    self.appendInterpolation(status?.rawValue)
    self.appendLiteral("::text IS NULL AND status <> 'archived') OR status = ")
    self.appendInterpolation(status?.rawValue)
    self.appendLiteral(") AND (cardinality(")
    self.appendInterpolation(tags)
    self.appendLiteral("::text[]) = 0 OR tags @> ")
    self.appendInterpolation(tags)
    self.appendLiteral("::text[]) AND (")
    self.appendInterpolation(query)
    self.appendLiteral("::text IS NULL OR to_tsvector('english', name) @@ websearch_to_tsquery('english', ")
    self.appendInterpolation(query ?? "")
    self.appendLiteral(") OR name ILIKE ")
    self.appendInterpolation(pattern ?? "")
    self.appendLiteral(" OR coalesce(description, '') ILIKE ")
    self.appendInterpolation(pattern ?? "")
    self.appendLiteral(")")
  }
}
