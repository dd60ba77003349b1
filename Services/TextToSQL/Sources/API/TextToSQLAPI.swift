internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

extension TextToSQLError: RPCErrorConvertible {
  public var rpcError: RPCError {
    switch self {
    case .invalidArgument(let field, let reason): RPCError(.invalidArgument, "\(field): \(reason)")
    case .notFound(let what): RPCError(.notFound, what)
    case .alreadyExists(let what): RPCError(.alreadyExists, what)
    case .failedPrecondition(let why): RPCError(.failedPrecondition, why)
    case .unimplemented(let why): RPCError(.unimplemented, why)
    case .unavailable(let why): RPCError(.unavailable, why)
    case .deadlineExceeded(let why): RPCError(.deadlineExceeded, why)
    case .resourceExhausted(let why): RPCError(.resourceExhausted, why, metadata: ["grpc-retry-pushback-ms": "1000"])
    }
  }
}

/// Conversions between the contract's messages and the domain, shared by both services.
enum Messages {
  static func id(_ text: String, field: String) throws -> UUID {
    guard let id = UUID(strict: text) else { throw TextToSQLError.invalidArgument(field: field, reason: "must be a UUID") }
    return id
  }

  static func requestID(_ text: String) throws -> UUID? {
    text.isEmpty ? nil : try Self.id(text, field: "request_id")
  }

  static func timestamp(_ date: Date) -> Google_Protobuf_Timestamp {
    Google_Protobuf_Timestamp(date: date)
  }

  static func kind(_ type: Platform_Texttosql_V1_DatabaseType, field: String) throws -> RegisteredDatabase.Kind {
    switch type {
    case .postgresql: .postgresql
    case .sqlite: .sqlite
    case .mysql: .mysql
    case .mssql: .mssql
    case .unspecified, .UNRECOGNIZED: throw TextToSQLError.invalidArgument(field: field, reason: "must be a database type")
    }
  }

  static func type(_ kind: RegisteredDatabase.Kind) -> Platform_Texttosql_V1_DatabaseType {
    switch kind {
    case .postgresql: .postgresql
    case .sqlite: .sqlite
    case .mysql: .mysql
    case .mssql: .mssql
    }
  }

  static func config(_ message: Platform_Texttosql_V1_ConnectionConfig, kind: RegisteredDatabase.Kind, field: String) throws -> ConnectionConfig {
    let tls: ConnectionConfig.TLSMode
    switch message.sslMode {
    case .unspecified: tls = kind == .sqlite ? .disable : .require
    case .disable: tls = .disable
    case .require: tls = .require
    case .verifyFull: tls = .verifyFull
    case .UNRECOGNIZED: throw TextToSQLError.invalidArgument(field: "\(field).ssl_mode", reason: "is not an SSL mode")
    }
    return ConnectionConfig(
      host: message.host, port: Int(message.port), database: message.databaseName, username: message.username,
      password: message.password, tls: tls, options: message.options)
  }

  static func message(_ config: ConnectionConfig) -> Platform_Texttosql_V1_ConnectionConfig {
    .with {
      $0.host = config.host
      $0.port = Int32(config.port)
      $0.databaseName = config.database
      $0.username = config.username
      $0.passwordSet = !config.password.isEmpty
      $0.sslMode =
        switch config.tls {
        case .disable: .disable
        case .require: .require
        case .verifyFull: .verifyFull
        }
      $0.options = config.options
    }
  }

  static func message(_ database: OpenedDatabase) -> Platform_Texttosql_V1_Database {
    .with {
      $0.id = database.row.id.lowercasedString
      $0.userID = database.row.userID.lowercasedString
      $0.name = database.row.name
      $0.databaseType = Self.type(database.row.kind)
      $0.connection = Self.message(database.config)
      $0.isActive = database.row.isActive
      $0.version = Int32(database.row.version)
      if let synced = database.row.lastSyncAt { $0.lastSyncTime = Self.timestamp(synced) }
      $0.createTime = Self.timestamp(database.row.createdAt)
      $0.updateTime = Self.timestamp(database.row.updatedAt)
      $0.allowedTables = database.row.allowedTables
    }
  }

  static func value(_ value: ResultValue) -> Google_Protobuf_Value {
    switch value {
    case .null: Google_Protobuf_Value.with { $0.nullValue = .nullValue }
    case .bool(let flag): Google_Protobuf_Value(boolValue: flag)
    case .number(let number): Google_Protobuf_Value(numberValue: number)
    case .text(let text): Google_Protobuf_Value(stringValue: text)
    }
  }

  static func message(_ result: ResultRows, masked: [String]) -> Platform_Texttosql_V1_QueryResult {
    .with {
      $0.columns = result.columns.map { column in .with { $0.name = column.name; $0.dataType = column.dataType } }
      $0.rows = result.rows.map { row in Google_Protobuf_ListValue(values: row.map(Self.value)) }
      $0.truncated = result.truncated != nil
      $0.truncatedReason = result.truncated?.rawValue ?? ""
      $0.executionTimeMs = Int32(clamping: result.elapsed.wholeMilliseconds)
      $0.maskedColumns = masked
    }
  }

  static func message(_ query: RecordedQuery) -> Platform_Texttosql_V1_SqlQuery {
    .with {
      $0.id = query.id.lowercasedString
      $0.userID = query.userID.lowercasedString
      $0.databaseID = query.databaseID.lowercasedString
      $0.naturalLanguage = query.naturalLanguage
      $0.sql = query.sql
      $0.explanation = query.explanation
      $0.validation = .with {
        $0.isReadOnly = query.validation.isReadOnly
        $0.isSafe = query.validation.isSafe
        $0.statementType = query.validation.statementType
        $0.referencedTables = query.validation.referencedTables
        $0.issues = query.validation.issues
      }
      $0.executed = query.executed
      $0.resultRows = Int32(clamping: query.resultRows ?? 0)
      $0.executionTimeMs = Int32(clamping: query.executionMilliseconds ?? 0)
      $0.usage = .with {
        $0.promptTokens = Int32(clamping: query.promptTokens)
        $0.completionTokens = Int32(clamping: query.completionTokens)
        $0.totalTokens = Int32(clamping: query.promptTokens + query.completionTokens)
      }
      $0.createTime = Self.timestamp(query.createdAt)
      if let executed = query.executedAt { $0.executeTime = Self.timestamp(executed) }
    }
  }

  static func message(_ table: CatalogTable) -> Platform_Texttosql_V1_Table {
    .with {
      $0.schemaName = table.schema
      $0.tableName = table.name
      $0.description_p = table.description
      if let count = table.rowCount { $0.rowCount = count }
      $0.columns = table.columns.map { column in
        .with {
          $0.name = column.name
          $0.dataType = column.dataType
          $0.isNullable = column.isNullable
          $0.isPrimaryKey = column.isPrimaryKey
          $0.defaultValue = column.defaultValue ?? ""
          $0.description_p = column.description
          $0.ordinal = Int32(column.ordinal)
        }
      }
      $0.indexes = table.indexes.map { index in .with { $0.name = index.name; $0.columns = index.columns; $0.isUnique = index.isUnique } }
      $0.foreignKeys = table.foreignKeys.map { key in
        .with {
          $0.name = key.name
          $0.columns = key.columns
          $0.referencedSchema = key.referencedSchema
          $0.referencedTable = key.referencedTable
          $0.referencedColumns = key.referencedColumns
        }
      }
    }
  }

  static func pageSize(_ requested: Int32) throws -> Int {
    guard let size = PageToken.pageSize(requested, default: 50, maximum: 1000) else {
      throw TextToSQLError.invalidArgument(field: "page_size", reason: "must be 0 to 1000")
    }
    return size
  }

  static func cursor<Cursor: Decodable>(_ token: String, as type: Cursor.Type) throws -> Cursor? {
    guard !token.isEmpty else { return nil }
    guard let cursor = PageToken.decode(token, as: type) else {
      throw TextToSQLError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
    }
    return cursor
  }
}

/// `platform.texttosql.v1.DatabaseService` over protobuf.
public struct DatabaseAPI: Platform_Texttosql_V1_DatabaseServiceHandler {
  private let databases: Databases

  public init(databases: Databases) {
    self.databases = databases
  }

  public func registerDatabase(
    _ request: Platform_Texttosql_V1_RegisterDatabaseRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_Database {
    let caller = try context.requireCaller()
    let message = request.database
    let kind = try Messages.kind(message.databaseType, field: "database.database_type")
    let draft = Databases.Draft(
      name: message.name, kind: kind, config: try Messages.config(message.connection, kind: kind, field: "database.connection"),
      isActive: true, allowedTables: message.allowedTables)
    return Messages.message(
      try await self.databases.register(
        draft, caller: caller.userID, validate: request.validateConnection, requestID: try Messages.requestID(request.requestID)))
  }

  public func getDatabase(
    _ request: Platform_Texttosql_V1_GetDatabaseRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_Database {
    let caller = try context.requireCaller()
    return Messages.message(try await self.databases.database(try Messages.id(request.id, field: "id"), caller: caller.userID))
  }

  struct ListCursor: Codable {
    var name: String
    var id: UUID
    var filter: String
  }

  public func listDatabases(
    _ request: Platform_Texttosql_V1_ListDatabasesRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_ListDatabasesResponse {
    let caller = try context.requireCaller()
    let limit = try Messages.pageSize(request.pageSize)
    let kind = request.databaseType == .unspecified ? nil : try Messages.kind(request.databaseType, field: "database_type")
    let filter = "\(kind?.rawValue ?? "")/\(request.includeInactive)"
    let cursor = try Messages.cursor(request.pageToken, as: ListCursor.self)
    if let cursor, cursor.filter != filter { throw TextToSQLError.invalidArgument(field: "page_token", reason: "is not a token of this listing") }
    let page = try await self.databases.list(
      caller: caller.userID, kind: kind, includeInactive: request.includeInactive, after: cursor.map { ($0.name, $0.id) }, limit: limit)
    return .with {
      $0.databases = page.databases.map(Messages.message)
      $0.totalSize = Int32(clamping: page.total)
      if page.more, let last = page.databases.last {
        $0.nextPageToken = PageToken.encode(ListCursor(name: last.row.name, id: last.row.id, filter: filter))
      }
    }
  }

  public func updateDatabase(
    _ request: Platform_Texttosql_V1_UpdateDatabaseRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_Database {
    let caller = try context.requireCaller()
    let id = try Messages.id(request.database.id, field: "database.id")
    let paths = request.updateMask.paths
    guard !paths.isEmpty else { throw TextToSQLError.invalidArgument(field: "update_mask", reason: "names no field") }
    let message = request.database
    let updated = try await self.databases.update(id, caller: caller.userID, version: Int(request.version)) { draft in
      let given = try Messages.config(message.connection, kind: draft.kind, field: "database.connection")
      for path in paths {
        switch path {
        case "name": draft.name = message.name
        case "is_active": draft.isActive = message.isActive
        case "allowed_tables": draft.allowedTables = message.allowedTables
        case "database_type": throw TextToSQLError.invalidArgument(field: "database.database_type", reason: "is immutable")
        case "connection":
          // The whole config; an empty password keeps the stored one.
          let password = given.password.isEmpty ? draft.config.password : given.password
          draft.config = given
          draft.config.password = password
        case "connection.host": draft.config.host = given.host
        case "connection.port": draft.config.port = given.port
        case "connection.database_name": draft.config.database = given.database
        case "connection.username": draft.config.username = given.username
        case "connection.password": draft.config.password = given.password
        case "connection.ssl_mode": draft.config.tls = given.tls
        case "connection.options": draft.config.options = given.options
        default: throw TextToSQLError.invalidArgument(field: "update_mask", reason: "\(path) is not an updatable field")
        }
      }
    }
    return Messages.message(updated)
  }

  public func deleteDatabase(
    _ request: Platform_Texttosql_V1_DeleteDatabaseRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    try await self.databases.delete(
      try Messages.id(request.id, field: "id"), caller: caller.userID, version: request.version == 0 ? nil : Int(request.version))
    return Google_Protobuf_Empty()
  }

  public func testConnection(
    _ request: Platform_Texttosql_V1_TestConnectionRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_TestConnectionResponse {
    let caller = try context.requireCaller()
    let outcome: Databases.TestOutcome
    switch request.target {
    case .databaseID(let text):
      let database = try await self.databases.database(try Messages.id(text, field: "database_id"), caller: caller.userID)
      outcome = await self.databases.test(kind: database.row.kind, config: database.config)
    case .unsaved(let unsaved):
      let kind = try Messages.kind(unsaved.databaseType, field: "unsaved.database_type")
      let draft = Databases.Draft(
        name: "unsaved", kind: kind, config: try Messages.config(unsaved.connection, kind: kind, field: "unsaved.connection"),
        isActive: true, allowedTables: [])
      outcome = try await self.databases.test(unsaved: draft)
    case nil:
      throw TextToSQLError.invalidArgument(field: "target", reason: "name a database_id or an unsaved database")
    }
    return .with {
      switch outcome {
      case .success(let report):
        $0.ok = true
        $0.latencyMs = Int32(clamping: report.latencyMilliseconds)
        $0.serverVersion = report.serverVersion
        $0.canWrite = !report.writePrivileges.isEmpty
        $0.writePrivileges = report.writePrivileges
        if $0.canWrite {
          $0.recommendation = """
            This role can change data. Register a role that can only read: CREATE ROLE reader LOGIN PASSWORD '…'; \
            GRANT CONNECT ON DATABASE … TO reader; GRANT USAGE ON SCHEMA public TO reader; \
            GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader.
            """
        }
      case .failure(let why):
        $0.ok = false
        $0.message = why
      }
    }
  }

  public func syncSchema(
    _ request: Platform_Texttosql_V1_SyncSchemaRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_SyncSchemaResponse {
    let caller = try context.requireCaller()
    let result = try await self.databases.sync(
      try Messages.id(request.databaseID, field: "database_id"), caller: caller.userID, schemas: request.schemaNames,
      enhance: request.enhanceDescriptions)
    return .with {
      $0.schemaCount = Int32(result.schemas)
      $0.tableCount = Int32(result.tables)
      $0.removedTableCount = Int32(result.removed)
      $0.syncTime = Messages.timestamp(result.syncedAt)
    }
  }

  public func listSchemas(
    _ request: Platform_Texttosql_V1_ListSchemasRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_ListSchemasResponse {
    let caller = try context.requireCaller()
    let database = try await self.databases.database(try Messages.id(request.databaseID, field: "database_id"), caller: caller.userID)
    let limit = try Messages.pageSize(request.pageSize)
    let after = try Messages.cursor(request.pageToken, as: String.self)
    let page = try await self.databases.store.schemas(databaseID: database.row.id, after: after, limit: limit)
    return .with {
      $0.schemas = page.schemas.map { schema in
        .with {
          $0.id = schema.id.lowercasedString
          $0.databaseID = database.row.id.lowercasedString
          $0.schemaName = schema.name
          $0.description_p = schema.description
          $0.isEnhanced = schema.isEnhanced
          if let enhanced = schema.enhancedAt { $0.enhanceTime = Messages.timestamp(enhanced) }
          $0.createTime = Messages.timestamp(schema.createdAt)
          $0.updateTime = Messages.timestamp(schema.updatedAt)
        }
      }
      $0.totalSize = Int32(clamping: page.total)
      if page.more, let last = page.schemas.last { $0.nextPageToken = PageToken.encode(last.name) }
    }
  }

  struct TableCursor: Codable {
    var schema: String
    var table: String
    var filter: String
  }

  public func listTables(
    _ request: Platform_Texttosql_V1_ListTablesRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_ListTablesResponse {
    let caller = try context.requireCaller()
    let database = try await self.databases.database(try Messages.id(request.databaseID, field: "database_id"), caller: caller.userID)
    let limit = try Messages.pageSize(request.pageSize)
    let filter = request.schemaName
    let cursor = try Messages.cursor(request.pageToken, as: TableCursor.self)
    if let cursor, cursor.filter != filter { throw TextToSQLError.invalidArgument(field: "page_token", reason: "is not a token of this listing") }
    let page = try await self.databases.store.tables(
      databaseID: database.row.id, schema: filter.isEmpty ? nil : filter, after: cursor.map { ($0.schema, $0.table) }, limit: limit,
      withSamples: request.includeSampleData)
    var tables: [Platform_Texttosql_V1_Table] = page.tables.map { row in
      var message = Messages.message(row.table)
      message.id = row.id.lowercasedString
      message.schemaID = row.schemaID.lowercasedString
      if let analyzed = row.analyzedAt { message.lastAnalyzeTime = Messages.timestamp(analyzed) }
      message.createTime = Messages.timestamp(row.createdAt)
      message.updateTime = Messages.timestamp(row.updatedAt)
      if let samples = row.sampleRows, let list = try? Google_Protobuf_ListValue(jsonString: samples) {
        message.sampleRows = list.values.compactMap { if case .structValue(let object)? = $0.kind { object } else { nil } }
      }
      return message
    }
    // Pages stay under the message limit by bytes too (every stored field has a byte limit).
    let fitting = ResponseBudget.fittingCount(tables) { (try? $0.serializedBytes() as [UInt8])?.count ?? ResponseBudget.listBytes }
    let more = page.more || fitting < tables.count
    tables = Array(tables.prefix(fitting))
    return .with {
      $0.tables = tables
      $0.totalSize = Int32(clamping: page.total)
      if more, let last = tables.last {
        $0.nextPageToken = PageToken.encode(TableCursor(schema: last.schemaName, table: last.tableName, filter: filter))
      }
    }
  }

  public func setColumnPolicy(
    _ request: Platform_Texttosql_V1_SetColumnPolicyRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_ColumnPolicy {
    let caller = try context.requireCaller()
    let id = try Messages.id(request.databaseID, field: "database_id")
    let effect: ColumnPolicies.Effect
    switch request.policy.effect {
    case .deny: effect = .deny
    case .mask:
      switch request.policy.mask {
      case .unspecified, .null: effect = .mask(.null)
      case .hash: effect = .mask(.hash)
      case .partial: effect = .mask(.partial)
      case .UNRECOGNIZED: throw TextToSQLError.invalidArgument(field: "policy.mask", reason: "is not a mask kind")
      }
    case .unspecified, .UNRECOGNIZED: throw TextToSQLError.invalidArgument(field: "policy.effect", reason: "must be DENY or MASK")
    }
    let column = ColumnName(table: request.policy.tableName, column: request.policy.columnName)
    return Self.message(try await self.databases.setPolicy(id, caller: caller.userID, column: column, effect: effect))
  }

  public func listColumnPolicies(
    _ request: Platform_Texttosql_V1_ListColumnPoliciesRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_ListColumnPoliciesResponse {
    let caller = try context.requireCaller()
    let policies = try await self.databases.storedPolicies(try Messages.id(request.databaseID, field: "database_id"), caller: caller.userID)
    return .with { $0.policies = policies.map(Self.message) }
  }

  public func deleteColumnPolicy(
    _ request: Platform_Texttosql_V1_DeleteColumnPolicyRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    try await self.databases.deletePolicy(
      try Messages.id(request.databaseID, field: "database_id"), caller: caller.userID,
      column: ColumnName(table: request.tableName, column: request.columnName))
    return Google_Protobuf_Empty()
  }

  static func message(_ policy: StoredPolicy) -> Platform_Texttosql_V1_ColumnPolicy {
    .with {
      $0.id = policy.id
      $0.databaseID = policy.databaseID.lowercasedString
      $0.tableName = policy.column.table
      $0.columnName = policy.column.column
      switch policy.effect {
      case .deny: $0.effect = .deny
      case .mask(let kind):
        $0.effect = .mask
        $0.mask =
          switch kind {
          case .null: .null
          case .hash: .hash
          case .partial: .partial
          }
      }
      $0.createTime = Messages.timestamp(policy.createdAt)
    }
  }
}

/// `platform.texttosql.v1.QueryService` over protobuf.
public struct QueryAPI: Platform_Texttosql_V1_QueryServiceHandler {
  private let queries: Queries

  public init(queries: Queries) {
    self.queries = queries
  }

  public func generateSql(
    _ request: Platform_Texttosql_V1_GenerateSqlRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_SqlQuery {
    let caller = try context.requireCaller()
    return Messages.message(
      try await self.queries.generate(
        question: request.question, databaseID: try Messages.id(request.databaseID, field: "database_id"), schemas: request.schemaNames,
        caller: caller, requestID: try Messages.requestID(request.requestID)))
  }

  public func executeQuery(
    _ request: Platform_Texttosql_V1_ExecuteQueryRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_ExecuteQueryResponse {
    let caller = try context.requireCaller()
    let source: Queries.Source
    switch request.query {
    case .sql(let sql): source = .sql(sql)
    case .queryID(let id): source = .recorded(try Messages.id(id, field: "query_id"))
    case nil: throw TextToSQLError.invalidArgument(field: "sql", reason: "give sql or query_id")
    }
    let (query, result) = try await self.queries.execute(
      source, databaseID: try Messages.id(request.databaseID, field: "database_id"), caller: caller,
      limits: Queries.Limits(maxRows: Int(request.maxRows), timeoutMilliseconds: Int(request.timeoutMs)),
      requestID: try Messages.requestID(request.requestID), deadline: context.deadline)
    return .with {
      $0.query = Messages.message(query)
      $0.result = Messages.message(result.rows, masked: result.masked)
    }
  }

  public func askQuestion(
    _ request: Platform_Texttosql_V1_AskQuestionRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_AskQuestionResponse {
    let caller = try context.requireCaller()
    let (query, result) = try await self.queries.ask(
      question: request.question, databaseID: try Messages.id(request.databaseID, field: "database_id"), schemas: request.schemaNames,
      caller: caller, limits: Queries.Limits(maxRows: Int(request.maxRows), timeoutMilliseconds: Int(request.timeoutMs)),
      requestID: try Messages.requestID(request.requestID), deadline: context.deadline)
    return .with {
      $0.query = Messages.message(query)
      if let result { $0.result = Messages.message(result.rows, masked: result.masked) }
    }
  }

  public func getQuery(
    _ request: Platform_Texttosql_V1_GetQueryRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_SqlQuery {
    let caller = try context.requireCaller()
    return Messages.message(try await self.queries.query(try Messages.id(request.id, field: "id"), caller: caller.userID))
  }

  struct QueryCursor: Codable {
    var createdMicros: Int64
    var id: UUID
    var filter: String
  }

  public func listQueries(
    _ request: Platform_Texttosql_V1_ListQueriesRequest, context: ServerContext
  ) async throws -> Platform_Texttosql_V1_ListQueriesResponse {
    let caller = try context.requireCaller()
    let limit = try Messages.pageSize(request.pageSize)
    let database = request.databaseID.isEmpty ? nil : try Messages.id(request.databaseID, field: "database_id")
    let search = request.query.trimmingCharacters(in: .whitespaces)
    guard search.utf8.count <= 500 else { throw TextToSQLError.invalidArgument(field: "query", reason: "must be at most 500 bytes") }
    let filter = "\(request.databaseID)/\(search)/\(request.executedOnly)"
    let cursor = try Messages.cursor(request.pageToken, as: QueryCursor.self)
    if let cursor, cursor.filter != filter { throw TextToSQLError.invalidArgument(field: "page_token", reason: "is not a token of this listing") }
    let page = try await self.queries.list(
      caller: caller.userID, databaseID: database, search: search.isEmpty ? nil : search, executedOnly: request.executedOnly,
      after: cursor.map { (Date(timeIntervalSince1970: Double($0.createdMicros) / 1_000_000), $0.id) }, limit: limit)
    return .with {
      $0.queries = page.queries.map(Messages.message)
      $0.totalSize = Int32(clamping: page.total)
      if page.more, let last = page.queries.last {
        $0.nextPageToken = PageToken.encode(
          QueryCursor(createdMicros: Int64((last.createdAt.timeIntervalSince1970 * 1_000_000).rounded(.down)), id: last.id, filter: filter))
      }
    }
  }
}

extension TextToSQLAPI {
  public static let accessPolicy = AccessPolicy([
    Platform_Texttosql_V1_DatabaseService.Method.registerDatabase: "sql:write",
    Platform_Texttosql_V1_DatabaseService.Method.getDatabase: "sql:read",
    Platform_Texttosql_V1_DatabaseService.Method.listDatabases: "sql:read",
    Platform_Texttosql_V1_DatabaseService.Method.updateDatabase: "sql:write",
    Platform_Texttosql_V1_DatabaseService.Method.deleteDatabase: "sql:write",
    Platform_Texttosql_V1_DatabaseService.Method.testConnection: "sql:read",
    Platform_Texttosql_V1_DatabaseService.Method.syncSchema: "sql:write",
    Platform_Texttosql_V1_DatabaseService.Method.listSchemas: "sql:read",
    Platform_Texttosql_V1_DatabaseService.Method.listTables: "sql:read",
    Platform_Texttosql_V1_DatabaseService.Method.setColumnPolicy: "sql:write",
    Platform_Texttosql_V1_DatabaseService.Method.listColumnPolicies: "sql:read",
    Platform_Texttosql_V1_DatabaseService.Method.deleteColumnPolicy: "sql:write",
    Platform_Texttosql_V1_QueryService.Method.generateSql: "sql:read",
    Platform_Texttosql_V1_QueryService.Method.executeQuery: "sql:execute",
    Platform_Texttosql_V1_QueryService.Method.askQuestion: "sql:execute",
    Platform_Texttosql_V1_QueryService.Method.getQuery: "sql:read",
    Platform_Texttosql_V1_QueryService.Method.listQueries: "sql:read",
  ])
}

/// The two services' shared names.
public enum TextToSQLAPI {}
