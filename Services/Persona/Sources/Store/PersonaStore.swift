public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// Where a listing continues: after the row with this sort key and id.
public struct PersonaCursor: Codable, Sendable, Hashable {
  public var sortKey: Int64
  public var id: UUID
}

/// What a persona listing asks for.
public struct PersonaListQuery: Sendable {
  public var viewer: UUID
  public var includePublic: Bool
  public var text: String?
  public var order: PersonaOrder
  public var after: PersonaCursor?
  public var limit: Int
}

/// The SQL of persona_db. Every read and write names the user it acts for; rows of other users
/// are reachable only when public, and only for reading.
public struct PersonaStore: Sendable {
  private let database: Database
  private let logger: Logger
  private let usage: UsageCounts

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
    self.usage = UsageCounts(database: database, logger: logger)
  }

  private static let personaColumns =
    "id, user_id, name, description, template, variables::text, is_public, usage_count, rating::float8, rating_count, version, created_at, updated_at, deleted_at, revision"
  private typealias PersonaRow = (UUID, UUID, String, String?, String, String, Bool, Int, Double?, Int, Int, Date, Date, Date?, Int64)

  private static func persona(_ row: PersonaRow) throws -> Persona {
    Persona(
      id: row.0, ownerID: row.1, name: row.2, description: row.3 ?? "", template: row.4,
      variables: try JSONValue(jsonText: row.5), isPublic: row.6, usageCount: row.7, rating: row.8,
      ratingCount: row.9, version: row.10, createdAt: row.11, updatedAt: row.12, deletedAt: row.13, revision: row.14)
  }

  private func personas(_ query: PostgresQuery) async throws -> [Persona] {
    var personas: [Persona] = []
    for row in try await self.database.query(query, logger: self.logger).decode(PersonaRow.self) {
      personas.append(try Self.persona(row))
    }
    return personas
  }

  // MARK: - Personas

  /// Inserts a persona; a repeated `requestID` of the same owner returns the persona the first
  /// request made instead of a second one.
  public func insert(_ draft: PersonaDraft, owner: UUID, requestID: UUID?) async throws -> Persona {
    let inserted = try await self.personas(
      """
      INSERT INTO personas (user_id, name, description, template, variables, is_public, request_id)
      VALUES (\(owner), \(draft.name), \(draft.description), \(draft.template), \(draft.variables.jsonText)::jsonb, \(draft.isPublic), \(requestID))
      ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
      RETURNING \(unescaped: Self.personaColumns)
      """)
    if let persona = inserted.first { return persona }
    // The request id was used before: the earlier result stands.
    guard let requestID,
      let earlier = try await self.personas(
        "SELECT \(unescaped: Self.personaColumns) FROM personas WHERE user_id = \(owner) AND request_id = \(requestID)"
      ).first
    else { throw PersonaStoreError.inconsistent("insert returned nothing") }
    return earlier
  }

  /// The persona whoever owns it, unless deleted: what the cache holds (visibility is checked
  /// on the copy).
  public func find(id: UUID) async throws -> Persona? {
    try await self.personas(
      "SELECT \(unescaped: Self.personaColumns) FROM personas WHERE id = \(id) AND deleted_at IS NULL"
    ).first
  }

  /// The persona if `viewer` may see it: theirs, or public; never a deleted one.
  public func findVisible(id: UUID, viewer: UUID) async throws -> Persona? {
    try await self.personas(
      """
      SELECT \(unescaped: Self.personaColumns) FROM personas
      WHERE id = \(id) AND deleted_at IS NULL AND (user_id = \(viewer) OR is_public)
      """
    ).first
  }

  private static func sortKey(_ order: PersonaOrder) -> String {
    switch order {
    case .updateTime: "(extract(epoch FROM updated_at) * 1000000)::bigint"
    case .createTime: "(extract(epoch FROM created_at) * 1000000)::bigint"
    case .usageCount: "usage_count::bigint"
    case .rating: "coalesce((rating * 100)::bigint, -1)"
    }
  }

  /// One page of a listing, and how many rows the whole listing has.
  /// - Returns: up to `limit` rows with the cursor that continues after each, whether more rows
  ///   follow, and how many rows the whole listing has.
  public func list(_ request: PersonaListQuery) async throws -> (page: [(persona: Persona, cursor: PersonaCursor)], more: Bool, total: Int) {
    let key = Self.sortKey(request.order)
    var binds = PostgresBindings()
    binds.append(request.viewer)
    binds.append(request.includePublic)
    var filter = "deleted_at IS NULL AND (user_id = $1 OR ($2 AND is_public))"
    if let text = request.text {
      binds.append(text)
      filter += " AND to_tsvector('english', name || ' ' || coalesce(description, '') || ' ' || template)"
        + " @@ websearch_to_tsquery('english', $\(binds.count))"
    }
    var total = 0
    for (count,) in try await self.database.query(
      PostgresQuery(unsafeSQL: "SELECT count(*) FROM personas WHERE \(filter)", binds: binds), logger: self.logger
    ).decode((Int,).self) {
      total = count
    }

    var sql = "SELECT \(Self.personaColumns), \(key) AS sort_key FROM personas WHERE \(filter)"
    if let after = request.after {
      binds.append(after.sortKey)
      binds.append(after.id)
      sql += " AND (\(key), id) < ($\(binds.count - 1), $\(binds.count))"
    }
    binds.append(request.limit + 1)
    sql += " ORDER BY \(key) DESC, id DESC LIMIT $\(binds.count)"

    var page: [(persona: Persona, cursor: PersonaCursor)] = []
    typealias Row = (UUID, UUID, String, String?, String, String, Bool, Int, Double?, Int, Int, Date, Date, Date?, Int64, Int64)
    for row in try await self.database.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: self.logger)
      .decode(Row.self)
    {
      let persona = try Self.persona((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11, row.12, row.13, row.14))
      page.append((persona, PersonaCursor(sortKey: row.15, id: persona.id)))
    }
    let more = page.count > request.limit
    if more { page.removeLast() }
    return (page, more, total)
  }

  /// Replaces `fields` of the owner's persona with the draft's values if it is still at
  /// `expectedVersion`, and moves it to the next version.
  /// - Returns: the updated persona, nil when no row matched (missing, not the owner's, deleted,
  ///   or another version).
  public func update(id: UUID, owner: UUID, expectedVersion: Int, fields: Set<PersonaField>, to draft: PersonaDraft) async throws -> Persona? {
    var binds = PostgresBindings()
    var assignments: [String] = ["version = version + 1", "revision = revision + 1", "updated_at = now()"]
    func assign(_ column: String, _ value: some PostgresDynamicTypeEncodable, cast: String = "") {
      binds.append(value)
      assignments.append("\(column) = $\(binds.count)\(cast)")
    }
    if fields.contains(.name) { assign("name", draft.name) }
    if fields.contains(.description) { assign("description", draft.description) }
    if fields.contains(.template) { assign("template", draft.template) }
    if fields.contains(.variables) { assign("variables", draft.variables.jsonText, cast: "::jsonb") }
    if fields.contains(.isPublic) { assign("is_public", draft.isPublic) }
    binds.append(id)
    binds.append(owner)
    binds.append(expectedVersion)
    let sql = """
      UPDATE personas SET \(assignments.joined(separator: ", "))
      WHERE id = $\(binds.count - 2) AND user_id = $\(binds.count - 1) AND version = $\(binds.count) AND deleted_at IS NULL
      RETURNING \(Self.personaColumns)
      """
    return try await self.personas(PostgresQuery(unsafeSQL: sql, binds: binds)).first
  }

  /// Marks the owner's persona deleted (at `expectedVersion`, when given).
  /// - Returns: the persona's new revision, nil when no row matched.
  public func softDelete(id: UUID, owner: UUID, expectedVersion: Int?) async throws -> Int64? {
    let rows = try await self.database.query(
      """
      UPDATE personas SET deleted_at = now(), updated_at = now(), revision = revision + 1
      WHERE id = \(id) AND user_id = \(owner) AND deleted_at IS NULL AND (\(expectedVersion)::int IS NULL OR version = \(expectedVersion))
      RETURNING revision
      """, logger: self.logger)
    var revision: Int64?
    for (value,) in try rows.decode((Int64,).self) { revision = value }
    return revision
  }

  /// Counts one render, committed when it returns (with the renders counted beside it: see
  /// `UsageCounts`).
  public func incrementUsage(id: UUID) async throws {
    try await self.usage.count(id)
  }

  /// Records `user`'s score for a visible persona (replacing an earlier one) and recomputes the
  /// average, in one transaction.
  /// - Returns: the persona with its new rating, nil when it is not visible to `user`.
  public func rate(id: UUID, user: UUID, score: Int) async throws -> Persona? {
    let logger = self.logger
    return try await self.database.withTransaction(logger: logger) { connection -> Persona? in
      var visible = false
      for _ in try await connection.query(
        "SELECT 1 FROM personas WHERE id = \(id) AND deleted_at IS NULL AND (user_id = \(user) OR is_public) FOR UPDATE",
        logger: logger)
      {
        visible = true
      }
      guard visible else { return nil }
      try await connection.query(
        """
        INSERT INTO persona_ratings (persona_id, user_id, score) VALUES (\(id), \(user), \(score))
        ON CONFLICT (persona_id, user_id) DO UPDATE SET score = EXCLUDED.score, rated_at = now()
        """, logger: logger)
      var updated: Persona?
      for row in try await connection.query(
        """
        UPDATE personas SET
          rating = (SELECT round(avg(score), 2) FROM persona_ratings WHERE persona_id = \(id)),
          rating_count = (SELECT count(*) FROM persona_ratings WHERE persona_id = \(id)),
          revision = revision + 1
        WHERE id = \(id)
        RETURNING \(unescaped: Self.personaColumns)
        """, logger: logger
      ).decode(PersonaRow.self) {
        updated = try Self.persona(row)
      }
      return updated
    }
  }

  // MARK: - Validations

  /// Records validator results of one persona version, all or none. Each row gets its own
  /// time (`clock_timestamp()`, not the transaction's `now()`), so they list in run order.
  public func insertValidations(_ outcomes: [ValidationOutcome], personaID: UUID, personaVersion: Int) async throws -> [PersonaValidation] {
    try await self.database.withTransaction(logger: self.logger) { connection in
      var recorded: [PersonaValidation] = []
      for outcome in outcomes {
        let rows = try await connection.query(
          """
          INSERT INTO persona_validations (persona_id, persona_version, validator, validation_result, is_valid, issues, validated_at)
          VALUES (\(personaID), \(personaVersion), \(outcome.validator.rawValue), \(outcome.result.jsonText)::jsonb, \(outcome.isValid), \(outcome.issues), clock_timestamp())
          RETURNING id, validated_at
          """, logger: self.logger)
        for (id, validatedAt) in try rows.decode((UUID, Date).self) {
          recorded.append(
            PersonaValidation(
              id: id, personaID: personaID, personaVersion: personaVersion, validator: outcome.validator, isValid: outcome.isValid,
              issues: outcome.issues, result: outcome.result, validatedAt: validatedAt))
        }
      }
      guard recorded.count == outcomes.count else { throw PersonaStoreError.inconsistent("an insert returned nothing") }
      return recorded
    }
  }

  /// A persona's validations, newest first.
  public func listValidations(
    personaID: UUID, validator: PersonaValidatorKind?, after: PersonaCursor?, limit: Int
  ) async throws -> (page: [(validation: PersonaValidation, cursor: PersonaCursor)], more: Bool, total: Int) {
    let key = "(extract(epoch FROM validated_at) * 1000000)::bigint"
    var binds = PostgresBindings()
    binds.append(personaID)
    var filter = "persona_id = $1"
    if let validator {
      binds.append(validator.rawValue)
      filter += " AND validator = $\(binds.count)"
    }
    var total = 0
    for (count,) in try await self.database.query(
      PostgresQuery(unsafeSQL: "SELECT count(*) FROM persona_validations WHERE \(filter)", binds: binds), logger: self.logger
    ).decode((Int,).self) {
      total = count
    }
    if let after {
      binds.append(after.sortKey)
      binds.append(after.id)
      filter += " AND (\(key), id) < ($\(binds.count - 1), $\(binds.count))"
    }
    binds.append(limit + 1)
    let sql = """
      SELECT id, persona_version, validator, validation_result::text, is_valid, coalesce(issues, '{}'), validated_at, \(key)
      FROM persona_validations WHERE \(filter) ORDER BY \(key) DESC, id DESC LIMIT $\(binds.count)
      """
    var page: [(validation: PersonaValidation, cursor: PersonaCursor)] = []
    for row in try await self.database.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: self.logger)
      .decode((UUID, Int, String, String, Bool, [String], Date, Int64).self)
    {
      guard let kind = PersonaValidatorKind(rawValue: row.2) else { continue }
      page.append(
        (
          PersonaValidation(
            id: row.0, personaID: personaID, personaVersion: row.1, validator: kind, isValid: row.4, issues: row.5,
            result: try JSONValue(jsonText: row.3), validatedAt: row.6), PersonaCursor(sortKey: row.7, id: row.0)
        ))
    }
    let more = page.count > limit
    if more { page.removeLast() }
    return (page, more, total)
  }
}

/// The database answered in a way the schema rules out.
public enum PersonaStoreError: Error {
  case inconsistent(String)
}
