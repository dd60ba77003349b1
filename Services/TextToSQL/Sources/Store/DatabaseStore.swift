public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of databases, schemas, tables and auth_policy in sql_db.
public struct DatabaseStore: Sendable {
  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  public enum Failure: Error, Equatable {
    case nameTaken
    case versionMismatch
  }

  private static let columns = """
    id, user_id, name, database_type, connection_string, key_id, is_active, allowed_tables, version, last_sync_at, created_at, updated_at
    """

  private static func row(_ row: PostgresRow) throws -> RegisteredDatabase {
    let c = try row.decode((UUID, UUID, String, String, String, String, Bool, [String], Int, Date?, Date, Date).self)
    return RegisteredDatabase(
      id: c.0, userID: c.1, name: c.2, kind: RegisteredDatabase.Kind(rawValue: c.3) ?? .postgresql, sealedConnection: c.4, keyID: c.5,
      isActive: c.6, allowedTables: c.7, version: c.8, lastSyncAt: c.9, createdAt: c.10, updatedAt: c.11)
  }

  /// Inserts `row`; with a request id this user already used, the first row (`created` false).
  /// - Throws: `Failure.nameTaken`.
  public func insert(_ row: RegisteredDatabase, requestID: UUID?) async throws -> (database: RegisteredDatabase, created: Bool) {
    do {
      let rows = try await self.database.query(
        """
        INSERT INTO databases (id, user_id, name, database_type, connection_string, key_id, is_active, allowed_tables, request_id)
        VALUES (\(row.id), \(row.userID), \(row.name), \(row.kind.rawValue), \(row.sealedConnection), \(row.keyID), \(row.isActive),
          \(row.allowedTables), \(requestID))
        ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      if let inserted = rows.first { return (try Self.row(inserted), true) }
      let existing = try await self.database.query(
        "SELECT \(unescaped: Self.columns) FROM databases WHERE user_id = \(row.userID) AND request_id = \(requestID)", logger: self.logger)
      guard let first = existing.first else { throw Failure.nameTaken }
      return (try Self.row(first), false)
    } catch where DatabaseErrors.sqlState(of: error) == "23505" {
      throw Failure.nameTaken
    }
  }

  public func get(_ id: UUID, userID: UUID) async throws -> RegisteredDatabase? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM databases WHERE id = \(id) AND user_id = \(userID)", logger: self.logger
    ).first.map(Self.row)
  }

  /// The user's databases by name, after `after` (name, id).
  public func list(
    userID: UUID, kind: RegisteredDatabase.Kind?, includeInactive: Bool, after: (String, UUID)?, limit: Int
  ) async throws -> (databases: [RegisteredDatabase], total: Int, more: Bool) {
    let kindText = kind?.rawValue
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM databases
      WHERE user_id = \(userID) AND (\(kindText)::text IS NULL OR database_type = \(kindText)) AND (\(includeInactive) OR is_active)
        AND (\(after?.0)::text IS NULL OR (lower(name), id) > (lower(\(after?.0 ?? "")), \(after?.1 ?? UUID())))
      ORDER BY lower(name), id LIMIT \(limit + 1)
      """, logger: self.logger)
    let databases = try rows.prefix(limit).map(Self.row)
    let all = try await self.database.query(
      """
      SELECT count(*)::int8 FROM databases WHERE user_id = \(userID) AND (\(kindText)::text IS NULL OR database_type = \(kindText))
        AND (\(includeInactive) OR is_active)
      """, logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (databases, Int(all), rows.count > limit)
  }

  /// Writes the updatable fields of `row` if its version is still `expected`.
  /// - Throws: `Failure.versionMismatch`, `Failure.nameTaken`.
  public func update(_ row: RegisteredDatabase, expected: Int) async throws -> RegisteredDatabase {
    do {
      let rows = try await self.database.query(
        """
        UPDATE databases SET name = \(row.name), connection_string = \(row.sealedConnection), key_id = \(row.keyID),
          is_active = \(row.isActive), allowed_tables = \(row.allowedTables), version = version + 1, updated_at = now()
        WHERE id = \(row.id) AND user_id = \(row.userID) AND version = \(expected)
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      guard let updated = rows.first else { throw Failure.versionMismatch }
      return try Self.row(updated)
    } catch where DatabaseErrors.sqlState(of: error) == "23505" {
      throw Failure.nameTaken
    }
  }

  /// Deletes the database (its metadata, policies and history cascade).
  /// - Returns: false when it does not exist; throws `versionMismatch` when `version` is not current.
  public func delete(_ id: UUID, userID: UUID, version: Int?) async throws -> Bool {
    let rows = try await self.database.query(
      """
      WITH target AS (SELECT id, version FROM databases WHERE id = \(id) AND user_id = \(userID)),
        deleted AS (DELETE FROM databases d USING target t WHERE d.id = t.id AND (\(version)::int IS NULL OR t.version = \(version)) RETURNING d.id)
      SELECT (SELECT count(*) FROM target)::int8, (SELECT count(*) FROM deleted)::int8
      """, logger: self.logger)
    guard let row = rows.first else { return false }
    let (found, deleted) = try row.decode((Int64, Int64).self)
    if found > 0 && deleted == 0 { throw Failure.versionMismatch }
    return deleted > 0
  }

  // MARK: - Schema metadata

  /// Replaces the metadata of `databaseID` with `catalog` in one transaction: schemas and tables
  /// upserted, the ones that disappeared removed, `last_sync_at` set.
  /// - Returns: the sync time, and how many tables were removed.
  public func replaceCatalog(
    _ catalog: SchemaCatalog, samples: [String: String], databaseID: UUID, syncedSchemas: [String]?, enhanced: Bool
  ) async throws -> (syncedAt: Date, removed: Int) {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let encoder = JSONEncoder()
      encoder.outputFormatting = .sortedKeys
      let names = Array(Set(catalog.tables.map(\.schema))).sorted()
      _ = try await connection.query(
        """
        INSERT INTO schemas (database_id, schema_name, description, is_enhanced, enhanced_at)
        SELECT \(databaseID), n, 'Schema ' || n, \(enhanced), CASE WHEN \(enhanced) THEN now() END FROM unnest(\(names)::text[]) n
        ON CONFLICT (database_id, schema_name) DO UPDATE SET updated_at = now(), is_enhanced = excluded.is_enhanced,
          enhanced_at = excluded.enhanced_at
        """, logger: self.logger)
      var schemaNames: [String] = []
      var tableNames: [String] = []
      var descriptions: [String] = []
      var views: [Bool] = []
      var counts: [String] = []
      var columns: [String] = []
      var indexes: [String] = []
      var keys: [String] = []
      var sampleData: [String] = []
      for table in catalog.tables {
        schemaNames.append(table.schema)
        tableNames.append(table.name)
        descriptions.append(table.description)
        views.append(table.isView)
        counts.append(table.rowCount.map(String.init) ?? "")
        columns.append(String(decoding: try encoder.encode(table.columns), as: UTF8.self))
        indexes.append(String(decoding: try encoder.encode(table.indexes), as: UTF8.self))
        keys.append(String(decoding: try encoder.encode(table.foreignKeys), as: UTF8.self))
        sampleData.append(samples[table.qualifiedName] ?? "[]")
      }
      _ = try await connection.query(
        """
        INSERT INTO tables (schema_id, table_name, description, is_view, row_count, columns, indexes, foreign_keys, sample_data, last_analyzed_at)
        SELECT s.id, t.name, t.description, t.is_view, nullif(t.row_count, '')::int8, t.columns::jsonb, t.indexes::jsonb,
          t.keys::jsonb, t.samples::jsonb, now()
        FROM unnest(\(schemaNames)::text[], \(tableNames)::text[], \(descriptions)::text[], \(views)::bool[], \(counts)::text[],
          \(columns)::text[], \(indexes)::text[], \(keys)::text[], \(sampleData)::text[])
          AS t(schema_name, name, description, is_view, row_count, columns, indexes, keys, samples)
        JOIN schemas s ON s.database_id = \(databaseID) AND s.schema_name = t.schema_name
        ON CONFLICT (schema_id, table_name) DO UPDATE SET description = excluded.description, is_view = excluded.is_view,
          row_count = excluded.row_count, columns = excluded.columns, indexes = excluded.indexes, foreign_keys = excluded.foreign_keys,
          sample_data = excluded.sample_data, last_analyzed_at = now(), updated_at = now()
        """, logger: self.logger)
      // What disappeared: tables of the synced schemas (all, when none were named) not in the
      // catalog, and schemas left without tables.
      let removed = try await connection.query(
        """
        DELETE FROM tables t USING schemas s
        WHERE t.schema_id = s.id AND s.database_id = \(databaseID)
          AND (\(syncedSchemas ?? [])::text[] = '{}' OR s.schema_name = ANY(\(syncedSchemas ?? [])::text[]))
          AND (s.schema_name, t.table_name) NOT IN (SELECT * FROM unnest(\(schemaNames)::text[], \(tableNames)::text[]))
        RETURNING t.id
        """, logger: self.logger
      ).count
      _ = try await connection.query(
        """
        DELETE FROM schemas s WHERE s.database_id = \(databaseID) AND NOT EXISTS (SELECT 1 FROM tables t WHERE t.schema_id = s.id)
        """, logger: self.logger)
      let synced = try await connection.query(
        "UPDATE databases SET last_sync_at = clock_timestamp() WHERE id = \(databaseID) RETURNING last_sync_at", logger: self.logger
      ).first?.decode(Date.self) ?? Date()
      return (synced, removed)
    }
  }

  /// The synced catalog of `databaseID` (nil if it was never synced).
  public func catalog(databaseID: UUID) async throws -> SchemaCatalog? {
    let rows = try await self.database.query(
      """
      SELECT s.schema_name, t.table_name, coalesce(t.description, ''), t.is_view, t.row_count, t.columns::text,
        coalesce(t.indexes::text, '[]'), coalesce(t.foreign_keys::text, '[]')
      FROM tables t JOIN schemas s ON s.id = t.schema_id JOIN databases d ON d.id = s.database_id
      WHERE s.database_id = \(databaseID) AND d.last_sync_at IS NOT NULL
      ORDER BY s.schema_name, t.table_name
      """, logger: self.logger)
    let decoder = JSONDecoder()
    var tables: [CatalogTable] = []
    for row in rows {
      let c = try row.decode((String, String, String, Bool, Int64?, String, String, String).self)
      tables.append(
        CatalogTable(
          schema: c.0, name: c.1, description: c.2, isView: c.3, rowCount: c.4,
          columns: try decoder.decode([CatalogColumn].self, from: Data(c.5.utf8)),
          indexes: (try? decoder.decode([CatalogIndex].self, from: Data(c.6.utf8))) ?? [],
          foreignKeys: (try? decoder.decode([CatalogForeignKey].self, from: Data(c.7.utf8))) ?? []))
    }
    if tables.isEmpty {
      let synced = try await self.database.query("SELECT last_sync_at FROM databases WHERE id = \(databaseID)", logger: self.logger)
        .first?.decode(Date?.self)
      if synced == nil { return nil }
    }
    return SchemaCatalog(tables: tables)
  }

  /// The tables whose description (or name) matches `question` best, at most `limit`.
  public func matchingTables(databaseID: UUID, question: String, limit: Int) async throws -> [String] {
    try await self.database.query(
      """
      SELECT s.schema_name || '.' || t.table_name
      FROM tables t JOIN schemas s ON s.id = t.schema_id,
        LATERAL (SELECT replace(plainto_tsquery('english', \(question))::text, '&', '|')::tsquery AS q) query
      WHERE s.database_id = \(databaseID) AND to_tsvector('english', t.description) @@ query.q
      ORDER BY ts_rank(to_tsvector('english', t.description), query.q) DESC, t.table_name
      LIMIT \(limit)
      """, logger: self.logger
    ).map { try $0.decode(String.self) }
  }

  public struct SchemaRow: Sendable {
    public var id: UUID
    public var name: String
    public var description: String
    public var isEnhanced: Bool
    public var enhancedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
  }

  public func schemas(databaseID: UUID, after: String?, limit: Int) async throws -> (schemas: [SchemaRow], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT id, schema_name, coalesce(description, ''), is_enhanced, enhanced_at, created_at, updated_at FROM schemas
      WHERE database_id = \(databaseID) AND (\(after)::text IS NULL OR schema_name > \(after ?? ""))
      ORDER BY schema_name LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query("SELECT count(*)::int8 FROM schemas WHERE database_id = \(databaseID)", logger: self.logger)
      .first?.decode(Int64.self) ?? 0
    let schemas = try rows.prefix(limit).map { row in
      let c = try row.decode((UUID, String, String, Bool, Date?, Date, Date).self)
      return SchemaRow(id: c.0, name: c.1, description: c.2, isEnhanced: c.3, enhancedAt: c.4, createdAt: c.5, updatedAt: c.6)
    }
    return (schemas, Int(total), rows.count > limit)
  }

  public struct TableRow: Sendable {
    public var id: UUID
    public var schemaID: UUID
    public var table: CatalogTable
    public var sampleRows: String?
    public var analyzedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
  }

  public func tables(
    databaseID: UUID, schema: String?, after: (String, String)?, limit: Int, withSamples: Bool
  ) async throws -> (tables: [TableRow], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT t.id, s.id, s.schema_name, t.table_name, coalesce(t.description, ''), t.is_view, t.row_count, t.columns::text,
        coalesce(t.indexes::text, '[]'), coalesce(t.foreign_keys::text, '[]'),
        CASE WHEN \(withSamples) THEN t.sample_data::text END, t.last_analyzed_at, t.created_at, t.updated_at
      FROM tables t JOIN schemas s ON s.id = t.schema_id
      WHERE s.database_id = \(databaseID) AND (\(schema)::text IS NULL OR s.schema_name = \(schema ?? ""))
        AND (\(after?.0)::text IS NULL OR (s.schema_name, t.table_name) > (\(after?.0 ?? ""), \(after?.1 ?? "")))
      ORDER BY s.schema_name, t.table_name LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      """
      SELECT count(*)::int8 FROM tables t JOIN schemas s ON s.id = t.schema_id
      WHERE s.database_id = \(databaseID) AND (\(schema)::text IS NULL OR s.schema_name = \(schema ?? ""))
      """, logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    let decoder = JSONDecoder()
    let tables = try rows.prefix(limit).map { row in
      let c = try row.decode((UUID, UUID, String, String, String, Bool, Int64?, String, String, String, String?, Date?, Date, Date).self)
      let table = CatalogTable(
        schema: c.2, name: c.3, description: c.4, isView: c.5, rowCount: c.6,
        columns: try decoder.decode([CatalogColumn].self, from: Data(c.7.utf8)),
        indexes: (try? decoder.decode([CatalogIndex].self, from: Data(c.8.utf8))) ?? [],
        foreignKeys: (try? decoder.decode([CatalogForeignKey].self, from: Data(c.9.utf8))) ?? [])
      return TableRow(id: c.0, schemaID: c.1, table: table, sampleRows: c.10, analyzedAt: c.11, createdAt: c.12, updatedAt: c.13)
    }
    return (tables, Int(total), rows.count > limit)
  }

  // MARK: - Column policies

  private static func policy(_ row: PostgresRow) throws -> StoredPolicy {
    let c = try row.decode((Int64, UUID, String, String, String, String?, Date).self)
    let table = c.2.split(separator: ":").last.map(String.init) ?? c.2
    let effect: ColumnPolicies.Effect = c.4 == "deny" ? .deny : .mask(ColumnPolicies.MaskKind(rawValue: c.5 ?? "null") ?? .null)
    return StoredPolicy(id: c.0, databaseID: c.1, column: ColumnName(table: table, column: c.3), effect: effect, createdAt: c.6)
  }

  static func resource(databaseID: UUID, table: String) -> String {
    "sql:\(databaseID.uuidString.lowercased()):\(table)"
  }

  public func policies(databaseID: UUID) async throws -> [StoredPolicy] {
    try await self.database.query(
      """
      SELECT id, database_id, resource, field_name, effect, mask_kind, created_at FROM auth_policy
      WHERE database_id = \(databaseID) AND effect IN ('deny', 'mask') ORDER BY resource, field_name
      """, logger: self.logger
    ).map(Self.policy)
  }

  /// Sets (replaces) the policy of one column, for everyone who queries the database.
  public func setPolicy(databaseID: UUID, owner: UUID, column: ColumnName, effect: ColumnPolicies.Effect) async throws -> StoredPolicy {
    let (effectText, mask): (String, String?) =
      switch effect {
      case .deny: ("deny", nil)
      case .mask(let kind): ("mask", kind.rawValue)
      }
    let rows = try await self.database.query(
      """
      INSERT INTO auth_policy (tenant_id, subject_type, subject_id, resource, action, field_name, effect, mask_kind, database_id)
      VALUES (\(owner.uuidString.lowercased()), 'role', '*', \(Self.resource(databaseID: databaseID, table: column.table)), 'read',
        \(column.column), \(effectText), \(mask), \(databaseID))
      ON CONFLICT (database_id, resource, field_name, subject_type, subject_id)
        DO UPDATE SET effect = excluded.effect, mask_kind = excluded.mask_kind, created_at = now()
      RETURNING id, database_id, resource, field_name, effect, mask_kind, created_at
      """, logger: self.logger)
    return try Self.policy(rows[0])
  }

  public func deletePolicy(databaseID: UUID, column: ColumnName) async throws -> Bool {
    try await self.database.query(
      """
      DELETE FROM auth_policy WHERE database_id = \(databaseID) AND resource = \(Self.resource(databaseID: databaseID, table: column.table))
        AND field_name = \(column.column) RETURNING id
      """, logger: self.logger
    ).count > 0
  }
}
