import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Synchronization
import Testing
@testable import Knowledge

@Suite("Knowledge: postings in memory")
struct PostingsCacheTests {
  /// Postings of `count` chunks.
  static func postings(_ count: Int) -> TermPostings {
    var list = TermPostings()
    for index in 0..<count { list.append(chunk: UUID(), document: UUID(), frequency: 1, length: Int32(index + 1)) }
    return list
  }

  @Test("BM25 in memory: the best `pool` by the rare terms, completed by the rest, as a plain sort of every chunk computes it")
  func rankingMatchesPlainSort() {
    var generator = SystemRandomNumberGenerator()
    let chunks = (0..<400).map { _ in UUID() }
    let documentOf = Dictionary(uniqueKeysWithValues: chunks.map { ($0, UUID()) })
    let lengthOf = Dictionary(uniqueKeysWithValues: chunks.map { ($0, Int32.random(in: 5...300, using: &generator)) })
    // Five terms over two knowledge bases (the first 250 chunks in one, the rest in the other).
    func term(_ share: Double, idf: Double) -> (BM25.Term, [UUID: Int32]) {
      var frequencies: [UUID: Int32] = [:]
      for chunk in chunks where Double.random(in: 0..<1, using: &generator) < share { frequencies[chunk] = Int32.random(in: 1...6, using: &generator) }
      let lists = [chunks.prefix(250), chunks.dropFirst(250)].map { part in
        let held = part.filter { frequencies[$0] != nil }.sorted { TermPostings.key($0) < TermPostings.key($1) }
        return TermPostings(chunks: held, documents: held.map { documentOf[$0]! }, frequencies: held.map { frequencies[$0]! }, lengths: held.map { lengthOf[$0]! })!
      }
      return (BM25.Term(idf: idf, postings: lists), frequencies)
    }
    let terms = [term(0.1, idf: 3.1), term(0.15, idf: 2.4), term(0.2, idf: 2.2), term(0.5, idf: 0.8), term(0.7, idf: 0.3)]
    let rare = Array(terms.prefix(3))
    let rest = Array(terms.dropFirst(3))
    let allowed = Set(chunks.shuffled().prefix(300).map { documentOf[$0]! })
    for (pool, limit, documents) in [(20, 10, nil), (7, 5, nil), (1000, 10, nil), (30, 10, allowed), (0, 10, nil)] as [(Int, Int, Set<UUID>?)] {
      var partial: [(chunk: UUID, score: Double)] = []
      for chunk in chunks where documents?.contains(documentOf[chunk]!) ?? true {
        var score = 0.0
        var found = false
        for (term, frequencies) in rare {
          guard let tf = frequencies[chunk] else { continue }
          score += BM25.share(idf: term.idf, frequency: tf, length: lengthOf[chunk]!, averageLength: 80)
          found = true
        }
        if found { partial.append((chunk, score)) }
      }
      func order(_ left: (chunk: UUID, score: Double), _ right: (chunk: UUID, score: Double)) -> Bool {
        left.score != right.score ? left.score > right.score : TermPostings.key(left.chunk) < TermPostings.key(right.chunk)
      }
      var expected = Array(partial.sorted(by: order).prefix(pool)).map { candidate in
        var added = 0.0
        for (term, frequencies) in rest {
          if let tf = frequencies[candidate.chunk] { added += BM25.share(idf: term.idf, frequency: tf, length: lengthOf[candidate.chunk]!, averageLength: 80) }
        }
        return (chunk: candidate.chunk, score: candidate.score + added)
      }
      expected = Array(expected.sorted(by: order).prefix(limit))
      let ranked = BM25.rank(rare: rare.map(\.0), rest: rest.map(\.0), averageLength: 80, documents: documents, pool: pool, limit: limit)
      #expect(ranked.map(\.id) == expected.map(\.chunk), "pool \(pool)")
      #expect(ranked.map(\.score) == expected.map(\.score), "pool \(pool)")
      #expect(ranked.allSatisfy { documentOf[$0.id] == $0.documentID })
      #expect(ranked.count == min(limit, pool, partial.count))
    }
    for chunk in chunks.prefix(20) { #expect(TermPostings.id(TermPostings.key(chunk)) == chunk) }
  }

  /// Searches the service ranked from memory (its /metrics).
  static func hits(_ service: PlatformTestService) throws -> Int {
    let (_, body) = try httpRequest(port: service.adminPort, path: "/metrics")
    let prefix = #"cache_lookups_total{cache="keyword_postings",result="hit"} "#
    return body.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) } ?? 0
  }

  @Test("Postings are served only at the generation they were read at; a newer generation drops the older one's")
  func generations() {
    let cache = PostingsCache(budget: 1 << 20, settle: .zero)
    let base = UUID()
    cache.keep(["grep": Self.postings(3), "tar": Self.postings(2)], knowledgeBase: base, generation: 4)
    #expect(cache.postings(["grep", "tar"], knowledgeBase: base, generation: 4)?.map(\.count) == [3, 2])
    #expect(cache.postings(["grep", "cron"], knowledgeBase: base, generation: 4) == nil, "one term missing: nothing")
    #expect(cache.postings(["grep"], knowledgeBase: UUID(), generation: 4) == nil, "another knowledge base")
    // A search that read generation 5 (a document added or deleted): not served from 4, and 4 is gone.
    #expect(cache.postings(["grep"], knowledgeBase: base, generation: 5) == nil)
    #expect(cache.statistics.entries == 0 && cache.statistics.bytes == 0)
    // Postings read at an older generation than one seen since are not kept.
    cache.keep(["grep": Self.postings(3)], knowledgeBase: base, generation: 4)
    #expect(cache.statistics.entries == 0)
    cache.keep(["grep": Self.postings(3)], knowledgeBase: base, generation: 5)
    #expect(cache.postings(["grep"], knowledgeBase: base, generation: 5)?.first?.count == 3)
    #expect(cache.statistics.hits == 2 && cache.statistics.misses == 3)
  }

  @Test("The budget holds: the least recently used postings go first, and a list over a quarter of it is never kept")
  func budget() {
    let one = Self.postings(100).bytes
    let cache = PostingsCache(budget: 10 * one, settle: .zero)
    let base = UUID()
    for index in 0..<9 { cache.keep(["t\(index)": Self.postings(100)], knowledgeBase: base, generation: 1) }
    #expect(cache.statistics.entries == 9 && cache.statistics.bytes == 9 * one)
    // t0 used again: t1 and t2 are now the least recent.
    #expect(cache.postings(["t0"], knowledgeBase: base, generation: 1) != nil)
    cache.keep(["t9": Self.postings(100), "t10": Self.postings(100)], knowledgeBase: base, generation: 1)
    #expect(cache.statistics.bytes <= 10 * one, "\(cache.statistics)")
    #expect(cache.postings(["t0"], knowledgeBase: base, generation: 1) != nil)
    #expect(cache.postings(["t1"], knowledgeBase: base, generation: 1) == nil)
    #expect(cache.postings(["t10"], knowledgeBase: base, generation: 1) != nil)
    cache.keep(["huge": Self.postings(300)], knowledgeBase: base, generation: 1)
    #expect(cache.postings(["huge"], knowledgeBase: base, generation: 1) == nil)
    // Nor is it read again at that generation: every search holding it would read it anew.
    cache.wanted(["huge"], knowledgeBase: base, generation: 1) { _, _ in
      Issue.record("an oversized term read again")
      return nil
    }
    #expect(!cache.reading)
    #expect(PostingsCache(budget: 0).postings(["t0"], knowledgeBase: base, generation: 1) == nil)
  }

  @Test("Missing postings are read in the background by one reader working through a queue, once the generation has stood for the settle time")
  func backgroundReads() async throws {
    let cache = PostingsCache(budget: 1 << 20, settle: .milliseconds(300))
    let base = UUID()
    let reads = Mutex<[[String]]>([])
    let read: PostingsCache.Reader = { terms, _ in
      reads.withLock { $0.append(terms) }
      try await Task.sleep(for: .milliseconds(200))
      return (7, Dictionary(uniqueKeysWithValues: terms.map { ($0, Self.postings(2)) }))
    }
    cache.keep(["grep": Self.postings(1)], knowledgeBase: base, generation: 7)
    cache.wanted(["grep", "tar"], knowledgeBase: base, generation: 7, read: read)
    #expect(!cache.reading, "the generation has not stood for 300 ms")
    try await Task.sleep(for: .milliseconds(350))
    cache.wanted(["grep", "tar"], knowledgeBase: base, generation: 7, read: read)
    // While "tar" is read: queued once, not "tar" again.
    cache.wanted(["grep", "tar", "cron"], knowledgeBase: base, generation: 7, read: read)
    cache.wanted(["cron", "tar"], knowledgeBase: base, generation: 7, read: read)
    #expect(cache.reading)
    for _ in 0..<100 where cache.reading { try await Task.sleep(for: .milliseconds(20)) }
    #expect(reads.withLock { $0.flatMap { $0 }.sorted() } == ["cron", "tar"], "only the missing terms, once each")
    #expect(cache.postings(["grep", "tar", "cron"], knowledgeBase: base, generation: 7)?.map(\.count) == [1, 2, 2])
    // Many terms: read termsPerRead at a time.
    let many = (0..<70).map { "term\($0)" }
    reads.withLock { $0.removeAll() }
    cache.wanted(many, knowledgeBase: base, generation: 7, read: read)
    for _ in 0..<200 where cache.reading { try await Task.sleep(for: .milliseconds(20)) }
    #expect(reads.withLock { $0.map(\.count) } == [32, 32, 6])
    #expect(cache.postings(many, knowledgeBase: base, generation: 7)?.count == 70)
    // A read that finds a newer generation than the search asked for keeps nothing for the old one.
    cache.wanted(["cron"], knowledgeBase: base, generation: 6, read: read)
    #expect(!cache.reading, "not the newest generation")
  }

  @Test("KEYWORD and HYBRID rank from memory once the postings are read, to the same results as PostgreSQL; a deleted document leaves at once")
  func searchFromMemory() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options, chunkSize: 400)
      for entry in SearchTests.corpus {
        try await addDocument(client, options, base: base.id, title: entry.title, content: entry.text)
      }
      for index in 0..<12 {
        // One chunk each, no two alike (their lengths differ), so no two score alike.
        let text = "Archive \(index): " + String(repeating: "files of the server ", count: index % 4 + 1) + "kept in a compressed archive"
          + String(repeating: " with notes", count: index) + "."
        try await addDocument(client, options, base: base.id, title: "archive \(index)", content: text)
      }
      func hits() throws -> Int { try Self.hits(service) }
      func search(_ mode: Platform_Knowledge_V1_SearchMode) async throws -> [Platform_Knowledge_V1_SearchResult] {
        try await client.search(
          .with { $0.knowledgeBaseIds = [base.id]; $0.query = "compressed archive files of the server"; $0.mode = mode; $0.topK = 8 },
          options: options
        ).results
      }
      func same(_ got: [Platform_Knowledge_V1_SearchResult], _ expected: [Platform_Knowledge_V1_SearchResult], _ what: String) {
        #expect(got.map(\.chunk.id) == expected.map(\.chunk.id), "\(what)")
        for (a, b) in zip(got, expected) {
          #expect(abs(a.score - b.score) < 1e-9 && abs(a.keywordScore - b.keywordScore) < 1e-9 && a.keywordRank == b.keywordRank, "\(what)")
        }
      }
      let keyword = try await search(.keyword)
      let hybrid = try await search(.hybrid)
      #expect(keyword.count == 8, "\(keyword.map(\.documentTitle))")
      #expect(Set(keyword.map(\.keywordScore)).count == 8, "no ties: the two rankings may order tied chunks either way")
      #expect(try hits() == 0)
      // After the settle time (a second) a search asks for the postings; then searches rank in memory.
      try await Task.sleep(for: .milliseconds(1100))
      var fromMemory: [Platform_Knowledge_V1_SearchResult] = []
      for _ in 0..<100 {
        fromMemory = try await search(.keyword)
        if try hits() > 0 { break }
        try await Task.sleep(for: .milliseconds(50))
      }
      #expect(try hits() == 1, "served from memory")
      same(fromMemory, keyword, "KEYWORD from memory")
      same(try await search(.hybrid), hybrid, "HYBRID from memory")
      #expect(try hits() == 2)
      // Deleting a document moves the knowledge base to a new generation: the next search ranks
      // in PostgreSQL again, without it.
      let deleted = try #require(keyword.first?.documentID)
      _ = try await client.deleteDocument(.with { $0.id = deleted }, options: options)
      let afterDelete = try await search(.keyword)
      #expect(!afterDelete.contains { $0.documentID == deleted } && afterDelete.count == 8, "\(afterDelete.map(\.documentTitle))")
      #expect(try hits() == 2, "not from the older generation's postings")
    }
  }
  @Test("KEYWORD over several knowledge bases scores as one knowledge base of all their chunks would, in PostgreSQL and in memory")
  func severalKnowledgeBases() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let whole = try await makeBase(client, options, name: "whole", chunkSize: 400)
      let parts = [try await makeBase(client, options, name: "part 1", chunkSize: 400), try await makeBase(client, options, name: "part 2", chunkSize: 400)]
      var texts = SearchTests.corpus.map { ($0.title, $0.text) }
      texts += (0..<10).map { ("archive \($0)", "Archive \($0): " + String(repeating: "files of the server ", count: $0 % 3 + 1) + String(repeating: "notes ", count: $0)) }
      for (index, (title, text)) in texts.enumerated() {
        try await addDocument(client, options, base: whole.id, title: title, content: text)
        try await addDocument(client, options, base: parts[index % 2].id, title: title, content: text)
      }
      func search(_ bases: [String]) async throws -> [(String, Double)] {
        try await client.search(
          .with { $0.knowledgeBaseIds = bases; $0.query = "compressed archive files of the server"; $0.mode = .keyword; $0.topK = 10 },
          options: options
        ).results.map { ($0.documentTitle, $0.keywordScore) }
      }
      func same(_ got: [(String, Double)], _ expected: [(String, Double)], _ what: String) {
        #expect(got.map(\.0) == expected.map(\.0), "\(what)")
        for (a, b) in zip(got, expected) { #expect(abs(a.1 - b.1) < 1e-9, "\(what): \(a) \(b)") }
      }
      let expected = try await search([whole.id])
      #expect(expected.count == 10 && Set(expected.map(\.1)).count == 10)
      same(try await search(parts.map(\.id)), expected, "in PostgreSQL")
      // Once both parts' postings are in memory.
      try await Task.sleep(for: .milliseconds(1100))
      var fromMemory: [(String, Double)] = []
      var served = false
      for _ in 0..<100 where !served {
        fromMemory = try await search(parts.map(\.id))
        served = try Self.hits(service) > 0
        if !served { try await Task.sleep(for: .milliseconds(50)) }
      }
      #expect(served)
      same(fromMemory, expected, "in memory")
    }
  }
}
