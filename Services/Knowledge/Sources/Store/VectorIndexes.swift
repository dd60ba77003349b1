internal import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The HNSW indexes of chunk embeddings. Knowledge bases may use models of different dimensions,
/// and a pgvector index needs one, so chunks keep their embedding as an untyped `vector` with its
/// `dimension` beside it, and each dimension gets a partial expression index
/// `USING hnsw ((embedding::vector(d)) vector_cosine_ops) WHERE dimension = d` (halfvec above
/// 2,000 dimensions, pgvector's limit for vector; none above 4,000). One table keeps one schema,
/// one set of triggers and one query path; a partial index costs nothing for the other
/// dimensions. Table-per-dimension would need DDL per model and a query per table.
public enum VectorIndexes {
  /// The cast type of `dimension`: vector(d), or halfvec(d) above 2,000 dimensions.
  static func type(dimension: Int) -> String {
    dimension <= 2000 ? "vector(\(dimension))" : "halfvec(\(dimension))"
  }

  /// The indexed expression over chunk `c`.
  static func expression(dimension: Int) -> String {
    "(c.embedding::\(Self.type(dimension: dimension)))"
  }

  /// HNSW's build parameters: 16 links a node, and 200 candidates while inserting (pgvector's
  /// default 64 built a graph that, searched with 100 candidates, found the exact top 10 documents'
  /// relevant page 4.5 points less often than an exact scan on the retrieval corpus; 200 costs
  /// 0.5 points, a larger m nothing more).
  static let links = 16
  static let buildCandidates = 200

  /// The index's name carries its build parameters, so that new ones build a new index beside the
  /// old, which serves until the new one is ready.
  static func name(dimension: Int) -> String {
    "idx_document_chunks_embedding_\(dimension)_m\(Self.links)_ef\(Self.buildCandidates)"
  }

  /// How the service's connections scan the indexes, set once per connection (no statement per
  /// search): at most `efSearch` candidates to start with (KNOWLEDGE_HNSW_EF_SEARCH; `nearest`
  /// starts a small search with fewer, `candidates(limit:)`), and pgvector's
  /// iterative scan, which goes on past them until the query's LIMIT is met (a selective filter,
  /// or a ranking that needs hundreds of chunks). relaxed_order lets results come slightly out of
  /// order, so `nearest` sorts them again.
  public static func sessionSettings(efSearch: Int) -> [String: String] {
    ["hnsw.ef_search": String(efSearch), "hnsw.iterative_scan": "relaxed_order"]
  }

  public static let defaultEFSearch = 100

  /// The candidates a search for `limit` chunks starts with: twice the limit, at least 40
  /// (pgvector's default), at most the connection's `hnsw.ef_search` (KNOWLEDGE_HNSW_EF_SEARCH).
  /// A top 10 reads 1,300 index pages instead of 2,200 at 100 candidates, and finds 97.8% of the
  /// exact top 10 instead of 98.2% (100 chunks' own vectors as queries among 104k chunks of the
  /// retrieval corpus, offline embedder, ef_construction 200).
  static func candidates(limit: Int) -> Int {
    max(40, 2 * limit)
  }

  /// Creates the index of each dimension that has none (CONCURRENTLY: writes go on meanwhile);
  /// an index a crashed build left invalid is dropped and built again, and the dimension's indexes
  /// of other build parameters are dropped once it is ready. Called at start-up with the
  /// configured models' dimensions.
  public static func ensure(dimensions: Set<Int>, database: Database, logger: Logger) async throws {
    for dimension in dimensions.sorted() where (1...4000).contains(dimension) {
      let name = Self.name(dimension: dimension)
      let valid = try await database.query(
        """
        SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = \(name)
        """, logger: logger
      ).first?.decode(Bool.self)
      if valid == false {
        logger.warning("Rebuilding an invalid vector index", metadata: ["index": "\(name)"])
        try await database.query("DROP INDEX CONCURRENTLY IF EXISTS \(unescaped: name)", logger: logger)
      }
      if valid != true {
        let operators = dimension <= 2000 ? "vector_cosine_ops" : "halfvec_cosine_ops"
        try await database.query(
          """
          CREATE INDEX CONCURRENTLY IF NOT EXISTS \(unescaped: name) ON document_chunks
          USING hnsw ((embedding::\(unescaped: Self.type(dimension: dimension))) \(unescaped: operators))
          WITH (m = \(unescaped: String(Self.links)), ef_construction = \(unescaped: String(Self.buildCandidates)))
          WHERE dimension = \(unescaped: String(dimension))
          """, logger: logger)
        logger.info("Created a vector index", metadata: ["index": "\(name)"])
      }
      let legacy = "idx_document_chunks_embedding_\(dimension)"
      let superseded = try await database.query(
        """
        SELECT c.relname::text FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
        WHERE i.indrelid = 'document_chunks'::regclass AND c.relname <> \(name)
          AND (c.relname = \(legacy) OR c.relname LIKE \(LikePattern.startingWith(legacy + "_m")))
        """, logger: logger
      ).map { try $0.decode(String.self) }
      for old in superseded {
        try await database.query("DROP INDEX CONCURRENTLY IF EXISTS \(unescaped: "\"" + old + "\"")", logger: logger)
        logger.info("Dropped a vector index of other build parameters", metadata: ["index": "\(old)"])
      }
    }
  }
}
