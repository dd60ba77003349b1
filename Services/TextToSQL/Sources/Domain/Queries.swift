public import Foundation
public import Logging
public import PlatformCore

/// Questions → SQL → guarded, read-only runs, all recorded in sql_queries.
public struct Queries: Sendable {
  let databases: Databases
  let store: QueryStore
  let generator: any SQLGenerator
  let audit: AuditLog
  let logger: Logger

  public init(databases: Databases, store: QueryStore, generator: any SQLGenerator, audit: AuditLog, logger: Logger) {
    self.databases = databases
    self.store = store
    self.generator = generator
    self.audit = audit
    self.logger = logger
  }

  /// A run's limits as asked (0 = default), checked.
  public struct Limits: Sendable {
    public var maxRows: Int
    public var timeoutMilliseconds: Int

    public init(maxRows: Int, timeoutMilliseconds: Int) {
      self.maxRows = maxRows
      self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// The result's size bound: under the 4 MiB message limit with room for the encoding.
    static let maxBytes = 2 << 20

    func resolved(deadline: ContinuousClock.Instant?) throws -> QueryLimits {
      guard (0...10_000).contains(self.maxRows) else { throw TextToSQLError.invalidArgument(field: "max_rows", reason: "must be 0 to 10000") }
      guard (0...120_000).contains(self.timeoutMilliseconds) else {
        throw TextToSQLError.invalidArgument(field: "timeout_ms", reason: "must be 0 to 120000")
      }
      var timeout = Duration.milliseconds(self.timeoutMilliseconds == 0 ? 30_000 : self.timeoutMilliseconds)
      if let deadline {
        // Leave the call time to record the run and answer.
        let remaining = deadline - .now - .milliseconds(200)
        guard remaining > .milliseconds(10) else { throw TextToSQLError.deadlineExceeded("The call's deadline leaves no time to run") }
        timeout = min(timeout, remaining)
      }
      return QueryLimits(maxRows: self.maxRows == 0 ? 1000 : self.maxRows, maxBytes: Self.maxBytes, timeout: timeout)
    }
  }

  // MARK: - The guard for a database

  /// The guard of `database`: its synced relations (narrowed by its allowlist), their
  /// columns, its dialect and its column policies.
  func sqlGuard(for database: OpenedDatabase, catalog: SchemaCatalog, policies: ColumnPolicies) -> SQLGuard {
    let allowed = Set(database.row.allowedTables)
    var relations = Set<String>()
    var columns: [String: Set<String>] = [:]
    for table in catalog.tables {
      let qualified = table.qualifiedName.lowercased()
      guard allowed.isEmpty || allowed.contains(qualified) else { continue }
      let names = Set(table.columns.map { $0.name.lowercased() })
      relations.insert(qualified)
      relations.insert(table.name.lowercased())
      columns[qualified, default: []].formUnion(names)
      columns[table.name.lowercased(), default: []].formUnion(names)
    }
    return SQLGuard(
      relations: relations, columns: columns, dialect: database.row.kind == .sqlite ? .sqlite : .postgresql, policies: policies)
  }

  static func validation(_ outcome: Result<SQLGuard.Checked, SQLGuard.Refusal>) -> RecordedQuery.Validation {
    switch outcome {
    case .success(let checked):
      return RecordedQuery.Validation(
        isReadOnly: true, isSafe: true, statementType: "SELECT", referencedTables: checked.relations.sorted(), issues: [], layer: nil)
    case .failure(let refusal):
      let readOnly = refusal.layer != "parser"
      return RecordedQuery.Validation(
        isReadOnly: readOnly, isSafe: false, statementType: readOnly ? "SELECT" : "", referencedTables: [], issues: [refusal.description],
        layer: refusal.layer)
    }
  }

  // MARK: - ExecuteQuery

  public enum Source: Sendable {
    case sql(String)
    case recorded(UUID)
  }

  public func execute(
    _ source: Source, databaseID: UUID, caller: Caller, limits: Limits, requestID: UUID?, deadline: ContinuousClock.Instant?
  ) async throws -> (query: RecordedQuery, result: RunResult) {
    let resolved = try limits.resolved(deadline: deadline)
    let database = try await self.usable(databaseID, caller: caller.userID)
    let catalog = try await self.databases.catalog(of: database.row)
    let policies = try await self.databases.policies(databaseID)
    let sqlGuard = self.sqlGuard(for: database, catalog: catalog, policies: policies)
    switch source {
    case .sql(let sql):
      guard !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
        throw TextToSQLError.invalidArgument(field: "sql", reason: "is empty")
      }
      let outcome = sqlGuard.check(sql)
      let id = UUID()
      guard case .success(let checked) = outcome else {
        _ = try await self.record(
          id: id, sql: sql, question: "", explanation: "", validation: Self.validation(outcome), generated: nil, database: databaseID,
          caller: caller.userID, requestID: requestID)
        throw await self.refused(outcome, database: databaseID, caller: caller, policies: policies)
      }
      // Run first, then record the query with its outcome: one write.
      let ran: Result<RunResult, TextToSQLError>
      do {
        ran = .success(try await self.run(checked, queryID: id, database: database, policies: policies, caller: caller, limits: resolved))
      } catch {
        ran = .failure(error)
      }
      let query = try await self.record(
        id: id, sql: sql, question: "", explanation: "", validation: Self.validation(outcome), generated: nil, database: databaseID,
        caller: caller.userID, requestID: requestID, outcome: ran.map(\.rows))
      return (query, try ran.get())
    case .recorded(let id):
      guard let recorded = try await self.store.get(id, userID: caller.userID), recorded.databaseID == databaseID else {
        throw TextToSQLError.notFound("Query not found")
      }
      let outcome = sqlGuard.check(recorded.sql)
      guard case .success(let checked) = outcome else {
        throw await self.refused(outcome, database: databaseID, caller: caller, policies: policies)
      }
      return try await self.runRecorded(recorded, checked: checked, database: database, policies: policies, caller: caller, limits: resolved)
    }
  }

  /// The error of a refused statement, its column-policy decision audited.
  private func refused(
    _ outcome: Result<SQLGuard.Checked, SQLGuard.Refusal>, database: UUID, caller: Caller, policies: ColumnPolicies
  ) async -> TextToSQLError {
    guard case .failure(let refusal) = outcome else { return .invalidArgument(field: "sql", reason: "was refused") }
    await self.auditRefusal(refusal, database: database, caller: caller, policies: policies)
    return .invalidArgument(field: "sql", reason: refusal.description)
  }

  /// Runs a recorded query and records the outcome on it.
  private func runRecorded(
    _ query: RecordedQuery, checked: SQLGuard.Checked, database: OpenedDatabase, policies: ColumnPolicies, caller: Caller,
    limits: QueryLimits
  ) async throws -> (query: RecordedQuery, result: RunResult) {
    do {
      let result = try await self.run(checked, queryID: query.id, database: database, policies: policies, caller: caller, limits: limits)
      let recorded = try await self.store.recordRun(
        query.id, rows: result.rows.rows.count, milliseconds: Int(result.rows.elapsed.wholeMilliseconds), error: nil)
      return (recorded, result)
    } catch let error as TextToSQLError {
      _ = try? await self.store.recordRun(query.id, rows: nil, milliseconds: 0, error: error.message)
      throw error
    }
  }

  /// Runs a checked statement on its target, masks the result and audits the masking.
  private func run(
    _ checked: SQLGuard.Checked, queryID: UUID, database: OpenedDatabase, policies: ColumnPolicies, caller: Caller, limits: QueryLimits
  ) async throws(TextToSQLError) -> RunResult {
    var result: ResultRows
    do {
      let target = try await self.databases.targets.target(kind: database.row.kind, config: database.config, key: Targets.key(database.row))
      if let sqlite = target as? SQLiteTarget {
        let allowed = database.row.allowedTables
        let tables = allowed.isEmpty ? nil : Set(allowed.compactMap { $0.hasPrefix("main.") ? String($0.dropFirst(5)) : nil })
        result = try await sqlite.run(checked.statement, limits: limits, policy: SQLiteReadPolicy(tables: tables, deniedColumns: policies.denied))
      } else {
        result = try await target.run(checked.statement, limits: limits, origins: !checked.masked.isEmpty)
      }
    } catch {
      throw TextToSQLError.target(error)
    }
    let masked = ResultMasker.mask(&result, rules: checked.masked)
    if !masked.isEmpty {
      await self.audit.recordOrLog(
        AuditEvent(
          subject: caller.userID.uuidString.lowercased(),
          resource: "sql:\(database.row.id.uuidString.lowercased())", action: "query", decision: .mask,
          detail: ["query_id": queryID.uuidString.lowercased()], policyID: checked.masked.first?.id,
          maskedFields: checked.masked.map(\.column.description)))
    }
    return RunResult(rows: result, masked: masked)
  }

  private func auditRefusal(_ refusal: SQLGuard.Refusal, database: UUID, caller: Caller, policies: ColumnPolicies) async {
    guard case .column(let why) = refusal else { return }
    let rule = policies.rules.first { why.hasPrefix($0.column.description) }
    await self.audit.recordOrLog(
      AuditEvent(
        subject: caller.userID.uuidString.lowercased(), resource: "sql:\(database.uuidString.lowercased())", action: "query",
        decision: .deny, detail: ["reason": why], policyID: rule?.id))
  }

  private func usable(_ id: UUID, caller: UUID) async throws -> OpenedDatabase {
    let database = try await self.databases.database(id, caller: caller)
    guard database.row.isActive else { throw TextToSQLError.failedPrecondition("The database is inactive") }
    return database
  }

  /// Records a query; with `outcome`, the run it had (its rows, or why it failed).
  private func record(
    id: UUID = UUID(), sql: String, question: String, explanation: String, validation: RecordedQuery.Validation,
    generated: GeneratedSQL?, database: UUID, caller: UUID, requestID: UUID?, outcome: Result<ResultRows, TextToSQLError>? = nil
  ) async throws -> RecordedQuery {
    // PostgreSQL text holds no NUL; what was refused for one is recorded with U+FFFD instead.
    let storable = { (text: String) in text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") }
    let query = RecordedQuery(
      id: id, userID: caller, databaseID: database, naturalLanguage: storable(question),
      sql: storable(sql).truncated(toUTF8Bytes: SQLGuard.maxBytes), explanation: explanation.truncated(toUTF8Bytes: 8192), validation: validation,
      generator: generated == nil ? nil : self.generator.name, promptTokens: generated?.promptTokens ?? 0,
      completionTokens: generated?.completionTokens ?? 0, executed: (try? outcome?.get()) != nil,
      resultRows: (try? outcome?.get())?.rows.count, executionMilliseconds: (try? outcome?.get()).map { Int($0.elapsed.wholeMilliseconds) },
      errorMessage: outcome.flatMap { if case .failure(let error) = $0 { error.message } else { nil } }, createdAt: Date(),
      executedAt: outcome == nil ? nil : Date())
    return try await self.store.insert(query, requestID: requestID).query
  }

  // MARK: - GenerateSql and AskQuestion

  static let maxAttempts = 3

  public func generate(
    question: String, databaseID: UUID, schemas: [String], caller: Caller, requestID: UUID?
  ) async throws -> RecordedQuery {
    try await self.answer(question: question, databaseID: databaseID, schemas: schemas, caller: caller, requestID: requestID, run: nil).query
  }

  public func ask(
    question: String, databaseID: UUID, schemas: [String], caller: Caller, limits: Limits, requestID: UUID?,
    deadline: ContinuousClock.Instant?
  ) async throws -> (query: RecordedQuery, result: RunResult?) {
    let resolved = try limits.resolved(deadline: deadline)
    return try await self.answer(question: question, databaseID: databaseID, schemas: schemas, caller: caller, requestID: requestID, run: resolved)
  }

  /// Generates SQL (retrying at most twice with what the guard or the database said), records
  /// it, and with `run` limits runs it when it is safe.
  private func answer(
    question: String, databaseID: UUID, schemas: [String], caller: Caller, requestID: UUID?, run limits: QueryLimits?
  ) async throws -> (query: RecordedQuery, result: RunResult?) {
    let question = question.trimmingCharacters(in: .whitespacesAndNewlines)
    guard (1...2000).contains(question.count), question.utf8.count <= 8000 else {
      throw TextToSQLError.invalidArgument(field: "question", reason: "must be 1 to 2000 characters")
    }
    let database = try await self.usable(databaseID, caller: caller.userID)
    let catalog = try await self.databases.catalog(of: database.row)
    let policies = try await self.databases.policies(databaseID)
    let sqlGuard = self.sqlGuard(for: database, catalog: catalog, policies: policies)
    let context = try await self.context(question: question, database: database, catalog: catalog, schemas: schemas, policies: policies)
    let examples = (try? await self.store.examples(databaseID: databaseID, userID: caller.userID, question: question, limit: 3)) ?? []
    var feedback: [(sql: String, error: String)] = []
    var last: (generated: GeneratedSQL, outcome: Result<SQLGuard.Checked, SQLGuard.Refusal>)?
    for _ in 0..<Self.maxAttempts {
      let generated: GeneratedSQL
      do {
        generated = try await self.generator.generate(
          GenerationRequest(question: question, catalog: context, dialect: database.row.kind == .sqlite ? .sqlite : .postgresql,
                            examples: examples, feedback: feedback))
      } catch {
        switch error {
        case .unavailable(let why): throw TextToSQLError.unavailable("The model provider failed: \(why)")
        case .unsupported(let why):
          // Recorded with its reason: the query says why there is no SQL.
          let validation = RecordedQuery.Validation(
            isReadOnly: false, isSafe: false, statementType: "", referencedTables: [], issues: [why], layer: "generator")
          let query = try await self.record(
            sql: "", question: question, explanation: why, validation: validation, generated: nil, database: databaseID,
            caller: caller.userID, requestID: requestID)
          return (query, nil)
        }
      }
      let outcome = sqlGuard.check(generated.sql)
      last = (generated, outcome)
      guard case .success(let checked) = outcome else {
        if case .failure(let refusal) = outcome { feedback.append((generated.sql, refusal.description)) }
        continue
      }
      guard let limits else { break }
      // Run it; a statement the database rejects goes back to the generator with the error.
      let query = try await self.record(
        sql: generated.sql, question: question, explanation: generated.explanation, validation: Self.validation(outcome),
        generated: generated, database: databaseID, caller: caller.userID, requestID: requestID)
      do {
        let ran = try await self.runRecorded(query, checked: checked, database: database, policies: policies, caller: caller, limits: limits)
        return (ran.query, ran.result)
      } catch TextToSQLError.invalidArgument(_, let reason) where feedback.count + 1 < Self.maxAttempts {
        feedback.append((generated.sql, reason))
        continue
      }
    }
    guard let last else { throw TextToSQLError.unavailable("The generator produced nothing") }
    let query = try await self.record(
      sql: last.generated.sql, question: question, explanation: last.generated.explanation, validation: Self.validation(last.outcome),
      generated: last.generated, database: databaseID, caller: caller.userID, requestID: requestID)
    return (query, nil)
  }

  /// What the generator sees: the synced tables (allowed, in the named schemas), narrowed to
  /// those the question's words find in their descriptions (and the tables they reference) when
  /// there are many; denied columns removed.
  private func context(
    question: String, database: OpenedDatabase, catalog: SchemaCatalog, schemas: [String], policies: ColumnPolicies
  ) async throws -> SchemaCatalog {
    let allowed = Set(database.row.allowedTables)
    let denied = policies.denied
    var tables = catalog.tables.filter { table in
      (allowed.isEmpty || allowed.contains(table.qualifiedName.lowercased())) && (schemas.isEmpty || schemas.contains(table.schema))
    }
    if tables.count > Self.maxContextTables {
      let matches = try await self.databases.store.matchingTables(databaseID: database.row.id, question: question, limit: 8)
      var picked = Set(matches)
      for table in tables where picked.contains(table.qualifiedName) {
        for key in table.foreignKeys { picked.insert("\(key.referencedSchema).\(key.referencedTable)") }
      }
      let narrowed = tables.filter { picked.contains($0.qualifiedName) }
      tables = narrowed.isEmpty ? Array(tables.prefix(Self.maxContextTables)) : narrowed
    }
    for index in tables.indices {
      let name = tables[index].qualifiedName
      tables[index].columns.removeAll { denied.contains(ColumnName(table: name, column: $0.name)) }
    }
    return SchemaCatalog(tables: tables)
  }

  static let maxContextTables = 30

  // MARK: - History

  public func query(_ id: UUID, caller: UUID) async throws -> RecordedQuery {
    guard let query = try await self.store.get(id, userID: caller) else { throw TextToSQLError.notFound("Query not found") }
    return query
  }

  public func list(
    caller: UUID, databaseID: UUID?, search: String?, executedOnly: Bool, after: (Date, UUID)?, limit: Int
  ) async throws -> (queries: [RecordedQuery], total: Int, more: Bool) {
    try await self.store.list(userID: caller, databaseID: databaseID, search: search, executedOnly: executedOnly, after: after, limit: limit)
  }
}

/// A run's rows, masked, and which result columns were masked.
public struct RunResult: Sendable {
  public var rows: ResultRows
  public var masked: [String]
}

/// Result values as JSON (sample rows) .
enum QueryResults {
  static func json(_ value: ResultValue) -> JSONValue {
    switch value {
    case .null: .null
    case .bool(let flag): .bool(flag)
    case .number(let number): .number(number)
    case .text(let text): .string(text)
    }
  }
}
