internal import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// Embeddings by (model, SHA-256 of the text) in knowledge_db.embedding_cache: re-indexing and
/// unchanged chunks are never embedded twice, and a job that crashed mid-document finds what it
/// had embedded.
public struct EmbeddingCache: Sendable {
  let database: Database
  let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  /// The cached embeddings of `hashes` (SHA-256 hex of the texts) under `model`.
  public func lookup(model: String, hashes: [String]) async throws -> [String: [Float]] {
    guard !hashes.isEmpty else { return [:] }
    var found: [String: [Float]] = [:]
    let rows = try await self.database.query(
      """
      UPDATE embedding_cache SET used_at = now() WHERE model = \(model) AND text_hash = ANY(\(hashes))
      RETURNING text_hash, embedding::real[]
      """, logger: self.logger)
    for row in rows {
      let (hash, vector) = try row.decode((String, [Float]).self)
      found[hash] = vector
    }
    return found
  }

  /// Keeps `embeddings` (hash → vector) under `model`.
  public func store(model: String, _ embeddings: [(hash: String, vector: [Float])]) async throws {
    var seen = Set<String>()
    let embeddings = embeddings.filter { seen.insert($0.hash).inserted }
    guard !embeddings.isEmpty else { return }
    try await self.database.query(
      """
      INSERT INTO embedding_cache (model, text_hash, embedding)
      SELECT \(model), h, v::vector FROM unnest(\(embeddings.map(\.hash)), \(embeddings.map { ChunkStore.vectorLiteral($0.vector) })) AS e(h, v)
      ORDER BY h
      ON CONFLICT (model, text_hash) DO UPDATE SET used_at = now()
      """, logger: self.logger)
  }

  /// Drops entries unused for `age` (the cache would otherwise keep every text ever embedded).
  @discardableResult
  public func prune(unusedFor age: Duration) async throws -> Int {
    let seconds = Double(age.components.seconds)
    let rows = try await self.database.query(
      "WITH gone AS (DELETE FROM embedding_cache WHERE used_at < now() - make_interval(secs => \(seconds)) RETURNING 1) SELECT count(*)::int8 FROM gone",
      logger: self.logger)
    return Int(try rows.first?.decode(Int64.self) ?? 0)
  }
}
