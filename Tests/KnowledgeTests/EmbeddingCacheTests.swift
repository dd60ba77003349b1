import Foundation
import PlatformCore
import PlatformTesting
import PostgresNIO
import Testing
@testable import Knowledge

@Suite("Knowledge: the embedding cache")
struct EmbeddingCacheTests {
  @Test("A lookup finds what was stored and marks a hit used once a day; pruning deletes only what no lookup used within the retention")
  func lookupAndPrune() async throws {
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        _ = try await MigrationRunner(client: client, logger: TestPostgres.quietLogger).apply(CoreMigrations.all + KnowledgeService().migrations())
        let cache = EmbeddingCache(database: Database(client: client), logger: TestPostgres.quietLogger)
        let hashes = (0..<5).map { String(repeating: "\($0)", count: 64) }
        try await cache.store(model: "m", hashes.enumerated().map { ($1, [Float($0), 1, 2]) })
        // Another model's entry under the same hash is another entry.
        try await cache.store(model: "other", [(hashes[0], [9, 9, 9])])
        #expect(try await cache.lookup(model: "m", hashes: [hashes[1], "missing"]) == [hashes[1]: [1, 1, 2]])

        func usedAt() async throws -> [String: Double] {
          var ages: [String: Double] = [:]
          for try await row in try await client.query(
            "SELECT model || ':' || text_hash, extract(epoch FROM now() - used_at)::float8 FROM embedding_cache", logger: TestPostgres.logger)
          {
            let (key, age) = try row.decode((String, Double).self)
            ages[key] = age
          }
          return ages
        }
        // Ages: 0 and 1 forty days, 2 ten days, 3 twelve hours, 4 now; the other model's forty days.
        _ = try await client.query(
          """
          UPDATE embedding_cache SET used_at = now() - CASE
            WHEN model = 'other' OR text_hash IN (\(hashes[0]), \(hashes[1])) THEN interval '40 days'
            WHEN text_hash = \(hashes[2]) THEN interval '10 days'
            WHEN text_hash = \(hashes[3]) THEN interval '12 hours'
            ELSE interval '0' END
          """, logger: TestPostgres.logger)
        // A lookup of 1 (forty days) and 3 (twelve hours): 1 is marked used now, 3 stays as it
        // was (marked within the day).
        #expect(try await cache.lookup(model: "m", hashes: [hashes[1], hashes[3]]).count == 2)
        let ages = try await usedAt()
        #expect(ages["m:" + hashes[1]].map { $0 < 60 } == true, "\(ages)")
        #expect(ages["m:" + hashes[3]].map { abs($0 - 12 * 3600) < 60 } == true, "\(ages)")

        // Thirty days' retention, batches of one: entry 0 and the other model's go, nothing else.
        #expect(try await cache.prune(olderThan: .seconds(30 * 86_400), batch: 1) == 2)
        #expect(Set(try await usedAt().keys) == Set([1, 2, 3, 4].map { "m:" + hashes[$0] }))
        #expect(try await cache.lookup(model: "other", hashes: [hashes[0]]).isEmpty)
        // A week's retention takes entry 2 as well; a second run finds nothing.
        #expect(try await cache.prune(olderThan: .seconds(7 * 86_400)) == 1)
        #expect(try await cache.prune(olderThan: .seconds(7 * 86_400)) == 0)
        #expect(Set(try await usedAt().keys) == Set([1, 3, 4].map { "m:" + hashes[$0] }))
      }
    }
  }
}
