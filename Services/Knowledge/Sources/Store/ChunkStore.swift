public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// A chunk as stored (knowledge_db.document_chunks).
public struct StoredChunk: Sendable, Equatable {
  public var id: UUID
  public var documentID: UUID
  public var knowledgeBaseID: UUID
  public var index: Int
  public var content: String
  public var contentLength: Int
  public var metadata: JSONValue
  public var createdAt: Date
  /// Only when asked for.
  public var embedding: [Float]?
}

/// A chunk's place in one ranking: which chunk, of which document, with what score (the chunks
/// themselves are read once, for the results).
public struct RankedChunk: Sendable, Equatable {
  public var id: UUID
  public var documentID: UUID
  /// Cosine similarity (vector) or BM25 (keyword).
  public var score: Double
}

/// Where a query's terms stand in a text's keywords (tsvector positions, the document title
/// first), and the knowledge base the text is in.
public struct TermPositions: Sendable, Equatable {
  public var knowledgeBaseID: UUID
  public var positions: [String: [Int]] = [:]
}

/// What narrows a search beyond the knowledge bases (SearchFilter).
public struct ChunkFilter: Sendable, Equatable {
  public var documentIDs: [UUID] = []
  public var contentTypes: [String] = []
  /// Top-level metadata keys and the values they must equal.
  public var metadata: [String: JSONValue] = [:]
  public var tagsAny: [String] = []
  public var createdAfter: Date?
  public var createdBefore: Date?

  public init() {}

  public var isEmpty: Bool {
    self.documentIDs.isEmpty && self.contentTypes.isEmpty && self.metadata.isEmpty && self.tagsAny.isEmpty
      && self.createdAfter == nil && self.createdBefore == nil
  }

  /// The filter as stable text (sorted metadata keys): what a page token of a filtered listing
  /// is bound to.
  public var fingerprint: String {
    [
      self.documentIDs.map(\.lowercasedString).joined(separator: ","), self.contentTypes.joined(separator: ","),
      JSONValue.object(self.metadata).jsonText, self.tagsAny.joined(separator: ","),
      self.createdAfter.map { "\($0.timeIntervalSince1970)" } ?? "", self.createdBefore.map { "\($0.timeIntervalSince1970)" } ?? "",
    ].joined(separator: "|")
  }
}

extension PostgresQuery.StringInterpolation {
  /// ` AND …` for each condition of `filter` on the documents `d` (SearchFilter's meaning): the one
  /// spelling of it for searches and listings.
  mutating func appendInterpolation(conditionsOf filter: ChunkFilter) {
    if !filter.documentIDs.isEmpty {
      self.appendLiteral(" AND d.id = ANY(")
      self.appendInterpolation(filter.documentIDs)
      self.appendLiteral(")")
    }
    if !filter.contentTypes.isEmpty {
      self.appendLiteral(" AND d.content_type = ANY(")
      self.appendInterpolation(filter.contentTypes)
      self.appendLiteral(")")
    }
    if !filter.tagsAny.isEmpty {
      self.appendLiteral(" AND d.tags && ")
      self.appendInterpolation(filter.tagsAny)
    }
    if let after = filter.createdAfter {
      self.appendLiteral(" AND d.created_at >= ")
      self.appendInterpolation(after)
    }
    if let before = filter.createdBefore {
      self.appendLiteral(" AND d.created_at < ")
      self.appendInterpolation(before)
    }
    if !filter.metadata.isEmpty {
      // Each key equal as a whole (not jsonb containment, which would match a superset inside).
      self.appendLiteral(" AND NOT EXISTS (SELECT 1 FROM jsonb_each(")
      self.appendInterpolation(JSONValue.object(filter.metadata).jsonText)
      self.appendLiteral("::jsonb) f WHERE d.metadata -> f.key IS DISTINCT FROM f.value)")
    }
  }
}

/// The SQL of chunks: writing a document's chunks, listing them, and the vector and keyword
/// rankings Search fuses.
public struct ChunkStore: Sendable {
  let database: Database
  let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  static let columns = "c.id, c.document_id, c.knowledge_base_id, c.chunk_index, c.content, c.content_length, c.metadata::text, c.created_at"

  static func chunk(_ row: PostgresRow) throws -> StoredChunk {
    let c = try row.decode((UUID, UUID, UUID, Int, String, Int, String, Date).self)
    return StoredChunk(
      id: c.0, documentID: c.1, knowledgeBaseID: c.2, index: c.3, content: c.4, contentLength: c.5,
      metadata: (try? JSONValue(jsonText: c.6)) ?? .object([:]), createdAt: c.7, embedding: nil)
  }

  /// A chunk to write: its text, metadata and embedding.
  public struct NewChunk: Sendable {
    public var index: Int
    public var content: String
    public var metadata: JSONValue
    public var embedding: [Float]

    public init(index: Int, content: String, metadata: JSONValue, embedding: [Float]) {
      self.index = index
      self.content = content
      self.metadata = metadata
      self.embedding = embedding
    }
  }

  /// Chunks per INSERT statement.
  static let insertBatch = 200

  /// Replaces the chunks of generation `generation` of a processing document and marks it
  /// indexed, in one transaction: searches see the old chunks or the new ones, never a mix.
  /// `content` is the extracted text when extraction produced it.
  /// - Returns: false (and nothing written) when that generation is no longer current.
  public func finish(
    _ document: Document, generation: Int, content: String?, chunks: [NewChunk], language: String
  ) async throws -> Bool {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let current = try await connection.query(
        """
        SELECT generation, status, deleted_at IS NULL FROM documents WHERE id = \(document.id) FOR UPDATE
        """, logger: self.logger
      ).first?.decode((Int, String, Bool).self)
      guard let current, current.0 == generation, current.1 == DocumentStatus.processing.rawValue, current.2 else { return false }
      try await connection.query("DELETE FROM document_chunks WHERE document_id = \(document.id)", logger: self.logger)
      var start = 0
      while start < chunks.count {
        let batch = chunks[start..<min(start + Self.insertBatch, chunks.count)]
        start += Self.insertBatch
        try await connection.query(
          """
          INSERT INTO document_chunks (document_id, knowledge_base_id, chunk_index, content, content_length, embedding, dimension,
            keywords, keyword_length, metadata)
          SELECT \(document.id), \(document.knowledgeBaseID), n.chunk_index, n.content, char_length(n.content), n.embedding::vector,
            vector_dims(n.embedding::vector), k.keywords, (SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(k.keywords) u),
            n.metadata::jsonb
          FROM unnest(\(batch.map(\.index)), \(batch.map(\.content)), \(batch.map { Self.vectorLiteral($0.embedding) }),
            \(batch.map(\.metadata.jsonText))) AS n(chunk_index, content, embedding, metadata),
          LATERAL (SELECT setweight(to_tsvector(\(language)::regconfig, \(document.title)), 'A')
            || to_tsvector(\(language)::regconfig, n.content) AS keywords) k
          """, logger: self.logger)
      }
      try await connection.query(
        """
        UPDATE documents SET status = 'indexed', status_message = NULL, chunk_count = \(chunks.count), chunks_indexed = \(chunks.count),
          chunk_total = \(chunks.count), content = coalesce(\(content), content), indexed_at = now(), updated_at = now()
        WHERE id = \(document.id)
        """, logger: self.logger)
      return true
    }
  }

  /// pgvector's text form of `vector`.
  static func vectorLiteral(_ vector: [Float]) -> String {
    "[" + vector.map { $0.isFinite ? String($0) : "0" }.joined(separator: ",") + "]"
  }

  /// A document's chunks in order from `afterIndex` (exclusive).
  public func chunks(of documentID: UUID, afterIndex: Int?, limit: Int, embeddings: Bool) async throws -> (chunks: [StoredChunk], total: Int, more: Bool) {
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns), CASE WHEN \(embeddings) THEN c.embedding::real[] END FROM document_chunks c
      WHERE c.document_id = \(documentID) AND c.chunk_index > \(afterIndex ?? -1)
      ORDER BY c.chunk_index LIMIT \(limit + 1)
      """, logger: self.logger)
    let total = try await self.database.query(
      "SELECT count(*)::int8 FROM document_chunks WHERE document_id = \(documentID)", logger: self.logger
    ).first?.decode(Int64.self) ?? 0
    let chunks = try rows.prefix(limit).map { row in
      var chunk = try Self.chunk(row)
      chunk.embedding = try row.decode([Float]?.self, startingAt: 8)
      return chunk
    }
    return (chunks, Int(total), rows.count > limit)
  }

  /// The chunks within `radius` of each hit in its document (the hits themselves excluded).
  public func neighbors(of hits: [(documentID: UUID, index: Int)], radius: Int) async throws -> [UUID: [StoredChunk]] {
    guard radius > 0, !hits.isEmpty else { return [:] }
    let rows = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns) FROM document_chunks c
      JOIN unnest(\(hits.map(\.documentID)), \(hits.map(\.index))) AS h(document_id, chunk_index)
        ON c.document_id = h.document_id AND c.chunk_index BETWEEN h.chunk_index - \(radius) AND h.chunk_index + \(radius)
      ORDER BY c.document_id, c.chunk_index
      """, logger: self.logger)
    var byDocument: [UUID: [StoredChunk]] = [:]
    for row in rows {
      let chunk = try Self.chunk(row)
      if byDocument[chunk.documentID]?.contains(where: { $0.id == chunk.id }) != true { byDocument[chunk.documentID, default: []].append(chunk) }
    }
    return byDocument
  }

  // MARK: - Rankings

  /// The documents of the knowledge bases that `filter` lets through (nil when it is empty:
  /// all of them). Only documents that are not deleted have chunks: those being re-indexed keep
  /// their previous ones until the new ones replace them.
  public func documents(matching filter: ChunkFilter, knowledgeBases: [UUID]) async throws -> [UUID]? {
    if filter.isEmpty { return nil }
    return try await self.database.query(
      "SELECT d.id FROM documents d WHERE d.knowledge_base_id = ANY(\(knowledgeBases)) AND d.deleted_at IS NULL\(conditionsOf: filter)",
      logger: self.logger
    ).map { try $0.decode(UUID.self) }
  }

  /// The `limit` chunks of the knowledge bases nearest to `query` by cosine similarity, best
  /// first. The knowledge bases' chunks all have `query.count` dimensions; the partial HNSW index
  /// of that dimension serves it, with pgvector's iterative scan (the connections' settings,
  /// VectorIndexes.sessionSettings) so that a selective filter still yields `limit` chunks.
  ///
  /// The scan starts with VectorIndexes.candidates(limit) candidates, at most the connection's
  /// `hnsw.ef_search` (LEAST skips it when unset): set for this statement's transaction alone
  /// (`set_config(…, true)`, what `SET LOCAL` does, without a transaction and two more round
  /// trips), in a one-row subquery that the index scan's side of the lateral join waits for.
  public func nearest(
    _ query: [Float], knowledgeBases: [UUID], documents: [UUID]?, limit: Int
  ) async throws -> [RankedChunk] {
    let dimension = query.count
    let expression = VectorIndexes.expression(dimension: dimension)
    let literal = Self.vectorLiteral(query)
    let candidates = VectorIndexes.candidates(limit: limit)
    return try await self.database.query(
      """
      WITH nearest AS MATERIALIZED (
        SELECT n.id, n.document_id, n.distance
        FROM (
          SELECT set_config('hnsw.ef_search', least(nullif(current_setting('hnsw.ef_search', true), '')::int, \(candidates))::text, true) AS candidates
        ) s CROSS JOIN LATERAL (
          SELECT c.id, c.document_id, \(unescaped: expression) <=> \(literal)::\(unescaped: VectorIndexes.type(dimension: dimension)) AS distance
          FROM document_chunks c
          WHERE s.candidates IS NOT NULL AND c.dimension = \(unescaped: String(dimension)) AND c.knowledge_base_id = ANY(\(knowledgeBases))
            AND (\(documents == nil) OR c.document_id = ANY(\(documents ?? [])))
          ORDER BY distance LIMIT \(limit)
        ) n
      )
      SELECT * FROM nearest ORDER BY distance
      """, logger: self.logger
    ).map { row in
      let (id, document, distance) = try row.decode((UUID, UUID, Double).self)
      return RankedChunk(id: id, documentID: document, score: 1 - distance)
    }
  }

  /// What BM25 needs to know of a query in some knowledge bases of one language: the query as
  /// websearch_to_tsquery reads it (nil when it has no term: stop words, punctuation), how many
  /// chunks the knowledge bases hold and their total keyword length, in how many chunks each of
  /// the query's terms occurs, and each knowledge base's keyword generation, all of one snapshot
  /// (KnowledgeBaseStore.searched reads them for each knowledge base with the search's lookup).
  public struct KeywordStatistics: Sendable {
    public var websearch: String?
    public var chunks: Int
    public var totalLength: Int
    public var terms: [(term: String, chunks: Int)]
    /// The query's terms in the order they stand in it, with their positions (stop words count
    /// as positions, as in a chunk's keywords).
    public var sequence: [(term: String, position: Int)] = []
    /// Each knowledge base's keyword generation (PostingsCache).
    public var generations: [UUID: Int64] = [:]

    /// The statistics of several knowledge bases of one language as one: counts summed.
    public static func merged(_ all: [KeywordStatistics]) -> KeywordStatistics {
      var merged = KeywordStatistics(websearch: all.first?.websearch, chunks: 0, totalLength: 0, terms: [], sequence: all.first?.sequence ?? [])
      var counts: [String: Int] = [:]
      for statistics in all {
        merged.chunks += statistics.chunks
        merged.totalLength += statistics.totalLength
        for (term, chunks) in statistics.terms { counts[term, default: 0] += chunks }
        merged.generations.merge(statistics.generations) { first, _ in first }
      }
      merged.terms = counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
      return merged
    }
  }

  /// Every posting of `terms` in `knowledgeBase`, by chunk id, with the knowledge base's keyword
  /// generation in the same snapshot (nil when it is gone): what PostingsCache keeps. A term the
  /// knowledge base does not hold has no postings. One row a term, its postings as arrays: row
  /// by row, a million postings cost the service seconds of CPU to decode.
  public func postings(_ terms: [String], knowledgeBase: UUID) async throws -> (generation: Int64, postings: [String: TermPostings])? {
    let rows = try await self.database.query(
      """
      SELECT k.keyword_generation, p.term, p.chunks, p.documents, p.frequencies, p.lengths
      FROM knowledge_bases k LEFT JOIN LATERAL (
        SELECT term, array_agg(chunk_id ORDER BY chunk_id) AS chunks, array_agg(document_id ORDER BY chunk_id) AS documents,
          array_agg(tf ORDER BY chunk_id) AS frequencies, array_agg(length ORDER BY chunk_id) AS lengths
        FROM keyword_postings WHERE knowledge_base_id = k.id AND term = ANY(\(terms)) GROUP BY term
      ) p ON true
      WHERE k.id = \(knowledgeBase)
      """, logger: self.logger)
    var generation: Int64?
    var postings = Dictionary(terms.map { ($0, TermPostings()) }, uniquingKeysWith: { first, _ in first })
    for row in rows {
      let (read, term, chunks, documents, frequencies, lengths) = try row.decode((Int64, String?, [UUID]?, [UUID]?, [Int32]?, [Int32]?).self)
      generation = read
      guard let term, let chunks, let documents, let frequencies, let lengths,
        let list = TermPostings(chunks: chunks, documents: documents, frequencies: frequencies, lengths: lengths)
      else { continue }
      postings[term] = list
    }
    return generation.map { ($0, postings) }
  }

  /// The BM25 parameters (Lucene's defaults).
  public static let k1 = 1.2
  public static let b = 0.75

  /// Where BM25's candidates come from.
  public enum KeywordCandidates: Sendable {
    /// The chunks holding any of these terms (with their IDF): the query's rarest, read from the
    /// postings in full; the best `pool` of them by these terms go on to be scored in full.
    case rarest([(term: String, idf: Double)], pool: Int)
    /// The chunks matching this tsquery (websearch syntax with quotes, `-word` or `or`), at most
    /// `cap` of them.
    case matching(tsquery: String, cap: Int)
  }

  /// One term's share of a chunk's BM25 score, over posting `p` and the query term's weight `w`:
  /// idf · tf·(k1+1) / (tf + k1·(1 − b + b·length/averageLength)).
  /// The constants are float8: a bare literal such as 1.2 is numeric in PostgreSQL, whose
  /// arithmetic made aggregating 2,000 postings cost 2 ms.
  /// `averageLength` is SQL: a parameter or a literal.
  static func termScore(averageLength: String) -> String {
    "w.idf * p.tf * \(Self.k1 + 1)::float8 / (p.tf + \(Self.k1)::float8 * (\(1 - Self.b)::float8 + \(Self.b)::float8 * p.length / \(averageLength)))"
  }

  /// BM25 (k1, b), best first: the sum over the query's terms of their shares (termScore), with
  /// tf and length counted in the chunk's keywords (the document title included). The candidates
  /// (and the rare terms' share of their scores) come from one index-only scan of the rare terms'
  /// postings; the other terms (`rest`) are added by primary-key lookups for the candidates only
  /// (a lateral join: as a plain join the planner, which expects a few hundred postings per
  /// term, hashed every posting of the common terms instead).
  public func bm25(
    _ candidates: KeywordCandidates, rest: [(term: String, idf: Double)], averageLength: Double, knowledgeBases: [UUID],
    documents: [UUID]?, limit: Int
  ) async throws -> [RankedChunk] {
    var statement = BM25Statement(
      knowledgeBases: knowledgeBases, documents: documents, rest: rest, averageLength: averageLength, limit: limit)
    switch candidates {
    case .rarest(let terms, let pool): (statement.rare, statement.pool) = (terms, pool)
    case .matching(let query, let cap): (statement.tsquery, statement.cap) = (query, cap)
    }
    return try await self.database.execute(statement, logger: self.logger)
  }

  /// bm25's statement, prepared (it runs once or more a keyword search). One statement for both
  /// kinds of candidates: the branch not taken is a one-time false filter.
  ///
  /// Each parameter is read through a scalar sub-select, `(SELECT $n::type)`, which the planner
  /// cannot see into: its plan cannot depend on the values, so PostgreSQL keeps the statement's
  /// one generic plan (the same shape as a custom one) instead of planning every call. With the
  /// bare parameters it estimated the generic plan at 10,166 against 1,206 for custom plans that
  /// see the arrays' lengths, and planned each call: 1,000 runs of a dev query took 1.73–1.80 s
  /// in `psql` against 1.59–1.63 s.
  struct BM25Statement: PostgresPreparedStatement {
    typealias Row = RankedChunk
    static let bindingDataTypes: [PostgresDataType] = [
      .textArray, .float8Array, .uuidArray, .text, .bool, .uuidArray, .int8, .int8, .textArray, .float8Array, .int8, .float8,
    ]
    static let sql = """
      WITH candidates AS MATERIALIZED (
        (SELECT any_value(p.knowledge_base_id) AS knowledge_base_id, p.chunk_id, any_value(p.document_id) AS document_id,
           sum(\(termScore)) AS score
         FROM unnest((SELECT $1::text[]), (SELECT $2::float8[])) AS w(term, idf)
         JOIN keyword_postings p ON p.knowledge_base_id = ANY((SELECT $3::uuid[])::uuid[]) AND p.term = w.term
         WHERE (SELECT $4::text) IS NULL AND ((SELECT $5::bool) OR p.document_id = ANY((SELECT $6::uuid[])::uuid[]))
         GROUP BY p.chunk_id ORDER BY score DESC LIMIT (SELECT $7::int8))
        UNION ALL
        (SELECT c.knowledge_base_id, c.id, c.document_id, 0::float8 FROM document_chunks c
         WHERE (SELECT $4::text) IS NOT NULL AND c.knowledge_base_id = ANY((SELECT $3::uuid[])::uuid[])
           AND c.keywords @@ (SELECT $4::text)::tsquery AND ((SELECT $5::bool) OR c.document_id = ANY((SELECT $6::uuid[])::uuid[]))
         LIMIT (SELECT $8::int8))
      ),
      rest AS (
        SELECT e.chunk_id, r.score FROM candidates e CROSS JOIN LATERAL (
          SELECT sum(\(termScore)) AS score
          FROM unnest((SELECT $9::text[]), (SELECT $10::float8[])) AS w(term, idf)
          JOIN keyword_postings p ON p.knowledge_base_id = e.knowledge_base_id AND p.term = w.term AND p.chunk_id = e.chunk_id
        ) r
      )
      SELECT e.chunk_id, e.document_id, e.score + coalesce(r.score, 0) AS total
      FROM candidates e LEFT JOIN rest r ON r.chunk_id = e.chunk_id
      ORDER BY total DESC, e.chunk_id LIMIT (SELECT $11::int8)
      """
    static let termScore = ChunkStore.termScore(averageLength: "(SELECT $12::float8)")
    var knowledgeBases: [UUID]
    var documents: [UUID]?
    var rest: [(term: String, idf: Double)]
    var averageLength: Double
    var limit: Int
    var rare: [(term: String, idf: Double)] = []
    var pool = 0
    var tsquery: String?
    var cap = 0

    func makeBindings() throws -> PostgresBindings {
      var bindings = PostgresBindings(capacity: 12)
      bindings.append(self.rare.map(\.term))
      bindings.append(self.rare.map(\.idf))
      bindings.append(self.knowledgeBases)
      bindings.append(self.tsquery)
      bindings.append(self.documents == nil)
      bindings.append(self.documents ?? [])
      bindings.append(self.pool)
      bindings.append(self.cap)
      bindings.append(self.rest.map(\.term))
      bindings.append(self.rest.map(\.idf))
      bindings.append(self.limit)
      bindings.append(self.averageLength)
      return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> RankedChunk {
      let (id, document, score) = try row.decode((UUID, UUID, Double).self)
      return RankedChunk(id: id, documentID: document, score: score)
    }
  }

  /// The cosine similarity of `query` and the first chunk of each of `documents` (those of the
  /// knowledge bases with `query.count` dimensions).
  public func leadSimilarities(_ query: [Float], documents: [UUID], knowledgeBases: [UUID]) async throws -> [UUID: Double] {
    guard !documents.isEmpty else { return [:] }
    let dimension = query.count
    let rows = try await self.database.query(
      """
      SELECT c.document_id, 1 - (\(unescaped: VectorIndexes.expression(dimension: dimension))
        <=> \(Self.vectorLiteral(query))::\(unescaped: VectorIndexes.type(dimension: dimension)))
      FROM document_chunks c
      WHERE c.document_id = ANY(\(documents)) AND c.chunk_index = 0 AND c.dimension = \(unescaped: String(dimension))
        AND c.knowledge_base_id = ANY(\(knowledgeBases))
      """, logger: self.logger)
    var found: [UUID: Double] = [:]
    for row in rows {
      let (document, similarity) = try row.decode((UUID, Double).self)
      found[document] = similarity
    }
    return found
  }

  /// The BM25 score (as `bm25` computes it) of the first chunk of each of `documents` that holds
  /// any of `terms`.
  public func leadBM25(
    _ terms: [(term: String, idf: Double)], averageLength: Double, documents: [UUID], knowledgeBases: [UUID]
  ) async throws -> [UUID: Double] {
    guard !documents.isEmpty, !terms.isEmpty else { return [:] }
    let rows = try await self.database.query(
      """
      SELECT c.document_id, sum(\(unescaped: Self.termScore(averageLength: "\(averageLength)::float8")))
      FROM document_chunks c
      CROSS JOIN unnest(\(terms.map(\.term))::text[], \(terms.map(\.idf))::float8[]) AS w(term, idf)
      JOIN keyword_postings p ON p.knowledge_base_id = c.knowledge_base_id AND p.term = w.term AND p.chunk_id = c.id
      WHERE c.document_id = ANY(\(documents)) AND c.chunk_index = 0 AND c.knowledge_base_id = ANY(\(knowledgeBases))
      GROUP BY c.document_id
      """, logger: self.logger)
    var found: [UUID: Double] = [:]
    for row in rows {
      let (document, score) = try row.decode((UUID, Double).self)
      found[document] = score
    }
    return found
  }

  /// The texts termPositions reads: chunks, or documents' openings (their first `chunks` chunks,
  /// one after the other).
  public enum Texts: Sendable {
    case chunks([UUID])
    case openings(of: [UUID], chunks: Int)
  }

  /// Where `terms` stand in each of `texts`, by chunk id or document id (the terms a text lacks
  /// are left out, a text with none of them too). An opening's later chunks stand after its
  /// earlier ones, far enough apart that no two terms count as near across chunks.
  public func termPositions(_ terms: [String], in texts: Texts, knowledgeBases: [UUID]) async throws -> [UUID: TermPositions] {
    var ids: [UUID] = []
    var documents: [UUID] = []
    var openingChunks = 0
    switch texts {
    case .chunks(let chunks): ids = chunks
    case .openings(let of, let chunks): (documents, openingChunks) = (of, chunks)
    }
    guard !terms.isEmpty, !(ids.isEmpty && documents.isEmpty) else { return [:] }
    let rows = try await self.database.execute(
      TermPositionsStatement(terms: terms, chunks: ids, documents: documents, openingChunks: openingChunks, knowledgeBases: knowledgeBases),
      logger: self.logger)
    // tsvector positions are below 2^14.
    let chunkSpan = 1 << 15
    var found: [UUID: TermPositions] = [:]
    for row in rows {
      let (chunk, document, knowledgeBase, index, term, positions) = try row.decode((UUID, UUID, UUID, Int, String, [Int32]).self)
      let key = documents.isEmpty ? chunk : document
      let offset = documents.isEmpty ? 0 : index * chunkSpan
      found[key, default: TermPositions(knowledgeBaseID: knowledgeBase)].positions[term, default: []] += positions.map { Int($0) + offset }
    }
    return found
  }

  /// The chunks `ids` with their documents' titles.
  public func chunks(_ ids: [UUID]) async throws -> [UUID: (chunk: StoredChunk, title: String)] {
    guard !ids.isEmpty else { return [:] }
    var found: [UUID: (StoredChunk, String)] = [:]
    let rows = try await self.database.execute(ChunksStatement(ids: ids), logger: self.logger)
    for row in rows {
      let chunk = try Self.chunk(row)
      found[chunk.id] = (chunk, try row.decode(String.self, startingAt: 8))
    }
    return found
  }

  /// chunks' statement, prepared (it runs once a search): $1 the chunks' ids.
  struct ChunksStatement: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static let bindingDataTypes: [PostgresDataType] = [.uuidArray]
    static let sql = "SELECT \(ChunkStore.columns), d.title FROM document_chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ANY($1)"
    var ids: [UUID]

    func makeBindings() throws -> PostgresBindings {
      var bindings = PostgresBindings(capacity: 1)
      bindings.append(self.ids)
      return bindings
    }
  }

  /// termPositions' statement, prepared (it runs once a hybrid search): $1 the terms, $2 the
  /// chunks, $3 the documents, $4 how many chunks of their openings, $5 the knowledge bases, each
  /// read through a scalar sub-select as in BM25Statement (planned once, not 0.15 ms a call).
  struct TermPositionsStatement: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static let bindingDataTypes: [PostgresDataType] = [.textArray, .uuidArray, .uuidArray, .int8, .uuidArray]
    static let sql = """
      SELECT c.id, c.document_id, c.knowledge_base_id, c.chunk_index, u.lexeme, u.positions::int4[]
      FROM (
        SELECT id, document_id, knowledge_base_id, chunk_index, keywords FROM document_chunks WHERE id = ANY((SELECT $2::uuid[])::uuid[])
        UNION ALL
        SELECT id, document_id, knowledge_base_id, chunk_index, keywords FROM document_chunks
        WHERE document_id = ANY((SELECT $3::uuid[])::uuid[]) AND chunk_index < (SELECT $4::int8)
      ) c CROSS JOIN LATERAL unnest(c.keywords) u
      WHERE c.knowledge_base_id = ANY((SELECT $5::uuid[])::uuid[]) AND u.lexeme = ANY((SELECT $1::text[])::text[])
      """
    var terms: [String]
    var chunks: [UUID]
    var documents: [UUID]
    var openingChunks: Int
    var knowledgeBases: [UUID]

    func makeBindings() throws -> PostgresBindings {
      var bindings = PostgresBindings(capacity: 5)
      bindings.append(self.terms)
      bindings.append(self.chunks)
      bindings.append(self.documents)
      bindings.append(self.openingChunks)
      bindings.append(self.knowledgeBases)
      return bindings
    }
  }
}
