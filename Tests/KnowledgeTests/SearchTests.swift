import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing
@testable import Knowledge

@Suite("Knowledge: search")
struct SearchTests {
  static let corpus: [(title: String, text: String, tags: [String], team: String)] = [
    ("grep", "grep searches files for lines that match a regular expression pattern and prints each matching line.", ["text"], "tools"),
    ("tar", "tar stores many files in one archive and extracts them again; it can compress the archive with gzip.", ["archive"], "tools"),
    ("ssh", "ssh opens an encrypted remote login session on another machine over the network.", ["network"], "ops"),
    ("cron", "cron runs scheduled commands periodically at fixed times, dates or intervals.", ["schedule"], "ops"),
    ("penguins", "Penguins are flightless seabirds of the southern hemisphere that feed on fish in cold water.", ["birds"], "zoo"),
  ]

  @Test("VECTOR, KEYWORD and HYBRID (RRF and weighted) rank the right chunk first and show how its score was made")
  func modes() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options)
      var ids: [String: String] = [:]
      for entry in Self.corpus {
        ids[entry.title] = try await addDocument(
          client, options, base: base.id, title: entry.title, content: entry.text, tags: entry.tags,
          metadata: .with { $0.fields["team"] = .init(stringValue: entry.team) }
        ).id
      }
      for mode in [Platform_Knowledge_V1_SearchMode.keyword, .vector, .hybrid] {
        for fusion in [Platform_Knowledge_V1_FusionMethod.rrf, .weighted] {
          let response = try await client.search(
            .with { $0.knowledgeBaseIds = [base.id]; $0.query = "archive files compressed with gzip"; $0.mode = mode; $0.fusion = fusion; $0.topK = 3 },
            options: options)
          #expect(response.mode == mode, "\(mode)")
          let first = try #require(response.results.first, "\(mode) \(fusion)")
          #expect(first.documentID == ids["tar"] && first.documentTitle == "tar", "\(mode) \(fusion): \(response.results.map(\.documentTitle))")
          #expect(first.knowledgeBaseID == base.id && (0...1).contains(first.score))
          #expect(response.results.map(\.score) == response.results.map(\.score).sorted(by: >))
          switch mode {
          case .keyword:
            #expect(first.hasKeywordScore && first.keywordRank == 1 && !first.hasVectorScore && first.score == 1)
            #expect(response.embeddingModel.isEmpty)
          case .vector:
            #expect(first.hasVectorScore && first.vectorRank == 1 && !first.hasKeywordScore && abs(first.score - first.vectorScore) < 1e-9)
            #expect(response.embeddingModel == "offline-hash-384")
          default:
            #expect(first.hasVectorScore && first.hasKeywordScore && first.vectorRank == 1 && first.keywordRank == 1)
            #expect(response.fusion == fusion)
            // The tar page holds every term of the question, but of its three neighbouring pairs
            // only "compress … gzip" stands in order close enough ("compress the archive with
            // gzip"): (1 + 1/3) / 2.
            #expect(abs(first.termMatch - 2.0 / 3) < 1e-9, "\(first.termMatch)")
            // Ranked first in both, RRF's largest possible value and the weighted sum's (1),
            // re-scored by the term match.
            #expect(abs(first.score - (1 + 0.3 * first.termMatch) / 1.3) < 1e-9)
          }
        }
      }
      // A long natural-language question still matches (the OR-of-terms fallback), while the
      // websearch syntax holds: a quoted phrase, and `-word` excludes.
      let question = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "which program would let me log in on a remote machine securely?"; $0.mode = .keyword },
        options: options)
      #expect(question.results.first?.documentID == ids["ssh"])
      let phrase = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "\"regular expression\""; $0.mode = .keyword }, options: options)
      #expect(phrase.results.map(\.documentID) == [ids["grep"]])
      let excluded = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "files -archive"; $0.mode = .keyword }, options: options)
      #expect(excluded.results.map(\.documentID) == [ids["grep"]])
      let stopWords = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "the of and"; $0.mode = .keyword }, options: options)
      #expect(stopWords.results.isEmpty)

      // Filters: tags, metadata, document ids, content types, creation time; min_score; top_k.
      func titles(_ filter: Platform_Knowledge_V1_SearchFilter, query: String = "files network fish commands") async throws -> Set<String> {
        Set(
          try await client.search(
            .with { $0.knowledgeBaseIds = [base.id]; $0.query = query; $0.filter = filter; $0.topK = 10; $0.mode = .hybrid }, options: options
          ).results.map(\.documentTitle))
      }
      #expect(try await titles(.with { $0.tagsAny = ["birds", "network"] }) == ["penguins", "ssh"])
      #expect(try await titles(.with { $0.metadata = .with { $0.fields["team"] = .init(stringValue: "ops") } }) == ["ssh", "cron"])
      #expect(try await titles(.with { $0.documentIds = [ids["cron"]!] }) == ["cron"])
      #expect(try await titles(.with { $0.contentTypes = ["text/html"] }).isEmpty)
      #expect(try await titles(.with { $0.createdAfter = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(3600)) }).isEmpty)
      #expect(try await titles(.with { $0.createdBefore = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(3600)) }).count == 5)
      let strict = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "penguins"; $0.mode = .keyword; $0.minScore = 0.99; $0.topK = 10 }, options: options)
      #expect(strict.results.map(\.documentTitle) == ["penguins"])

      // Bad requests.
      for (bad, field) in [
        (Platform_Knowledge_V1_SearchRequest.with { $0.query = "" }, "query"),
        (.with { $0.query = String(repeating: "q", count: 2001) }, "query"),
        (.with { $0.query = "q"; $0.topK = 101 }, "top_k"),
        (.with { $0.query = "q"; $0.minScore = 1.5 }, "min_score"),
        (.with { $0.query = "q"; $0.hybridAlpha = -0.1 }, "hybrid_alpha"),
        (.with { $0.query = "q"; $0.neighbors = 4 }, "neighbors"),
        (.with { $0.query = "q"; $0.filter = .with { $0.documentIds = ["nope"] } }, "filter.document_ids"),
        (.with { $0.query = "q"; $0.filter = .with { $0.contentTypes = ["image/png"] } }, "content_type"),
      ] {
        var request = bad
        request.knowledgeBaseIds = [base.id]
        let message = await expectStatus(.invalidArgument) { _ = try await client.search(request, options: options) }
        #expect(message.contains(field), "\(field): \(message)")
      }
      await expectStatus(.notFound) { _ = try await client.search(.with { $0.knowledgeBaseIds = [UUID().uuidString]; $0.query = "q" }, options: options) }
    }
  }

  @Test("HYBRID re-scores its best results by term match: every score is (RRF + 0.3 · term_match) / 1.3, best first")
  func hybridTermMatch() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options)
      for entry in Self.corpus {
        _ = try await addDocument(client, options, base: base.id, title: entry.title, content: entry.text)
      }
      for distinct in [false, true] {
        let results = try await client.search(
          .with {
            $0.knowledgeBaseIds = [base.id]; $0.query = "runs commands over the network at fixed times"; $0.mode = .hybrid; $0.fusion = .rrf
            $0.topK = 10; $0.distinctDocuments = distinct
          }, options: options
        ).results
        #expect(results.count == 5)
        #expect(results.map(\.score) == results.map(\.score).sorted(by: >))
        for result in results {
          let ranks = [result.hasVectorRank ? result.vectorRank : nil, result.hasKeywordRank ? result.keywordRank : nil].compactMap { $0 }
          let rrf = ranks.map { 1 / (60 + Double($0)) }.reduce(0, +) / (2.0 / 61)
          #expect(result.hasTermMatch && (0...1).contains(result.termMatch))
          #expect(abs(result.score - (rrf + 0.3 * result.termMatch) / 1.3) < 1e-9, "\(result.documentTitle)")
        }
        // cron holds four of the five terms (not "network"), and two of the four pairs in the
        // question's order: "runs scheduled commands", "fixed times". (4/5 + 2/4) / 2.
        let first = try #require(results.first)
        #expect(first.documentTitle == "cron" && abs(first.termMatch - 0.65) < 1e-9, "\(results.map(\.documentTitle)) \(first.termMatch)")
      }
    }
  }

  @Test("Term match: the share of the query's terms a text holds and of its neighbouring pairs standing in order, near enough")
  func termMatchMeasure() {
    let query: [(term: String, position: Int)] = [("a", 1), ("b", 2), ("c", 4)]
    #expect(Search.termMatch(query, in: ["a": [10], "b": [11], "c": [15]]) == 1)
    // "c" five after "b": two more than the query's gap of two.
    #expect(Search.termMatch(query, in: ["a": [10], "b": [11], "c": [16]]) == 0.75)
    // "b" before "a": that pair is out of order.
    #expect(Search.termMatch(query, in: ["a": [12], "b": [11], "c": [13]]) == 0.75)
    #expect(abs(Search.termMatch(query, in: ["a": [10], "b": [11]]) - (2.0 / 3 + 0.5) / 2) < 1e-12)
    #expect(Search.termMatch(query, in: [:]) == 0)
    #expect(Search.termMatch([("a", 1)], in: ["a": [3]]) == 1)
    #expect(Search.termMatch([("a", 1)], in: ["b": [3]]) == 0)
    #expect(Search.termMatch([], in: ["a": [1]]) == 0)
    // A repeated term counts once for coordination; each of its pairs counts.
    #expect(Search.termMatch([("a", 1), ("b", 2), ("a", 3)], in: ["a": [5], "b": [6]]) == 0.75)
    // Positions in any order; the nearest later position decides.
    #expect(Search.termMatch([("a", 1), ("b", 2)], in: ["a": [40, 9, 20], "b": [50, 3, 12]]) == 1)
    #expect(Search.termMatch([("a", 1), ("b", 2)], in: ["a": [40, 9, 20], "b": [50, 3, 16]]) == 0.5)
    // Terms a thousand stop words apart in the query: the window is as wide, and the work is not.
    let far: [(term: String, position: Int)] = [("a", 1), ("b", 1001)]
    #expect(Search.termMatch(far, in: ["a": [1], "b": [1_003]]) == 1)
    #expect(Search.termMatch(far, in: ["a": [1], "b": [1_004]]) == 0.5)
    #expect(Search.termMatch(far, in: ["a": Array(stride(from: 1, to: 500_000, by: 2)), "b": [600_000]]) == 0.5)
  }

  @Test("Neighbours come with a hit; distinct_documents returns one chunk per document, as many documents as asked for")
  func neighboursAndDistinct() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options, chunkSize: 16)
      let paragraphs = (0..<8).map { "Paragraph \($0) talks about topic number \($0) and nothing else at all here." }
      let long = try await addDocument(client, options, base: base.id, title: "long", content: paragraphs.joined(separator: "\n\n"))
      #expect(long.chunkCount >= 8)
      try await addDocument(client, options, base: base.id, title: "other", content: "Another document that talks about topic numbers too.")
      let hit = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "topic number 4"; $0.mode = .keyword; $0.topK = 1; $0.neighbors = 2 }, options: options)
      let first = try #require(hit.results.first)
      let index = first.chunk.chunkIndex
      #expect(first.neighbors.map(\.chunkIndex) == Array(max(0, index - 2)...(index + 2)).filter { $0 != index && $0 < long.chunkCount })
      let all = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "topic"; $0.mode = .hybrid; $0.topK = 10 }, options: options)
      #expect(Set(all.results.map(\.documentID)).count == 2 && all.results.count == 10)
      let distinct = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "topic"; $0.mode = .hybrid; $0.topK = 10; $0.distinctDocuments = true }, options: options)
      #expect(distinct.results.count == 2 && Set(distinct.results.map(\.documentID)).count == 2)
      // A document whose 40 chunks all match better than anything else fills the first chunks
      // read (3 per result wanted): the ranking reads further until it has enough documents.
      let flood = (0..<40).map { "Topic topic topic, the topic of topics: topic \($0)." }
      try await addDocument(client, options, base: base.id, title: "flood", content: flood.joined(separator: "\n\n"))
      for mode in [Platform_Knowledge_V1_SearchMode.keyword, .vector, .hybrid] {
        let three = try await client.search(
          .with { $0.knowledgeBaseIds = [base.id]; $0.query = "topic"; $0.mode = mode; $0.topK = 3; $0.distinctDocuments = true }, options: options)
        #expect(Set(three.results.map(\.documentID)).count == 3, "\(mode): \(three.results.map(\.documentTitle))")
      }
    }
  }

  @Test("distinct_documents scores a document by the mean of its best chunk and its first: an opening about the query beats a passing match")
  func documentsByBestAndFirstChunk() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options, chunkSize: 16)
      let filler = (0..<4).map { "Penguins are flightless seabirds \($0) of the southern hemisphere feeding on fish." }
      let lead = try await addDocument(
        client, options, base: base.id, title: "lead",
        content: (["Unpacks archive files compressed with gzip, quickly."] + filler).joined(separator: "\n\n"))
      let tail = try await addDocument(
        client, options, base: base.id, title: "tail",
        content: (filler + ["Archive files compressed with gzip: archive files, gzip archive files compressed."]).joined(separator: "\n\n"))
      let question = "archive files compressed with gzip"
      for mode in [Platform_Knowledge_V1_SearchMode.keyword, .vector] {
        // Chunk by chunk, every chunk's score.
        let chunks = try await client.search(
          .with { $0.knowledgeBaseIds = [base.id]; $0.query = question; $0.mode = mode; $0.topK = 100 }, options: options).results
        func score(_ result: Platform_Knowledge_V1_SearchResult) -> Double { mode == .keyword ? result.keywordScore : result.vectorScore }
        let documents = try await client.search(
          .with { $0.knowledgeBaseIds = [base.id]; $0.query = question; $0.mode = mode; $0.topK = 2; $0.distinctDocuments = true },
          options: options).results
        #expect(documents.map(\.documentID) == [lead.id, tail.id], "\(mode): \(documents.map(\.documentTitle))")
        for document in documents {
          let own = chunks.filter { $0.documentID == document.documentID }
          let best = own.map(score).max() ?? 0
          let first = own.first { $0.chunk.chunkIndex == 0 }.map(score) ?? 0
          #expect(abs(score(document) - (best + first) / 2) < 1e-9, "\(mode) \(document.documentTitle): \(score(document)) vs \(best), \(first)")
        }
        if mode == .keyword {
          // The passing match is the better chunk on its own.
          #expect(chunks.first?.documentID == tail.id)
        }
      }
      // HYBRID's term match reads a document's opening (its first two chunks), not its best
      // chunk: the lead holds the whole question in order, the tail's opening none of it.
      let hybrid = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = question; $0.mode = .hybrid; $0.topK = 2; $0.distinctDocuments = true },
        options: options
      ).results
      #expect(hybrid.map(\.documentID) == [lead.id, tail.id] && hybrid.map(\.termMatch) == [1, 0], "\(hybrid.map(\.termMatch))")
    }
  }

  @Test("A selective filter still yields k results from the HNSW index (iterative scan): a knowledge base with 1% of the chunks")
  func selectiveFilter() async throws {
    try await TestPostgres.withTemporaryDatabase { configuration in
      let big = UUID()
      let small = UUID()
      let smallDocument = UUID()
      try await TestPostgres.withClient(configuration) { client in
        _ = try await MigrationRunner(client: client, logger: TestPostgres.quietLogger).apply(CoreMigrations.all + KnowledgeService().migrations())
        let database = Database(client: client)
        try await VectorIndexes.ensure(dimensions: [384], database: database, logger: TestPostgres.quietLogger)
        let embedder = OfflineEmbedder()
        let owner = UUID()
        for (base, count) in [(big, 3000), (small, 30)] {
          _ = try await client.query(
            """
            INSERT INTO knowledge_bases (id, name, owner_id, embedding_model, vector_dimension) VALUES (\(base), \(base.uuidString), \(owner), 'offline-hash-384', 384);
            """, logger: TestPostgres.logger)
          let document = base == small ? smallDocument : UUID()
          _ = try await client.query(
            """
            INSERT INTO documents (id, user_id, knowledge_base_id, title, content_type, content_hash, chunk_strategy, chunk_size, chunk_overlap, status)
            VALUES (\(document), \(owner), \(base), 'd', 'text/plain', \(String(repeating: "0", count: 64)), 'fixed', 100, 10, 'indexed')
            """, logger: TestPostgres.logger)
          // Every chunk of either knowledge base is about the same thing.
          let texts = (0..<count).map { "server \($0) logs requests, errors and latency of the service mesh" }
          let vectors = try await embedder.embed(texts)
          _ = try await client.query(
            """
            INSERT INTO document_chunks (document_id, knowledge_base_id, chunk_index, content, content_length, embedding, dimension, keywords, keyword_length)
            SELECT \(document), \(base), i - 1, t, char_length(t), v::vector, 384, to_tsvector('english', t), 1
            FROM unnest(\(texts), \(vectors.map(ChunkStore.vectorLiteral))) WITH ORDINALITY AS n(t, v, i)
            """, logger: TestPostgres.logger)
        }
        // Only the HNSW index can serve the ordering: no sequential scan, no knowledge-base index.
        _ = try await client.query("DROP INDEX idx_document_chunks_knowledge_base", logger: TestPostgres.logger)
        _ = try await client.query("ANALYZE document_chunks", logger: TestPostgres.logger)
        _ = try await client.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \(configuration.database) SET enable_seqscan = off"), logger: TestPostgres.logger)
      }
      // New connections get the setting, and the service's own (the iterative scan).
      var service = configuration
      service.sessionSettings = try KnowledgeService().databaseSessionSettings(Environment([:]))
      // One connection: the statements below run where the search ran.
      service.poolSize = 1
      try await TestPostgres.withClient(service) { client in
        let database = Database(client: client)
        let query = try await OfflineEmbedder().embed(["latency of the service mesh"])[0]
        let store = ChunkStore(database: database, logger: TestPostgres.quietLogger)
        let found = try await store.nearest(query, knowledgeBases: [small], documents: nil, limit: 10)
        #expect(found.count == 10 && found.allSatisfy { $0.documentID == smallDocument })
        #expect(found.map(\.score) == found.map(\.score).sorted(by: >))
        // The search started with 40 candidates (a top 10), for its own statement only: the
        // connection keeps the service's setting.
        #expect(VectorIndexes.candidates(limit: 10) == 40 && VectorIndexes.candidates(limit: 300) == 600)
        let setting = try await database.query("SELECT current_setting('hnsw.ef_search')", logger: TestPostgres.quietLogger)
        #expect(try setting.first?.decode(String.self) == String(VectorIndexes.defaultEFSearch))
        // The control: the same plan without the iterative scan stops after ef_search candidates,
        // of which about 1% are the small knowledge base's.
        let plain = try await database.withTransaction(logger: TestPostgres.quietLogger) { connection in
          _ = try await connection.query("SET LOCAL hnsw.iterative_scan = off", logger: TestPostgres.quietLogger)
          let plan = try await connection.query(
            """
            EXPLAIN SELECT c.id FROM document_chunks c WHERE c.dimension = 384 AND c.knowledge_base_id = ANY(\([small]))
            ORDER BY (c.embedding::vector(384)) <=> \(ChunkStore.vectorLiteral(query))::vector(384) LIMIT 10
            """, logger: TestPostgres.quietLogger)
          #expect(try plan.map { try $0.decode(String.self) }.joined().contains("idx_document_chunks_embedding_384"))
          return try await connection.query(
            """
            SELECT c.id FROM document_chunks c WHERE c.dimension = 384 AND c.knowledge_base_id = ANY(\([small]))
            ORDER BY (c.embedding::vector(384)) <=> \(ChunkStore.vectorLiteral(query))::vector(384) LIMIT 10
            """, logger: TestPostgres.quietLogger
          ).count
        }
        #expect(plain < 10, "without the iterative scan the filter leaves \(plain)")
      }
    }
  }

  @Test("KEYWORD's scores are BM25 as a plain SQL reference computes it from the chunks' tsvectors, whichever way the candidates come")
  func bm25MatchesReference() async throws {
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        _ = try await MigrationRunner(client: client, logger: TestPostgres.quietLogger).apply(CoreMigrations.all + KnowledgeService().migrations())
        let base = UUID()
        let owner = UUID()
        _ = try await client.query(
          "INSERT INTO knowledge_bases (id, name, owner_id, embedding_model, vector_dimension) VALUES (\(base), 'b', \(owner), 'offline-hash-384', 384)",
          logger: TestPostgres.logger)
        // Chunks of different lengths and term frequencies (no two score alike, so the order is
        // the scores'): every word of the query is in some.
        var texts = Self.corpus.map(\.text)
        texts += (0..<40).map { "Files \($0): " + String(repeating: "archive files ", count: $0 % 5) + "logs of server " + String(repeating: "extra ", count: $0) }
        for (index, text) in texts.enumerated() {
          let document = UUID()
          _ = try await client.query(
            """
            INSERT INTO documents (id, user_id, knowledge_base_id, title, content_type, content_hash, chunk_strategy, chunk_size, chunk_overlap, status)
            VALUES (\(document), \(owner), \(base), \("t\(index)"), 'text/plain', \(String(repeating: "0", count: 64)), 'fixed', 100, 10, 'indexed');
            """, logger: TestPostgres.logger)
          _ = try await client.query(
            """
            INSERT INTO document_chunks (document_id, knowledge_base_id, chunk_index, content, content_length, embedding, dimension, keywords, keyword_length)
            SELECT \(document), \(base), 0, \(text), char_length(\(text)), \(ChunkStore.vectorLiteral([Float](repeating: 0.1, count: 384)))::vector, 384, k,
              (SELECT coalesce(sum(array_length(u.positions, 1)), 0) FROM unnest(k) u)
            FROM to_tsvector('english', \(text)) k
            """, logger: TestPostgres.logger)
        }
        let store = ChunkStore(database: Database(client: client), logger: TestPostgres.quietLogger)
        let query = "compressed archive files of the server logs"
        let reference = try await client.query(
          """
          WITH chunks AS (SELECT * FROM document_chunks WHERE knowledge_base_id = \(base)),
          stats AS (SELECT count(*)::float8 AS n, avg(keyword_length)::float8 AS average FROM chunks),
          terms AS (SELECT unnest(tsvector_to_array(to_tsvector('english', \(query)))) AS term),
          df AS (SELECT u.lexeme AS term, count(*)::float8 AS df FROM chunks c, unnest(c.keywords) u GROUP BY u.lexeme)
          SELECT c.id, sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * array_length(u.positions, 1) * 2.2
            / (array_length(u.positions, 1) + 1.2 * (0.25 + 0.75 * c.keyword_length / s.average)))::float8 AS score
          FROM chunks c CROSS JOIN stats s CROSS JOIN unnest(c.keywords) u JOIN terms t ON t.term = u.lexeme JOIN df ON df.term = u.lexeme
          GROUP BY c.id ORDER BY score DESC, c.id
          """, logger: TestPostgres.logger
        ).collect().map { try $0.decode((UUID, Double).self) }
        #expect(reference.count > 20)
        let bases = KnowledgeBaseStore(database: Database(client: client), logger: TestPostgres.quietLogger)
        let statistics = try #require(try await bases.searched([base], ownerID: owner, keywordsOf: query).first?.keywords)
        #expect(try await bases.searched([base], ownerID: UUID(), keywordsOf: query).isEmpty, "another owner's")
        #expect(try await bases.searched([base], ownerID: owner).first?.keywords == nil, "no text, no statistics")
        let total = Double(statistics.chunks)
        let weights = statistics.terms.filter { $0.chunks > 0 }.sorted { $0.chunks < $1.chunks }.map {
          (term: $0.term, idf: log(1 + (total - Double($0.chunks) + 0.5) / (Double($0.chunks) + 0.5)))
        }
        #expect(weights.count == 5)  // compress, archiv, file, server, log
        let average = Double(statistics.totalLength) / total
        func same(_ ranked: [RankedChunk], _ expected: [(UUID, Double)], _ what: String) {
          #expect(ranked.map(\.id) == expected.map(\.0), "\(what)")
          for (got, want) in zip(ranked, expected) { #expect(abs(got.score - want.1) < 1e-9, "\(what): \(got.score) vs \(want.1)") }
        }
        // Candidates from the rarest term's postings (all of its chunks), the rest added by lookups.
        let rarest = try await store.bm25(
          .rarest(Array(weights.prefix(1)), pool: 1000), rest: Array(weights.dropFirst()), averageLength: average, knowledgeBases: [base],
          documents: nil, limit: 10)
        let holdingRarest = try await client.query(
          "SELECT id FROM document_chunks WHERE keywords @@ to_tsquery('english', \(weights[0].term))", logger: TestPostgres.logger
        ).collect().map { try $0.decode(UUID.self) }
        same(rarest, reference.filter { holdingRarest.contains($0.0) }.prefix(10).map { $0 }, "rarest term's candidates")
        // Every term's postings: the full ranking.
        let all = try await store.bm25(
          .rarest(weights, pool: 1000), rest: [], averageLength: average, knowledgeBases: [base], documents: nil, limit: 10)
        same(all, Array(reference.prefix(10)), "all terms")
        // Candidates matching a tsquery, every term added by lookups.
        let matching = try await store.bm25(
          .matching(tsquery: "'file' & 'log'", cap: 1000), rest: weights, averageLength: average, knowledgeBases: [base], documents: nil, limit: 10)
        let holdingBoth = try await client.query(
          "SELECT id FROM document_chunks WHERE keywords @@ 'file & log'::tsquery", logger: TestPostgres.logger
        ).collect().map { try $0.decode(UUID.self) }
        same(matching, reference.filter { holdingBoth.contains($0.0) }.prefix(10).map { $0 }, "matching candidates")

        // The same rankings in memory (BM25.rank), over the postings as PostingsCache keeps them:
        // read at the generation the statistics saw, by chunk id.
        let read = try #require(try await store.postings(weights.map(\.term) + ["absent"], knowledgeBase: base))
        #expect(read.generation == statistics.generations[base] && read.generation > 0)
        #expect(read.postings["absent"] == TermPostings())
        for list in read.postings.values {
          #expect(zip(list.keys, list.keys.dropFirst()).allSatisfy { $0 < $1 })
        }
        func inMemory(_ rare: ArraySlice<(term: String, idf: Double)>, _ rest: ArraySlice<(term: String, idf: Double)>, documents: Set<UUID>? = nil) -> [RankedChunk] {
          func terms(_ weighted: ArraySlice<(term: String, idf: Double)>) -> [BM25.Term] {
            weighted.map { BM25.Term(idf: $0.idf, postings: [read.postings[$0.term] ?? TermPostings()]) }
          }
          return BM25.rank(rare: terms(rare), rest: terms(rest), averageLength: average, documents: documents, pool: 1000, limit: 10)
        }
        same(inMemory(weights.prefix(1), weights.dropFirst()), rarest.map { ($0.id, $0.score) }, "rarest term's candidates in memory")
        same(inMemory(weights[...], []), Array(reference.prefix(10)), "all terms in memory")
        // A document filter: the SQL ranking's, over some of the documents.
        let some = try await client.query(
          "SELECT DISTINCT document_id FROM document_chunks WHERE keywords @@ 'log'::tsquery ORDER BY document_id LIMIT 12", logger: TestPostgres.logger
        ).collect().map { try $0.decode(UUID.self) }
        let filtered = try await store.bm25(
          .rarest(Array(weights.prefix(2)), pool: 1000), rest: Array(weights.dropFirst(2)), averageLength: average, knowledgeBases: [base],
          documents: some, limit: 10)
        #expect(!filtered.isEmpty && filtered.allSatisfy { some.contains($0.documentID) })
        same(inMemory(weights.prefix(2), weights.dropFirst(2), documents: Set(some)), filtered.map { ($0.id, $0.score) }, "filtered in memory")
        // Adding or removing chunks moves the knowledge base to a new generation.
        _ = try await client.query("DELETE FROM document_chunks WHERE id = \(rarest[0].id)", logger: TestPostgres.logger)
        let after = try #require(try await bases.searched([base], ownerID: owner, keywordsOf: query).first?.keywords)
        #expect(try #require(after.generations[base]) > read.generation)
      }
    }
  }

  @Test("Start-up builds each dimension's HNSW index with the current build parameters and drops the one built with older ones")
  func vectorIndexReplaced() async throws {
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        _ = try await MigrationRunner(client: client, logger: TestPostgres.quietLogger).apply(CoreMigrations.all + KnowledgeService().migrations())
        // What an earlier version created: pgvector's default build parameters, no suffix.
        _ = try await client.query(
          """
          CREATE INDEX idx_document_chunks_embedding_384 ON document_chunks USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dimension = 384
          """, logger: TestPostgres.logger)
        let database = Database(client: client)
        for _ in 0..<2 {  // and again: nothing left to do
          try await VectorIndexes.ensure(dimensions: [384], database: database, logger: TestPostgres.quietLogger)
          let indexes = try await client.query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE indexname LIKE 'idx_document_chunks_embedding%'", logger: TestPostgres.logger
          ).collect().map { try $0.decode((String, String).self) }
          #expect(indexes.map(\.0) == ["idx_document_chunks_embedding_384_m16_ef200"])
          #expect(indexes.first?.1.contains("ef_construction='200'") == true, "\(indexes)")
        }
      }
    }
  }

  @Test("Another user's chunks never appear, even when they match best")
  func ownerScoping() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let mine = try await makeBase(client, options, name: "mine")
      try await addDocument(client, options, base: mine.id, title: "m", content: "notes about the service")
      let stranger = try await service.options(for: UUID())
      let theirs = try await makeBase(client, stranger, name: "theirs")
      try await addDocument(client, stranger, base: theirs.id, title: "t", content: "latency of the service mesh")
      for mode in [Platform_Knowledge_V1_SearchMode.keyword, .vector, .hybrid] {
        let response = try await client.search(
          .with { $0.knowledgeBaseIds = [mine.id]; $0.query = "latency of the service mesh"; $0.mode = mode; $0.topK = 100 }, options: options)
        #expect(!response.results.isEmpty && response.results.allSatisfy { $0.knowledgeBaseID == mine.id })
      }
      await expectStatus(.notFound) {
        _ = try await client.search(.with { $0.knowledgeBaseIds = [mine.id, theirs.id]; $0.query = "latency" }, options: options)
      }
    }
  }
}
