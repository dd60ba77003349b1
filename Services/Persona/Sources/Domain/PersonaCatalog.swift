public import Foundation
public import PlatformCore

/// The persona rules: who may see and change what, what a valid persona is, how rendering and
/// validation work. Handlers translate protobuf to these calls; the store holds the SQL.
public struct PersonaCatalog: Sendable {
  public let store: PersonaStore
  /// Reads by id go through it when set; every write updates it before it is acknowledged.
  public let cache: PersonaCache?
  public let judge: any PersonaJudge
  public let limits: PersonaLimits

  public init(store: PersonaStore, cache: PersonaCache? = nil, judge: any PersonaJudge, limits: PersonaLimits = PersonaLimits()) {
    self.store = store
    self.cache = cache
    self.judge = judge
    self.limits = limits
  }

  // MARK: - Checks

  /// Checks a draft's fields (those in `fields`), returning the draft normalised.
  /// - Throws: `PersonaError.invalidArgument` naming the first bad field, or `.templateSyntax`.
  func checked(_ draft: PersonaDraft, fields: Set<PersonaField> = Set(PersonaField.allCases)) throws(PersonaError) -> PersonaDraft {
    var draft = draft
    // PostgreSQL text cannot hold NUL.
    for (field, text) in [(PersonaField.name, draft.name), (.description, draft.description), (.template, draft.template)]
    where fields.contains(field) && text.unicodeScalars.contains("\0") {
      throw .invalidArgument(field: "persona.\(field.rawValue)", reason: "must not contain NUL characters")
    }
    if fields.contains(.variables) {
      try self.checkStorable(draft.variables, field: "persona.variables", maxBytes: self.limits.maxSchemaBytes)
    }
    if fields.contains(.name) {
      draft.name = String(draft.name.trimmingWhitespace())
      // Counted as PostgreSQL counts VARCHAR(100): in code points.
      guard !draft.name.isEmpty, draft.name.unicodeScalars.count <= 100 else {
        throw .invalidArgument(field: "persona.name", reason: "must be 1–100 characters")
      }
    }
    if fields.contains(.description),
      draft.description.count > self.limits.maxDescriptionCharacters || draft.description.utf8.count > self.limits.maxDescriptionBytes
    {
      throw .invalidArgument(
        field: "persona.description",
        reason: "must be at most \(self.limits.maxDescriptionCharacters) characters and \(self.limits.maxDescriptionBytes) bytes")
    }
    if fields.contains(.template) {
      guard !draft.template.trimmingWhitespace().isEmpty else {
        throw .invalidArgument(field: "persona.template", reason: "is required")
      }
      guard draft.template.utf8.count <= self.limits.maxTemplateBytes else {
        throw .invalidArgument(field: "persona.template", reason: "must be at most \(self.limits.maxTemplateBytes) bytes")
      }
      _ = try PersonaTemplate(draft.template, maxDepth: self.limits.maxNestingDepth)
    }
    if fields.contains(.variables) {
      guard draft.variables.nodeCount <= self.limits.maxSchemaNodes else {
        throw .invalidArgument(field: "persona.variables", reason: "the schema is too large (more than \(self.limits.maxSchemaNodes) values)")
      }
      _ = try VariableSchema(variables: draft.variables)
    }
    return draft
  }

  /// A JSON document from a request that will be stored (JSONB): nested at most
  /// `maxNestingDepth` deep, at most `maxBytes` long, no NUL characters (PostgreSQL text cannot
  /// hold them) and no NaN or infinities (JSON cannot).
  func checkStorable(_ document: JSONValue, field: String, maxBytes: Int) throws(PersonaError) {
    if let problem = document.problem(maxDepth: self.limits.maxNestingDepth, maxBytes: maxBytes) {
      throw .invalidArgument(field: field, reason: problem)
    }
  }

  /// `google.protobuf.Value` can carry NaN and infinities; JSON, the schema checks and JSONB cannot.
  static func checkFinite(_ document: JSONValue, field: String) throws(PersonaError) {
    guard document.isFinite else { throw .invalidArgument(field: field, reason: "numbers must be finite (no NaN or Infinity)") }
  }

  /// The size limits of variables a request supplies (render and sample variables).
  func checkVariableSize(_ variables: JSONValue, field: String) throws(PersonaError) {
    guard variables.nodeCount <= self.limits.maxVariableNodes, variables.depth <= self.limits.maxVariableDepth else {
      throw .invalidArgument(
        field: field, reason: "too large (at most \(self.limits.maxVariableNodes) values nested \(self.limits.maxVariableDepth) deep)")
    }
  }

  /// The persona if `caller` may see it: theirs or public, not deleted. From the cache when
  /// there is one (the copy of the last write, its usage count as of then).
  func visible(_ id: UUID, to caller: Caller) async throws -> Persona {
    guard let cache = self.cache else {
      guard let persona = try await self.store.findVisible(id: id, viewer: caller.userID) else { throw PersonaError.notFound }
      return persona
    }
    let persona = try await cache.value(for: id.lowercasedString) {
      try await self.store.find(id: id).map { ($0, $0.revision) }
    }
    guard let persona, persona.ownerID == caller.userID || persona.isPublic else { throw PersonaError.notFound }
    return persona
  }

  /// Write-through: the cache holds `persona` before the write is acknowledged, so no replica
  /// serves the copy it replaced.
  private func cached(_ persona: Persona) async -> Persona {
    await self.cache?.store(persona, version: persona.revision, for: persona.id.lowercasedString)
    return persona
  }

  /// Why a write to `id` by `caller` matched no row.
  private func explainMissedWrite(_ id: UUID, caller: Caller, expectedVersion: Int?) async throws -> PersonaError {
    guard let persona = try await self.store.findVisible(id: id, viewer: caller.userID) else { return .notFound }
    guard persona.ownerID == caller.userID else { return .notOwner }
    if let expectedVersion, persona.version != expectedVersion {
      return .versionMismatch(expected: expectedVersion, current: persona.version)
    }
    return .notFound
  }

  // MARK: - CRUD

  public func create(_ draft: PersonaDraft, requestID: UUID?, caller: Caller) async throws -> Persona {
    let draft = try self.checked(draft)
    let persona = try await self.store.insert(draft, owner: caller.userID, requestID: requestID)
    // The request id was used before, by a persona deleted since: its result no longer exists.
    guard persona.deletedAt == nil else { throw PersonaError.requestIDOfDeletedPersona }
    return await self.cached(persona)
  }

  public func get(_ id: UUID, caller: Caller) async throws -> Persona {
    try await self.visible(id, to: caller)
  }

  public struct Page: Sendable {
    public var personas: [Persona]
    public var nextPageToken: String
    public var total: Int
  }

  /// What a page token remembers besides the cursor: the request it belongs to.
  private struct ListCursor: Codable {
    var order: String
    var includePublic: Bool
    /// `PageToken.fingerprint` of the query.
    var query: String?
    var after: PersonaCursor
  }

  public func list(
    caller: Caller, includePublic: Bool, text: String, order: PersonaOrder, pageSize: Int32, pageToken: String
  ) async throws -> Page {
    guard let limit = PageToken.pageSize(pageSize, default: self.limits.defaultPageSize, maximum: self.limits.maxPageSize) else {
      throw PersonaError.invalidArgument(field: "page_size", reason: "must not be negative")
    }
    let text = text.trimmingWhitespace()
    guard text.unicodeScalars.count <= self.limits.maxQueryCharacters, !text.unicodeScalars.contains("\0") else {
      throw PersonaError.invalidArgument(
        field: "query", reason: "must be at most \(self.limits.maxQueryCharacters) characters, without NUL")
    }
    let query = text.isEmpty ? nil : String(text)
    let fingerprint = query.map(PageToken.fingerprint)
    var after: PersonaCursor?
    if !pageToken.isEmpty {
      guard let cursor = PageToken.decode(pageToken, as: ListCursor.self),
        cursor.order == order.rawValue, cursor.includePublic == includePublic, cursor.query == fingerprint
      else { throw PersonaError.invalidArgument(field: "page_token", reason: "is not a token of this listing") }
      after = cursor.after
    }
    let result = try await self.store.list(
      PersonaListQuery(viewer: caller.userID, includePublic: includePublic, text: query, order: order, after: after, limit: limit))
    let page = ResponseBudget.page(result.page, more: result.more) { $0.persona.encodedSizeBound }
    let token = page.continueAfter.map {
      PageToken.encode(ListCursor(order: order.rawValue, includePublic: includePublic, query: fingerprint, after: $0.cursor))
    }
    return Page(personas: page.rows.map(\.persona), nextPageToken: token ?? "", total: result.total)
  }

  public func update(_ id: UUID, fields: Set<PersonaField>, to draft: PersonaDraft, expectedVersion: Int, caller: Caller) async throws -> Persona {
    guard !fields.isEmpty else {
      throw PersonaError.invalidArgument(field: "update_mask", reason: "must name at least one of " + PersonaField.allCases.map(\.rawValue).joined(separator: ", "))
    }
    guard expectedVersion > 0 else {
      throw PersonaError.invalidArgument(field: "version", reason: "is required: the version last read")
    }
    let draft = try self.checked(draft, fields: fields)
    if let updated = try await self.store.update(id: id, owner: caller.userID, expectedVersion: expectedVersion, fields: fields, to: draft) {
      return await self.cached(updated)
    }
    throw try await self.explainMissedWrite(id, caller: caller, expectedVersion: expectedVersion)
  }

  public func delete(_ id: UUID, expectedVersion: Int?, caller: Caller) async throws {
    if let revision = try await self.store.softDelete(id: id, owner: caller.userID, expectedVersion: expectedVersion) {
      await self.cache?.storeDeletion(version: revision, for: id.lowercasedString)
      return
    }
    throw try await self.explainMissedWrite(id, caller: caller, expectedVersion: expectedVersion)
  }

  // MARK: - Rendering

  public struct Rendering: Sendable {
    public var text: String
    public var personaVersion: Int
    public var defaultedVariables: [String]
  }

  /// Checks `variables` against the schema (after defaults), every violation named.
  func completedVariables(_ variables: JSONValue, schema: VariableSchema) throws(PersonaError) -> (variables: [String: JSONValue], defaulted: [String]) {
    try self.checkVariableSize(variables, field: "variables")
    try Self.checkFinite(variables, field: "variables")
    let completed = schema.applyingDefaults(to: variables.objectValue ?? [:])
    let violations = schema.validate(.object(completed.variables), path: "variables")
    guard violations.isEmpty else { throw .variablesRejected(violations) }
    return completed
  }

  public func render(_ id: UUID, variables: JSONValue, maxCharacters: Int, version: Int?, caller: Caller) async throws -> Rendering {
    guard maxCharacters >= 0 else { throw PersonaError.invalidArgument(field: "max_chars", reason: "must not be negative") }
    let cap = maxCharacters == 0 ? self.limits.maxRenderCharacters : min(maxCharacters, self.limits.maxRenderCharacters)
    let persona = try await self.visible(id, to: caller)
    if let version, version != persona.version {
      throw PersonaError.versionMismatch(expected: version, current: persona.version)
    }
    let schema = try VariableSchema(variables: persona.variables)
    let completed = try self.completedVariables(variables, schema: schema)
    let text = try PersonaTemplate(persona.template, maxDepth: self.limits.maxNestingDepth).render(completed.variables, maxCharacters: cap)
    try await self.store.incrementUsage(id: persona.id)
    return Rendering(text: text, personaVersion: persona.version, defaultedVariables: completed.defaulted)
  }

  // MARK: - Ratings

  public func rate(_ id: UUID, score: Int, caller: Caller) async throws -> Persona {
    guard (1...5).contains(score) else { throw PersonaError.invalidArgument(field: "score", reason: "must be 1–5") }
    guard let persona = try await self.store.rate(id: id, user: caller.userID, score: score) else { throw PersonaError.notFound }
    return await self.cached(persona)
  }
}
