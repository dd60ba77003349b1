public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of agents and agent_plugins in agent_db. Every read is scoped to the owner and
/// leaves soft-deleted agents out.
public struct AgentStore: Sendable {
  private let database: Database
  private let models: ModelCatalog
  private let logger: Logger

  public init(database: Database, models: ModelCatalog, logger: Logger) {
    self.database = database
    self.models = models
    self.logger = logger
  }

  /// Where a page of agents ends: most recently updated first.
  public struct ListCursor: Codable, Sendable, Equatable {
    public var updatedAt: Date
    public var id: UUID
  }

  /// Where a page of plugins ends: by order_index, then id.
  public struct PluginCursor: Codable, Sendable, Equatable {
    public var orderIndex: Int
    public var id: UUID
  }

  private static let columns = """
    id, user_id, persona_id, name, coalesce(description, ''), status, settings::text, coalesce(metadata, '{}')::text, version,
    created_at, updated_at, deleted_at
    """

  private func agent(_ row: PostgresRow) throws -> Agent {
    let c = try row.decode((UUID, UUID, UUID, String, String, String, String, String, Int, Date, Date, Date?).self)
    return Agent(
      id: c.0, ownerID: c.1, personaID: c.2, name: c.3, description: c.4, status: Agent.Status(rawValue: c.5) ?? .inactive,
      settings: ModelSettings(stored: (try? JSONValue(jsonText: c.6)) ?? .object([:]), models: self.models),
      metadata: (try? JSONValue(jsonText: c.7)) ?? .object([:]), version: c.8, createdAt: c.9, updatedAt: c.10, deletedAt: c.11)
  }

  public func insert(_ draft: Agents.Draft, personaID: UUID, owner: UUID, requestID: UUID?) async throws -> Agent {
    let rows = try await self.database.query(
      """
      INSERT INTO agents (user_id, persona_id, name, description, status, settings, metadata, request_id)
      VALUES (\(owner), \(personaID), \(draft.name), \(draft.description), \(draft.status.rawValue), \(draft.settings.json.jsonText)::jsonb,
        \(JSONValue.object(draft.metadata).jsonText)::jsonb, \(requestID))
      ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
      RETURNING \(unescaped: Self.columns)
      """, logger: self.logger)
    if let row = rows.first { return try self.agent(row) }
    // The same request id won a race with this one: its agent is the answer.
    guard let requestID, let existing = try await self.agent(requestID: requestID, owner: owner) else {
      throw AgentError.failedPrecondition("The request id was used for an agent that has since been deleted")
    }
    return existing
  }

  /// The agent an earlier create with `requestID` made (deleted ones included).
  public func agent(requestID: UUID, owner: UUID) async throws -> Agent? {
    let rows = try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM agents WHERE user_id = \(owner) AND request_id = \(requestID)", logger: self.logger)
    guard let row = rows.first else { return nil }
    let agent = try self.agent(row)
    if agent.deletedAt != nil { throw AgentError.failedPrecondition("The request id was used for an agent that has since been deleted") }
    return agent
  }

  public func agent(_ id: UUID, owner: UUID) async throws -> Agent? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM agents WHERE id = \(id) AND user_id = \(owner) AND deleted_at IS NULL", logger: self.logger
    ).first.map(self.agent)
  }

  public func list(
    owner: UUID, status: Agent.Status?, personaID: UUID?, query: String?, after: ListCursor?, limit: Int
  ) async throws -> (agents: [Agent], total: Int, more: Bool) {
    let pattern = query.map(LikePattern.containing)
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM agents
      WHERE user_id = \(owner) AND deleted_at IS NULL
        AND ((\(status?.rawValue)::text IS NULL AND status <> 'archived') OR status = \(status?.rawValue))
        AND (\(personaID)::uuid IS NULL OR persona_id = \(personaID))
        AND (\(query)::text IS NULL
          OR to_tsvector('english', name) @@ websearch_to_tsquery('english', \(query ?? ""))
          OR to_tsvector('english', description) @@ websearch_to_tsquery('english', \(query ?? ""))
          OR name ILIKE \(pattern ?? "") OR description ILIKE \(pattern ?? ""))
        AND (\(after?.updatedAt)::timestamptz IS NULL OR (updated_at, id) < (\(after?.updatedAt ?? Date()), \(after?.id ?? UUID())))
      ORDER BY updated_at DESC, id DESC LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      """
      SELECT count(*)::int8 FROM agents
      WHERE user_id = \(owner) AND deleted_at IS NULL
        AND ((\(status?.rawValue)::text IS NULL AND status <> 'archived') OR status = \(status?.rawValue))
        AND (\(personaID)::uuid IS NULL OR persona_id = \(personaID))
        AND (\(query)::text IS NULL
          OR to_tsvector('english', name) @@ websearch_to_tsquery('english', \(query ?? ""))
          OR to_tsvector('english', description) @@ websearch_to_tsquery('english', \(query ?? ""))
          OR name ILIKE \(pattern ?? "") OR description ILIKE \(pattern ?? ""))
      """, logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(self.agent), Int(total), rows.count > limit)
  }

  /// Writes `draft` if the agent is still at `expected`; nil when it is not (or is gone).
  public func update(_ id: UUID, owner: UUID, expected: Int, draft: Agents.Draft) async throws -> Agent? {
    try await self.database.query(
      """
      UPDATE agents SET persona_id = coalesce(\(draft.personaID), persona_id), name = \(draft.name), description = \(draft.description),
        status = \(draft.status.rawValue), settings = \(draft.settings.json.jsonText)::jsonb, metadata = \(JSONValue.object(draft.metadata).jsonText)::jsonb,
        version = version + 1, updated_at = now()
      WHERE id = \(id) AND user_id = \(owner) AND deleted_at IS NULL AND version = \(expected)
      RETURNING \(unescaped: Self.columns)
      """, logger: self.logger
    ).first.map(self.agent)
  }

  public enum DeleteOutcome: Sendable, Equatable {
    /// Deleted; these of its executions were cancelled.
    case done(cancelled: [UUID])
    case notFound
    case versionMismatch
  }

  /// Marks the agent deleted and cancels its pending and running executions, in one statement.
  public func softDelete(_ id: UUID, owner: UUID, version: Int?) async throws -> DeleteOutcome {
    let rows = try await self.database.query(
      """
      WITH target AS (
          SELECT id, version FROM agents WHERE id = \(id) AND user_id = \(owner) AND deleted_at IS NULL FOR UPDATE),
        deleted AS (
          UPDATE agents a SET deleted_at = now(), updated_at = now(), version = a.version + 1 FROM target t
          WHERE a.id = t.id AND (\(version)::int IS NULL OR t.version = \(version)) RETURNING a.id),
        cancelled AS (
          UPDATE executions SET status = 'cancelled', completed_at = now()
          WHERE agent_id IN (SELECT id FROM deleted) AND status IN ('pending', 'running') RETURNING id)
      SELECT (SELECT count(*) FROM target)::int8, (SELECT count(*) FROM deleted)::int8,
        (SELECT coalesce(array_agg(id), '{}') FROM cancelled)
      """, logger: self.logger)
    guard let row = rows.first else { return .notFound }
    let (found, deleted, cancelled) = try row.decode((Int64, Int64, [UUID]).self)
    if found == 0 { return .notFound }
    return deleted == 0 ? .versionMismatch : .done(cancelled: cancelled)
  }

  // MARK: - Plugins

  private static let pluginColumns = "id, agent_id, name, plugin_type, config::text, is_enabled, order_index, created_at, updated_at"

  private static func plugin(_ row: PostgresRow) throws -> AgentPlugin {
    let c = try row.decode((UUID, UUID, String, String, String, Bool, Int, Date, Date).self)
    return AgentPlugin(
      id: c.0, agentID: c.1, name: c.2, kind: AgentPlugin.Kind(rawValue: c.3) ?? .fileUpload, config: (try? JSONValue(jsonText: c.4)) ?? .object([:]),
      isEnabled: c.5, orderIndex: c.6, createdAt: c.7, updatedAt: c.8)
  }

  public enum PluginOutcome: Sendable, Equatable {
    case done(AgentPlugin)
    case agentNotFound
    case pluginNotFound
    case versionMismatch(current: Int)
    case archived
    case duplicateType
    case tooMany
  }

  /// Locks the owner's live agent for a change of its plugins and checks its version (nil: any).
  private func lockAgent(_ connection: DatabaseConnection, _ agentID: UUID, owner: UUID, version: Int?) async throws -> PluginOutcome? {
    let rows = try await connection.query(
      "SELECT version, status FROM agents WHERE id = \(agentID) AND user_id = \(owner) AND deleted_at IS NULL FOR UPDATE",
      logger: self.logger)
    guard let row = rows.first else { return .agentNotFound }
    let (current, status) = try row.decode((Int, String).self)
    if let version, version != current { return .versionMismatch(current: current) }
    if status == Agent.Status.archived.rawValue { return .archived }
    return nil
  }

  /// Whether another enabled plugin of `kind` is on the agent (checked under the agent's lock;
  /// the unique index is the backstop).
  private func hasEnabled(_ connection: DatabaseConnection, _ kind: AgentPlugin.Kind, agentID: UUID, except: UUID?) async throws -> Bool {
    try await connection.query(
      """
      SELECT 1 FROM agent_plugins WHERE agent_id = \(agentID) AND plugin_type = \(kind.rawValue) AND is_enabled
        AND (\(except)::uuid IS NULL OR id <> \(except))
      """, logger: self.logger
    ).first != nil
  }

  private func bumpVersion(_ connection: DatabaseConnection, _ agentID: UUID) async throws {
    try await connection.query("UPDATE agents SET version = version + 1, updated_at = now() WHERE id = \(agentID)", logger: self.logger)
  }

  public func insertPlugin(
    _ draft: Agents.PluginDraft, name: String, config: JSONValue, agentID: UUID, owner: UUID, version: Int?, requestID: UUID?
  ) async throws -> PluginOutcome {
    do {
      return try await self.database.withTransaction(logger: self.logger) { connection in
        if let requestID {
          let earlier = try await connection.query(
            """
            SELECT \(unescaped: Self.pluginColumns) FROM agent_plugins p
            WHERE agent_id = \(agentID) AND request_id = \(requestID)
              AND EXISTS (SELECT 1 FROM agents a WHERE a.id = p.agent_id AND a.user_id = \(owner) AND a.deleted_at IS NULL)
            """, logger: self.logger)
          if let row = earlier.first { return .done(try Self.plugin(row)) }
        }
        if let refused = try await self.lockAgent(connection, agentID, owner: owner, version: version) { return refused }
        let count = try await connection.query("SELECT count(*)::int FROM agent_plugins WHERE agent_id = \(agentID)", logger: self.logger)
          .first?.decode(Int.self) ?? 0
        if count >= Agent.maxPlugins { return .tooMany }
        if draft.isEnabled, try await self.hasEnabled(connection, draft.kind, agentID: agentID, except: nil) { return .duplicateType }
        let rows = try await connection.query(
          """
          INSERT INTO agent_plugins (agent_id, name, plugin_type, config, is_enabled, order_index, request_id)
          VALUES (\(agentID), \(name), \(draft.kind.rawValue), \(config.jsonText)::jsonb, \(draft.isEnabled), \(draft.orderIndex), \(requestID))
          RETURNING \(unescaped: Self.pluginColumns)
          """, logger: self.logger)
        try await self.bumpVersion(connection, agentID)
        guard let row = rows.first else { return .agentNotFound }
        return .done(try Self.plugin(row))
      }
    } catch where DatabaseErrors.sqlState(of: error) == "23505" {
      return .duplicateType
    }
  }

  public func plugin(_ id: UUID, of agentID: UUID) async throws -> AgentPlugin? {
    try await self.database.query(
      "SELECT \(unescaped: Self.pluginColumns) FROM agent_plugins WHERE id = \(id) AND agent_id = \(agentID)", logger: self.logger
    ).first.map(Self.plugin)
  }

  public func updatePlugin(
    _ id: UUID, draft: Agents.PluginDraft, name: String, config: JSONValue, agentID: UUID, owner: UUID, version: Int
  ) async throws -> PluginOutcome {
    do {
      return try await self.database.withTransaction(logger: self.logger) { connection in
        if let refused = try await self.lockAgent(connection, agentID, owner: owner, version: version) { return refused }
        if draft.isEnabled, try await self.hasEnabled(connection, draft.kind, agentID: agentID, except: id) { return .duplicateType }
        let rows = try await connection.query(
          """
          UPDATE agent_plugins SET name = \(name), config = \(config.jsonText)::jsonb, is_enabled = \(draft.isEnabled),
            order_index = \(draft.orderIndex), updated_at = now()
          WHERE id = \(id) AND agent_id = \(agentID)
          RETURNING \(unescaped: Self.pluginColumns)
          """, logger: self.logger)
        guard let row = rows.first else { return .pluginNotFound }
        try await self.bumpVersion(connection, agentID)
        return .done(try Self.plugin(row))
      }
    } catch where DatabaseErrors.sqlState(of: error) == "23505" {
      return .duplicateType
    }
  }

  public func deletePlugin(_ id: UUID, agentID: UUID, owner: UUID, version: Int?) async throws -> PluginOutcome {
    try await self.database.withTransaction(logger: self.logger) { connection in
      if let refused = try await self.lockAgent(connection, agentID, owner: owner, version: version) { return refused }
      let rows = try await connection.query(
        "DELETE FROM agent_plugins WHERE id = \(id) AND agent_id = \(agentID) RETURNING \(unescaped: Self.pluginColumns)", logger: self.logger)
      guard let row = rows.first else { return .pluginNotFound }
      try await self.bumpVersion(connection, agentID)
      return .done(try Self.plugin(row))
    }
  }

  /// The agent's enabled plugins in execution order, in one statement (an execution's plan).
  public func enabledPlugins(of agentID: UUID) async throws -> [AgentPlugin] {
    try await self.database.query(
      """
      SELECT \(unescaped: Self.pluginColumns) FROM agent_plugins WHERE agent_id = \(agentID) AND is_enabled
      ORDER BY order_index, id LIMIT \(Agent.maxPlugins)
      """, logger: self.logger
    ).map(Self.plugin)
  }

  /// The agent's plugins in execution order (order_index, then id).
  public func plugins(
    of agentID: UUID, includeDisabled: Bool, after: PluginCursor?, limit: Int
  ) async throws -> (plugins: [AgentPlugin], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.pluginColumns) FROM agent_plugins
      WHERE agent_id = \(agentID) AND (\(includeDisabled) OR is_enabled)
        AND (\(after?.orderIndex)::int IS NULL OR (order_index, id) > (\(after?.orderIndex ?? 0), \(after?.id ?? UUID())))
      ORDER BY order_index, id LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      "SELECT count(*)::int8 FROM agent_plugins WHERE agent_id = \(agentID) AND (\(includeDisabled) OR is_enabled)", logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.plugin), Int(total), rows.count > limit)
  }
}
