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
      SELECT text_hash, embedding::real[] FROM embedding_cache WHERE model = \(model) AND text_hash = ANY(\(hashes))
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
      ON CONFLICT (model, text_hash) DO NOTHING
      """, logger: self.logger)
  }
}
