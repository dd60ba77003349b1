public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of knowledge_bases in knowledge_db.
public struct KnowledgeBaseStore: Sendable {
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
    id, owner_id, name, description, embedding_model, vector_dimension, chunk_strategy, chunk_size, chunk_overlap,
    (SELECT count(*) FROM documents d WHERE d.knowledge_base_id = knowledge_bases.id AND d.deleted_at IS NULL)::int,
    chunk_count, status, version, created_at, updated_at, language
    """

  private static func row(_ row: PostgresRow) throws -> KnowledgeBase {
    let c = try row.decode((UUID, UUID, String, String, String, Int, String, Int, Int, Int, Int64, String, Int, Date, Date).self)
    let language = try row.decode(String.self, startingAt: 15)
    return KnowledgeBase(
      id: c.0, ownerID: c.1, name: c.2, description: c.3, embeddingModel: c.4, dimension: c.5,
      chunking: ChunkingOptions(strategy: ChunkingOptions.Strategy(rawValue: c.6) ?? .paragraph, size: c.7, overlap: c.8),
      language: language, documentCount: c.9, chunkCount: c.10, status: KnowledgeBase.Status(rawValue: c.11) ?? .active, version: c.12, createdAt: c.13,
      updatedAt: c.14)
  }

  /// Inserts `base`; with a request id this owner already used, the first one (`created` false).
  /// - Throws: `Failure.nameTaken`.
  public func insert(_ base: KnowledgeBase, requestID: UUID?) async throws -> (base: KnowledgeBase, created: Bool) {
    do {
      let rows = try await self.database.query(
        """
        INSERT INTO knowledge_bases (id, owner_id, name, description, embedding_model, vector_dimension, chunk_strategy, chunk_size,
          chunk_overlap, status, request_id, language)
        VALUES (\(base.id), \(base.ownerID), \(base.name), \(base.description), \(base.embeddingModel), \(base.dimension),
          \(base.chunking.strategy.rawValue), \(base.chunking.size), \(base.chunking.overlap), \(base.status.rawValue), \(requestID),
          \(base.language))
        ON CONFLICT (owner_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      if let inserted = rows.first { return (try Self.row(inserted), true) }
      let existing = try await self.database.query(
        "SELECT \(unescaped: Self.columns) FROM knowledge_bases WHERE owner_id = \(base.ownerID) AND request_id = \(requestID)",
        logger: self.logger)
      guard let first = existing.first else { throw Failure.nameTaken }
      return (try Self.row(first), false)
    } catch where DatabaseErrors.sqlState(of: error) == "23505" {
      throw Failure.nameTaken
    }
  }

  /// The owner's knowledge bases among `ids` as a search needs them (those that are not the
  /// owner's are missing), with the keyword statistics of `keywordsOf` in each when given, read
  /// in the same statement: one round trip, one snapshot.
  public func searched(_ ids: [UUID], ownerID: UUID, keywordsOf text: String? = nil) async throws -> [SearchedBase] {
    try await self.database.execute(SearchedStatement(ids: ids, ownerID: ownerID, text: text), logger: self.logger)
  }

  /// searched's statement, prepared (it runs once a search): $1 the ids, $2 the owner, $3 the
  /// query's text or NULL. The text is read through a scalar sub-select, which the planner
  /// cannot see into, so that PostgreSQL keeps one generic plan (the keyword statistics' own
  /// statement, which this one replaced, planned every call with the bare parameters, folding the
  /// text-search parses into the plan: 2,000 runs of a dev query took 0.78–0.88 s in `psql`,
  /// against 0.44–0.48 s with one generic plan).
  struct SearchedStatement: PostgresPreparedStatement {
    static let bindingDataTypes: [PostgresDataType] = [.uuidArray, .uuid, .text]
    static let sql = """
      SELECT b.id, b.embedding_model, b.language, s.websearch, b.chunk_count::int8, b.keyword_length_total::int8, b.keyword_generation,
        s.terms, s.counts, s.sequence, s.positions
      FROM knowledge_bases b LEFT JOIN LATERAL (
        SELECT websearch_to_tsquery(b.language::regconfig, t.text)::text AS websearch,
          (SELECT coalesce(array_agg(q.term ORDER BY q.term), '{}'::text[]) FROM unnest(tsvector_to_array(t.keywords)) AS q(term)) AS terms,
          (SELECT coalesce(array_agg(coalesce(k.chunks, 0)::int8 ORDER BY q.term), '{}'::int8[])
           FROM unnest(tsvector_to_array(t.keywords)) AS q(term)
           LEFT JOIN keyword_terms k ON k.knowledge_base_id = b.id AND k.term = q.term) AS counts,
          (SELECT coalesce(array_agg(u.lexeme ORDER BY p.position, u.lexeme), '{}'::text[])
           FROM unnest(t.keywords) u CROSS JOIN unnest(u.positions) AS p(position)) AS sequence,
          (SELECT coalesce(array_agg(p.position::int4 ORDER BY p.position, u.lexeme), '{}'::int4[])
           FROM unnest(t.keywords) u CROSS JOIN unnest(u.positions) AS p(position)) AS positions
        FROM (SELECT q.text, to_tsvector(b.language::regconfig, q.text) AS keywords FROM (SELECT (SELECT $3::text) AS text) q) t
        WHERE t.text IS NOT NULL
      ) s ON true
      WHERE b.id = ANY($1) AND b.owner_id = $2
      """
    var ids: [UUID]
    var ownerID: UUID
    var text: String?

    func makeBindings() throws -> PostgresBindings {
      var bindings = PostgresBindings(capacity: 3)
      bindings.append(self.ids)
      bindings.append(self.ownerID)
      bindings.append(self.text)
      return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> SearchedBase {
      let (id, model, language, websearch, chunks, length, generation, terms, counts, sequence, positions) = try row.decode(
        (UUID, String, String, String?, Int64, Int64, Int64, [String]?, [Int64]?, [String]?, [Int32]?).self)
      var base = SearchedBase(id: id, embeddingModel: model, language: language)
      if let websearch, let terms, let counts, let sequence, let positions {
        base.keywords = ChunkStore.KeywordStatistics(
          websearch: websearch.isEmpty ? nil : websearch, chunks: Int(chunks), totalLength: Int(length),
          terms: zip(terms, counts).map { ($0, Int($1)) }, sequence: zip(sequence, positions).map { ($0, Int($1)) },
          generations: [id: generation])
      }
      return base
    }
  }

  /// Whether PostgreSQL has the text-search configuration `name`.
  public func hasTextSearchConfiguration(_ name: String) async throws -> Bool {
    try await self.database.query("SELECT 1 FROM pg_ts_config WHERE cfgname = \(name)", logger: self.logger).first != nil
  }

  public func get(_ id: UUID, ownerID: UUID) async throws -> KnowledgeBase? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM knowledge_bases WHERE id = \(id) AND owner_id = \(ownerID)", logger: self.logger
    ).first.map(Self.row)
  }

  /// The owner's knowledge bases by name, after `after` (lowercased name, id).
  public func list(
    ownerID: UUID, query: String?, includeArchived: Bool, after: (String, UUID)?, limit: Int
  ) async throws -> (bases: [KnowledgeBase], total: Int, more: Bool) {
    let pattern = query.map(LikePattern.containing)
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM knowledge_bases
      WHERE owner_id = \(ownerID) AND (\(includeArchived) OR status = 'active')
        AND (\(pattern)::text IS NULL OR name ILIKE \(pattern ?? ""))
        AND (\(after?.0)::text IS NULL OR (lower(name), id) > (\(after?.0 ?? ""), \(after?.1 ?? UUID())))
      ORDER BY lower(name), id LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      """
      SELECT count(*)::int8 FROM knowledge_bases
      WHERE owner_id = \(ownerID) AND (\(includeArchived) OR status = 'active')
        AND (\(pattern)::text IS NULL OR name ILIKE \(pattern ?? ""))
      """, logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.row), Int(total), rows.count > limit)
  }

  /// Writes the updatable fields of `base` if its version is still `expected`; the embedding
  /// model only while it has no documents.
  /// - Throws: `Failure.versionMismatch`, `Failure.nameTaken`.
  public func update(_ base: KnowledgeBase, expected: Int) async throws -> KnowledgeBase {
    do {
      let rows = try await self.database.query(
        """
        UPDATE knowledge_bases SET name = \(base.name), description = \(base.description), embedding_model = \(base.embeddingModel),
          vector_dimension = \(base.dimension), chunk_strategy = \(base.chunking.strategy.rawValue), chunk_size = \(base.chunking.size),
          chunk_overlap = \(base.chunking.overlap), status = \(base.status.rawValue), language = \(base.language), version = version + 1,
          updated_at = now()
        WHERE id = \(base.id) AND owner_id = \(base.ownerID) AND version = \(expected)
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      guard let updated = rows.first else { throw Failure.versionMismatch }
      return try Self.row(updated)
    } catch where DatabaseErrors.sqlState(of: error) == "23505" {
      throw Failure.nameTaken
    }
  }

  /// Deletes it (its documents and chunks cascade).
  /// - Returns: false when it does not exist; throws `versionMismatch` when `version` is not current.
  public func delete(_ id: UUID, ownerID: UUID, version: Int?) async throws -> Bool {
    let rows = try await self.database.query(
      """
      WITH target AS (SELECT id, version FROM knowledge_bases WHERE id = \(id) AND owner_id = \(ownerID)),
        deleted AS (DELETE FROM knowledge_bases k USING target t WHERE k.id = t.id AND (\(version)::int IS NULL OR t.version = \(version))
          RETURNING k.id)
      SELECT (SELECT count(*) FROM target)::int8, (SELECT count(*) FROM deleted)::int8
      """, logger: self.logger)
    guard let row = rows.first else { return false }
    let (found, deleted) = try row.decode((Int64, Int64).self)
    if found > 0 && deleted == 0 { throw Failure.versionMismatch }
    return deleted > 0
  }
}
