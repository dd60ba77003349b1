public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of sql_queries in sql_db.
public struct QueryStore: Sendable {
  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  private static let columns = """
    id, user_id, database_id, natural_language, generated_sql, coalesce(explanation, ''), coalesce(validation_result::text, '{}'),
    generator, prompt_tokens, completion_tokens, executed, result_rows, execution_time_ms, error_message, created_at, executed_at
    """

  private static func query(_ row: PostgresRow) throws -> RecordedQuery {
    let c = try row.decode((UUID, UUID, UUID, String, String, String, String, String?, Int, Int, Bool, Int?, Int?, String?, Date, Date?).self)
    let validation = (try? JSONDecoder().decode(RecordedQuery.Validation.self, from: Data(c.6.utf8)))
      ?? RecordedQuery.Validation(isReadOnly: false, isSafe: false, statementType: "", referencedTables: [], issues: [], layer: nil)
    return RecordedQuery(
      id: c.0, userID: c.1, databaseID: c.2, naturalLanguage: c.3, sql: c.4, explanation: c.5, validation: validation, generator: c.7,
      promptTokens: c.8, completionTokens: c.9, executed: c.10, resultRows: c.11, executionMilliseconds: c.12, errorMessage: c.13,
      createdAt: c.14, executedAt: c.15)
  }

  /// Records `query`; with a request id this user already used, the first one (`created` false).
  public func insert(_ query: RecordedQuery, requestID: UUID?) async throws -> (query: RecordedQuery, created: Bool) {
    let validation = String(decoding: try JSONEncoder().encode(query.validation), as: UTF8.self)
    let rows = try await self.database.query(
      """
      INSERT INTO sql_queries (id, user_id, database_id, natural_language, generated_sql, explanation, validation_result, is_safe,
        generator, prompt_tokens, completion_tokens, request_id, executed, result_rows, execution_time_ms, error_message, executed_at)
      VALUES (\(query.id), \(query.userID), \(query.databaseID), \(query.naturalLanguage), \(query.sql), \(query.explanation),
        \(validation)::jsonb, \(query.validation.isSafe), \(query.generator), \(query.promptTokens), \(query.completionTokens), \(requestID),
        \(query.executed), \(query.resultRows), \(query.executionMilliseconds), \(query.errorMessage.map { $0.truncated(toUTF8Bytes: 4096) }),
        CASE WHEN \(query.executedAt != nil) THEN clock_timestamp() END)
      ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
      RETURNING \(unescaped: Self.columns)
      """, logger: self.logger)
    if let inserted = rows.first { return (try Self.query(inserted), true) }
    let existing = try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM sql_queries WHERE user_id = \(query.userID) AND request_id = \(requestID)", logger: self.logger)
    return (try Self.query(existing[0]), false)
  }

  /// Records a run's outcome.
  public func recordRun(_ id: UUID, rows: Int?, milliseconds: Int, error: String?) async throws -> RecordedQuery {
    let updated = try await self.database.query(
      """
      UPDATE sql_queries SET executed = \(error == nil), result_rows = \(rows), execution_time_ms = \(milliseconds),
        error_message = \(error.map { $0.truncated(toUTF8Bytes: 4096) }), executed_at = clock_timestamp()
      WHERE id = \(id) RETURNING \(unescaped: Self.columns)
      """, logger: self.logger)
    return try Self.query(updated[0])
  }

  public func get(_ id: UUID, userID: UUID) async throws -> RecordedQuery? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM sql_queries WHERE id = \(id) AND user_id = \(userID)", logger: self.logger
    ).first.map(Self.query)
  }

  /// The user's queries, newest first, after `after` (created_at, id).
  public func list(
    userID: UUID, databaseID: UUID?, search: String?, executedOnly: Bool, after: (Date, UUID)?, limit: Int
  ) async throws -> (queries: [RecordedQuery], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM sql_queries
      WHERE user_id = \(userID) AND (\(databaseID)::uuid IS NULL OR database_id = \(databaseID)) AND (\(!executedOnly) OR executed)
        AND (\(search)::text IS NULL OR to_tsvector('english', natural_language) @@ websearch_to_tsquery('english', \(search ?? "")))
        AND (\(after?.0)::timestamptz IS NULL OR (created_at, id) < (\(after?.0 ?? Date()), \(after?.1 ?? UUID())))
      ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      """
      SELECT count(*)::int8 FROM sql_queries
      WHERE user_id = \(userID) AND (\(databaseID)::uuid IS NULL OR database_id = \(databaseID)) AND (\(!executedOnly) OR executed)
        AND (\(search)::text IS NULL OR to_tsvector('english', natural_language) @@ websearch_to_tsquery('english', \(search ?? "")))
      """, logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.query), Int(total), rows.count > limit)
  }

  /// Questions like `question` that ran successfully on this database: examples for the model,
  /// distinct, the best ranked among the caller's 100 latest there. Bounded on purpose: the
  /// history grows with every question, and matching or ranking all of it (the full-text index
  /// finds every user's matching rows) cost more with each one asked. The 100 come from
  /// idx_sql_queries_examples alone, whatever other users have written since.
  public func examples(databaseID: UUID, userID: UUID, question: String, limit: Int) async throws -> [(question: String, sql: String)] {
    try await self.database.query(
      """
      WITH latest AS MATERIALIZED (
          SELECT natural_language, natural_language_tsv, generated_sql, created_at FROM sql_queries
          WHERE user_id = \(userID) AND database_id = \(databaseID) AND executed AND is_safe AND natural_language <> ''
          ORDER BY (created_at AT TIME ZONE 'UTC') DESC LIMIT 100),
        query AS (SELECT replace(plainto_tsquery('english', \(question))::text, '&', '|')::tsquery AS q)
      SELECT DISTINCT ON (rank, natural_language) natural_language, generated_sql FROM (
        SELECT latest.*, ts_rank(latest.natural_language_tsv, query.q) AS rank
        FROM latest, query
        WHERE latest.natural_language_tsv @@ query.q) ranked
      ORDER BY rank DESC, natural_language, created_at DESC LIMIT \(limit)
      """, logger: self.logger
    ).map { row in
      let (question, sql) = try row.decode((String, String).self)
      return (question, sql)
    }
  }
}
