public import Foundation
public import Logging
public import PlatformCore
public import PlatformRedis
internal import NIOCore

/// The registry: registered databases with their sealed connection configs, connection tests,
/// schema syncs (cached in Redis `sql:schema:{database_id}` for 24 hours, replaced by the next
/// sync) and column policies.
public struct Databases: Sendable {
  let store: DatabaseStore
  let secrets: SecretBox
  let targets: Targets
  let cache: VersionedCache<SchemaCatalog>?
  let locks: DistributedLocks?
  let audit: AuditLog
  let logger: Logger
  /// Writes descriptions when a sync asks (the model provider; nil offline).
  let describer: (any TableDescriber)?

  public init(
    store: DatabaseStore, secrets: SecretBox, targets: Targets, redis: RedisClient?, audit: AuditLog, logger: Logger,
    describer: (any TableDescriber)? = nil
  ) {
    self.describer = describer
    self.store = store
    self.secrets = secrets
    self.targets = targets
    self.cache = redis.map { redis in
      VersionedCache<SchemaCatalog>(
        redis: redis, namespace: "sql:schema", timeToLive: .seconds(24 * 3600), maxValueBytes: 4 << 20, logger: logger,
        memo: (maxEntries: 64, maxBytes: 64 << 20),
        encode: { catalog in ByteBuffer(bytes: try JSONEncoder().encode(catalog)) },
        decode: { buffer in try JSONDecoder().decode(SchemaCatalog.self, from: Data(buffer.readableBytesView)) })
    }
    self.locks = redis.map { DistributedLocks(redis: $0) }
    self.audit = audit
    self.logger = logger
  }

  /// What a caller gives to register or update a database.
  public struct Draft: Sendable, Equatable {
    public var name: String
    public var kind: RegisteredDatabase.Kind
    public var config: ConnectionConfig
    public var isActive: Bool
    public var allowedTables: [String]

    public init(name: String, kind: RegisteredDatabase.Kind, config: ConnectionConfig, isActive: Bool, allowedTables: [String]) {
      self.name = name
      self.kind = kind
      self.config = config
      self.isActive = isActive
      self.allowedTables = allowedTables
    }
  }

  // MARK: - Registry

  public func register(_ draft: Draft, caller: UUID, validate: Bool, requestID: UUID?) async throws -> OpenedDatabase {
    let draft = try self.checked(draft)
    if validate {
      let report = await self.test(kind: draft.kind, config: draft.config)
      if case .failure(let why) = report { throw TextToSQLError.failedPrecondition("The connection test failed: \(why)") }
    }
    let id = UUID()
    let sealed = try self.seal(draft.config, id: id, userID: caller)
    let row = RegisteredDatabase(
      id: id, userID: caller, name: draft.name, kind: draft.kind, sealedConnection: sealed.sealed, keyID: sealed.keyID,
      isActive: draft.isActive, allowedTables: draft.allowedTables, version: 1, lastSyncAt: nil, createdAt: Date(), updatedAt: Date())
    do {
      let inserted = try await self.store.insert(row, requestID: requestID)
      return try self.open(inserted.database)
    } catch DatabaseStore.Failure.nameTaken {
      throw TextToSQLError.alreadyExists("A database named \(draft.name) is already registered")
    }
  }

  public func database(_ id: UUID, caller: UUID) async throws -> OpenedDatabase {
    guard let row = try await self.store.get(id, userID: caller) else { throw TextToSQLError.notFound("Database not found") }
    return try self.open(row)
  }

  public func list(
    caller: UUID, kind: RegisteredDatabase.Kind?, includeInactive: Bool, after: (String, UUID)?, limit: Int
  ) async throws -> (databases: [OpenedDatabase], total: Int, more: Bool) {
    let page = try await self.store.list(userID: caller, kind: kind, includeInactive: includeInactive, after: after, limit: limit)
    return (try page.databases.map(self.open), page.total, page.more)
  }

  /// Applies `change` to the stored database if it is still at `version`.
  public func update(
    _ id: UUID, caller: UUID, version: Int, change: (inout Draft) throws -> Void
  ) async throws -> OpenedDatabase {
    let current = try await self.database(id, caller: caller)
    guard current.row.version == version else {
      throw TextToSQLError.failedPrecondition("The database has changed since version \(version) (it is at \(current.row.version))")
    }
    var draft = Draft(
      name: current.row.name, kind: current.row.kind, config: current.config, isActive: current.row.isActive,
      allowedTables: current.row.allowedTables)
    try change(&draft)
    guard draft.kind == current.row.kind else {
      throw TextToSQLError.invalidArgument(field: "database.database_type", reason: "is immutable")
    }
    draft = try self.checked(draft)
    let sealed = try self.seal(draft.config, id: id, userID: caller)
    var row = current.row
    row.name = draft.name
    row.sealedConnection = sealed.sealed
    row.keyID = sealed.keyID
    row.isActive = draft.isActive
    row.allowedTables = draft.allowedTables
    do {
      let updated = try await self.store.update(row, expected: version)
      await self.targets.forget(databaseID: id)
      return try self.open(updated)
    } catch DatabaseStore.Failure.nameTaken {
      throw TextToSQLError.alreadyExists("A database named \(draft.name) is already registered")
    } catch DatabaseStore.Failure.versionMismatch {
      throw TextToSQLError.failedPrecondition("The database has changed since version \(version)")
    }
  }

  public func delete(_ id: UUID, caller: UUID, version: Int?) async throws {
    do {
      guard try await self.store.delete(id, userID: caller, version: version) else { throw TextToSQLError.notFound("Database not found") }
    } catch DatabaseStore.Failure.versionMismatch {
      throw TextToSQLError.failedPrecondition("The database has changed since version \(version ?? 0)")
    }
    await self.targets.forget(databaseID: id)
    await self.cache?.storeDeletion(version: Int64.max, for: id.uuidString.lowercased())
  }

  // MARK: - Connection tests

  public enum TestOutcome: Sendable, Equatable {
    case success(ConnectionReport)
    case failure(String)
  }

  public func test(kind: RegisteredDatabase.Kind, config: ConnectionConfig) async -> TestOutcome {
    do {
      let target = try await self.targets.target(kind: kind, config: config, key: nil)
      defer { Task { await target.shutdown() } }
      return .success(try await target.test())
    } catch {
      switch error {
      case .unavailable(let why), .refused(let why), .rejected(let why): return .failure(why)
      case .timedOut: return .failure("The test timed out")
      case .busy: return .failure("Too many connections are being opened; retry shortly")
      }
    }
  }

  public func test(unsaved draft: Draft) async throws -> TestOutcome {
    var draft = draft
    draft.name = "unsaved"
    draft = try self.checked(draft, prefix: "unsaved")
    return await self.test(kind: draft.kind, config: draft.config)
  }

  // MARK: - Schema sync

  public struct SyncResult: Sendable {
    public var schemas: Int
    public var tables: Int
    public var removed: Int
    public var syncedAt: Date
  }

  /// Reads the catalog into the metadata; with `enhance` and a model provider, the model writes
  /// the descriptions of tables without a comment (at most `maxEnhancedTables`).
  public func sync(_ id: UUID, caller: UUID, schemas: [String], enhance: Bool = false) async throws -> SyncResult {
    let database = try await self.database(id, caller: caller)
    guard database.row.isActive else { throw TextToSQLError.failedPrecondition("The database is inactive") }
    for (index, schema) in schemas.enumerated() where schema.isEmpty || schema.utf8.count > 100 {
      throw TextToSQLError.invalidArgument(field: "schema_names[\(index)]", reason: "must be 1 to 100 bytes")
    }
    var lease: DistributedLocks.Lease?
    do {
      lease = try await self.locks?.acquire("sql:sync:\(id.uuidString.lowercased())", ttl: .seconds(180))
      if self.locks != nil && lease == nil {
        throw TextToSQLError.failedPrecondition("A sync of this database is already running")
      }
    } catch let error as TextToSQLError {
      throw error
    } catch {
      self.logger.warning("Redis is unreachable: the sync runs without its lock", metadata: ["error": "\(error)"])
    }
    defer { if let lease, let locks = self.locks { Task { _ = try? await locks.release(lease) } } }

    let policies = try await self.policies(id)
    let withheld = Set(policies.rules.map(\.column))
    var catalog: SchemaCatalog
    let target: any TargetDatabase
    do {
      target = try await self.targets.target(kind: database.row.kind, config: database.config, key: Targets.key(database.row))
      catalog = try await target.catalog(schemas: schemas, withheld: withheld)
    } catch {
      throw TextToSQLError.target(error)
    }
    var enhanced = false
    for index in catalog.tables.indices where catalog.tables[index].description.isEmpty {
      if enhance, let describer = self.describer, index < Self.maxEnhancedTables {
        do {
          catalog.tables[index].description = try await describer.describe(catalog.tables[index])
          enhanced = true
          continue
        } catch {
          self.logger.warning("The model did not describe a table", metadata: ["table": "\(catalog.tables[index].qualifiedName)", "error": "\(error)"])
        }
      }
      catalog.tables[index].description = Self.describe(catalog.tables[index])
    }
    var samples: [String: String] = [:]
    for table in catalog.tables.prefix(PostgresTarget.maxSampledTables) {
      samples[table.qualifiedName] = await self.sampleRows(of: table, target: target, policies: policies)
    }
    let stored = try await self.store.replaceCatalog(
      catalog, samples: samples, databaseID: id, syncedSchemas: schemas.isEmpty ? nil : schemas, enhanced: enhanced)
    // A sync of some schemas keeps the others: the cache holds the whole stored catalog.
    let full = schemas.isEmpty ? catalog : try await self.store.catalog(databaseID: id) ?? catalog
    await self.cache?.store(full, version: Self.version(of: stored.syncedAt), for: id.uuidString.lowercased())
    return SyncResult(
      schemas: Set(catalog.tables.map(\.schema)).count, tables: catalog.tables.count, removed: stored.removed, syncedAt: stored.syncedAt)
  }

  static let maxEnhancedTables = 50

  /// A description from names, for a table without a comment: what the search over
  /// descriptions and the generator link questions to.
  static func describe(_ table: CatalogTable) -> String {
    var text = "\(table.isView ? "View" : "Table") \(table.name) in schema \(table.schema)"
    let words = table.name.replacingOccurrences(of: "_", with: " ")
    if words != table.name { text += " (\(words))" }
    text += ". Columns: " + table.columns.prefix(100).map { $0.name.replacingOccurrences(of: "_", with: " ") }.joined(separator: ", ") + "."
    if !table.foreignKeys.isEmpty {
      text += " References " + Set(table.foreignKeys.map(\.referencedTable)).sorted().joined(separator: ", ") + "."
    }
    return String(text.prefix(4000))
  }

  /// Up to 3 rows of `table` as a JSON array of objects; denied columns left out, masked ones
  /// masked; "[]" when they cannot be read.
  private func sampleRows(of table: CatalogTable, target: any TargetDatabase, policies: ColumnPolicies) async -> String {
    let sql = "SELECT * FROM \(table.quotedName) LIMIT 3"
    let rules = policies.rules.filter { $0.column.table == table.qualifiedName.lowercased() }
    let limits = QueryLimits(maxRows: 3, maxBytes: 16 * 1024, timeout: .seconds(5))
    guard var rows = try? await target.run(sql, limits: limits, origins: !rules.isEmpty) else { return "[]" }
    _ = ResultMasker.mask(&rows, rules: rules.filter { $0.effect != .deny })
    let denied = Set(rules.filter { $0.effect == .deny }.map(\.column.column))
    let objects: [JSONValue] = rows.rows.map { values in
      var object: [String: JSONValue] = [:]
      for (index, column) in rows.columns.enumerated() where !denied.contains(column.name.lowercased()) {
        object[column.name] = QueryResults.json(values[index])
      }
      return .object(object)
    }
    let text = JSONValue.array(objects).jsonText
    return text.utf8.count <= 60 * 1024 ? text : "[]"
  }

  static func version(of date: Date) -> Int64 {
    Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
  }

  /// The synced catalog of `database`, from the cache or the store.
  /// - Throws: FAILED_PRECONDITION when it was never synced.
  public func catalog(of database: RegisteredDatabase) async throws -> SchemaCatalog {
    guard let synced = database.lastSyncAt else {
      throw TextToSQLError.failedPrecondition("The database's schema was never synced: call SyncSchema first")
    }
    let key = database.id.uuidString.lowercased()
    if let cache = self.cache, case .hit(let catalog) = await cache.lookup(key) { return catalog }
    guard let catalog = try await self.store.catalog(databaseID: database.id) else {
      throw TextToSQLError.failedPrecondition("The database's schema was never synced: call SyncSchema first")
    }
    await self.cache?.store(catalog, version: Self.version(of: synced), for: key)
    return catalog
  }

  // MARK: - Column policies

  public func policies(_ databaseID: UUID) async throws -> ColumnPolicies {
    ColumnPolicies(try await self.store.policies(databaseID: databaseID).map { ColumnPolicies.Rule(column: $0.column, effect: $0.effect, id: $0.id) })
  }

  public func storedPolicies(_ databaseID: UUID, caller: UUID) async throws -> [StoredPolicy] {
    _ = try await self.database(databaseID, caller: caller)
    return try await self.store.policies(databaseID: databaseID)
  }

  public func setPolicy(_ databaseID: UUID, caller: UUID, column: ColumnName, effect: ColumnPolicies.Effect) async throws -> StoredPolicy {
    _ = try await self.database(databaseID, caller: caller)
    try Self.checkPolicyName(column)
    let policy = try await self.store.setPolicy(databaseID: databaseID, owner: caller, column: column, effect: effect)
    await self.audit.recordOrLog(
      AuditEvent(
        subject: caller.uuidString.lowercased(), resource: DatabaseStore.resource(databaseID: databaseID, table: column.table),
        action: "policy_set", decision: .allow, detail: ["column": column.column, "effect": Self.effectText(effect)], policyID: policy.id))
    return policy
  }

  public func deletePolicy(_ databaseID: UUID, caller: UUID, column: ColumnName) async throws {
    _ = try await self.database(databaseID, caller: caller)
    try Self.checkPolicyName(column)
    guard try await self.store.deletePolicy(databaseID: databaseID, column: column) else {
      throw TextToSQLError.notFound("No policy on \(column)")
    }
    await self.audit.recordOrLog(
      AuditEvent(
        subject: caller.uuidString.lowercased(), resource: DatabaseStore.resource(databaseID: databaseID, table: column.table),
        action: "policy_deleted", decision: .allow, detail: ["column": column.column]))
  }

  static func effectText(_ effect: ColumnPolicies.Effect) -> String {
    switch effect {
    case .deny: "deny"
    case .mask(let kind): "mask:\(kind.rawValue)"
    }
  }

  static func checkPolicyName(_ column: ColumnName) throws {
    let parts = column.table.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 100 }) else {
      throw TextToSQLError.invalidArgument(field: "policy.table_name", reason: "must be schema.table")
    }
    guard !column.column.isEmpty, column.column.utf8.count <= 128 else {
      throw TextToSQLError.invalidArgument(field: "policy.column_name", reason: "must be 1 to 128 bytes")
    }
  }

  // MARK: - Sealing and checks

  private func seal(_ config: ConnectionConfig, id: UUID, userID: UUID) throws -> (keyID: String, sealed: String) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return try self.secrets.seal(Array(try encoder.encode(config)), context: RegisteredDatabase.sealingContext(id: id, userID: userID))
  }

  private func open(_ row: RegisteredDatabase) throws -> OpenedDatabase {
    do {
      let bytes = try self.secrets.open(row.sealedConnection, keyID: row.keyID, context: RegisteredDatabase.sealingContext(id: row.id, userID: row.userID))
      let config = try JSONDecoder().decode(ConnectionConfig.self, from: Data(bytes))
      return OpenedDatabase(row: row, config: config)
    } catch let failure as SecretBox.Failure {
      self.logger.error("A registered database's connection config does not open", metadata: ["database_id": "\(row.id)", "why": "\(failure)"])
      throw TextToSQLError.failedPrecondition("The database's stored connection config cannot be decrypted: \(failure)")
    } catch {
      throw TextToSQLError.failedPrecondition("The database's stored connection config is unreadable")
    }
  }

  /// `draft` with defaults filled in, or INVALID_ARGUMENT naming the field.
  func checked(_ draft: Draft, prefix: String = "database") throws -> Draft {
    var draft = draft
    func invalid(_ field: String, _ reason: String) -> TextToSQLError {
      .invalidArgument(field: "\(prefix).\(field)", reason: reason)
    }
    draft.name = draft.name.trimmingCharacters(in: .whitespaces)
    guard (1...100).contains(draft.name.count), draft.name.utf8.count <= 400, !draft.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
      throw invalid("name", "must be 1 to 100 characters without control characters")
    }
    if draft.kind == .mysql || draft.kind == .mssql {
      throw TextToSQLError.unimplemented("\(draft.kind.rawValue) databases are not supported yet: no \(draft.kind.rawValue) driver is built in; use postgresql or sqlite")
    }
    var config = draft.config
    guard config.password.utf8.count <= 1024 else { throw invalid("connection.password", "must be at most 1024 bytes") }
    guard config.options.count <= 8, config.options.allSatisfy({ $0.key == "application_name" && $0.value.utf8.count <= 64 }) else {
      throw invalid("connection.options", "only application_name (at most 64 bytes) is accepted")
    }
    switch draft.kind {
    case .sqlite:
      guard config.host.isEmpty, config.port == 0, config.username.isEmpty, config.password.isEmpty else {
        throw invalid("connection", "a SQLite database has only database_name (its file under SQL_SQLITE_DIR)")
      }
      if config.tls == .require || config.tls == .verifyFull { throw invalid("connection.ssl_mode", "SQLite has no TLS") }
      config.tls = .disable
      do {
        _ = try SQLiteTarget.confine(config.database, to: self.targets.configuration.sqliteDirectory)
      } catch {
        switch error {
        case .refused(let why), .unavailable(let why), .rejected(let why): throw invalid("connection.database_name", why)
        default: throw invalid("connection.database_name", "is not usable")
        }
      }
    case .postgresql, .mysql, .mssql:
      let host = config.host.trimmingCharacters(in: .whitespaces)
      guard (1...253).contains(host.utf8.count),
        host.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || ".-_:[]".unicodeScalars.contains($0) }), host.isASCII
      else { throw invalid("connection.host", "must be a host name or an IP address") }
      config.host = host
      if config.port == 0 { config.port = 5432 }
      guard (1...65535).contains(config.port) else { throw invalid("connection.port", "must be 1 to 65535") }
      guard (1...63).contains(config.database.utf8.count), !config.database.utf8.contains(0) else {
        throw invalid("connection.database_name", "must be 1 to 63 bytes")
      }
      guard (1...63).contains(config.username.utf8.count), !config.username.utf8.contains(0) else {
        throw invalid("connection.username", "must be 1 to 63 bytes")
      }
    }
    draft.config = config
    guard draft.allowedTables.count <= 1000 else { throw invalid("allowed_tables", "at most 1000 entries") }
    draft.allowedTables = try draft.allowedTables.enumerated().map { index, name in
      let lowered = name.trimmingCharacters(in: .whitespaces).lowercased()
      let parts = lowered.split(separator: ".", omittingEmptySubsequences: false)
      guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 100 }) else {
        throw invalid("allowed_tables[\(index)]", "must be schema.table")
      }
      return lowered
    }
    return draft
  }
}

extension String {
  fileprivate var isASCII: Bool { self.utf8.allSatisfy { $0 < 0x80 } }
}
