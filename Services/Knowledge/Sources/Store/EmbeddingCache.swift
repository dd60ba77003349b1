internal import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// Embeddings by (model, SHA-256 of the text) in knowledge_db.embedding_cache: re-indexing and
/// unchanged chunks are never embedded twice, and a job that crashed mid-document finds what it
/// had embedded. Entries no lookup has used for a while are pruned (`prune`, `run`), so texts
/// deleted or replaced long ago do not keep their vectors forever.
public struct EmbeddingCache: Sendable {
  let database: Database
  let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  /// The cached embeddings of `hashes` (SHA-256 hex of the texts) under `model`. A hit last
  /// marked used over a day ago is marked used now (not every hit: re-indexing would rewrite
  /// every row it reads). Rows another statement holds are skipped, not waited for: concurrent
  /// lookups and prunes never wait on each other, so they cannot deadlock.
  public func lookup(model: String, hashes: [String]) async throws -> [String: [Float]] {
    guard !hashes.isEmpty else { return [:] }
    var found: [String: [Float]] = [:]
    let rows = try await self.database.query(
      """
      WITH touched AS (
        UPDATE embedding_cache SET used_at = now() WHERE (model, text_hash) IN (
          SELECT model, text_hash FROM embedding_cache
          WHERE model = \(model) AND text_hash = ANY(\(hashes)) AND used_at < now() - interval '1 day'
          FOR UPDATE SKIP LOCKED)
      )
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

  /// Deletes the entries no lookup has used for `retention`, a batch at a time (short
  /// transactions beside ingestion); returns how many. Rows another statement holds (a lookup
  /// marking them used, another replica's prune) are skipped.
  @discardableResult
  public func prune(olderThan retention: Duration, batch: Int = 1000) async throws -> Int {
    let seconds = Double(retention.components.seconds)
    var deleted = 0
    while true {
      let rows = try await self.database.query(
        """
        DELETE FROM embedding_cache WHERE (model, text_hash) IN (
          SELECT model, text_hash FROM embedding_cache WHERE used_at < now() - make_interval(secs => \(seconds))
          LIMIT \(batch) FOR UPDATE SKIP LOCKED
        ) RETURNING 1
        """, logger: self.logger)
      deleted += rows.count
      if rows.count < batch { return deleted }
    }
  }

  /// Prunes now and then every `interval` until the task is cancelled; a failed round is logged
  /// and retried at the next.
  public func run(retention: Duration, every interval: Duration = .seconds(3600)) async {
    await Periodic.run(every: interval, logger: self.logger, failure: "Embedding cache pruning failed") {
      let deleted = try await self.prune(olderThan: retention)
      if deleted > 0 { self.logger.info("Pruned the embedding cache", metadata: ["deleted": "\(deleted)"]) }
    }
  }
}
