public import Foundation
public import Logging
internal import PlatformCore

/// Search over the caller's knowledge bases: VECTOR (cosine over the HNSW indexes), KEYWORD
/// (BM25 over the chunks' tsvectors) and HYBRID (the two fused by reciprocal rank or by weighted
/// normalised scores). Every result says how its score was made.
public struct Search: Sendable {
  let chunks: ChunkStore
  let bases: KnowledgeBases
  let providers: EmbeddingProviders
  /// Postings KEYWORD ranks in memory when they are held (BM25); the rest it ranks in PostgreSQL.
  let postings: PostingsCache
  let logger: Logger

  public init(chunks: ChunkStore, bases: KnowledgeBases, providers: EmbeddingProviders, postings: PostingsCache, logger: Logger) {
    self.chunks = chunks
    self.bases = bases
    self.providers = providers
    self.postings = postings
    self.logger = logger
  }

  public enum Mode: Sendable, Equatable { case vector, keyword, hybrid }
  public enum Fusion: Sendable, Equatable { case rrf, weighted }

  public struct Query: Sendable {
    public var knowledgeBaseIDs: [UUID]
    public var text: String
    public var mode: Mode = .hybrid
    public var topK = 5
    public var filter = ChunkFilter()
    public var minScore = 0.0
    /// WEIGHTED fusion's weight of the vector ranking.
    public var alpha = 0.7
    public var fusion: Fusion = .rrf
    public var rrfK = 60
    public var neighbors = 0
    public var distinctDocuments = false

    public init(knowledgeBaseIDs: [UUID], text: String) {
      self.knowledgeBaseIDs = knowledgeBaseIDs
      self.text = text
    }
  }

  public struct Hit: Sendable {
    public var chunk: StoredChunk
    public var documentTitle: String
    public var score: Double
    public var vectorScore: Double?
    public var keywordScore: Double?
    public var vectorRank: Int?
    public var keywordRank: Int?
    /// HYBRID: how much of the query the result's text holds (termMatch).
    public var termMatch: Double?
    public var neighbors: [StoredChunk]
  }

  public struct Outcome: Sendable {
    public var hits: [Hit]
    /// The mode used: HYBRID falls back to KEYWORD when the embedding provider is down.
    public var mode: Mode
    public var embeddingModel: String
    public var fusion: Fusion?
    public var embeddingTime: Duration
  }

  /// Candidates each ranking contributes to HYBRID: 3 × top_k, at least this many. The fused
  /// best k come from the rankings' heads; what lies deeper adds work, not results: with MiniLM
  /// on the retrieval set (distinct_documents, top 10) windows of 30, 50 and 100 documents gave
  /// the same R@10 and MRR@10 to ±0.002 in both fusions, and at 104k chunks a window of 30
  /// instead of 100 cost PostgreSQL 6.0–6.5 instead of 8.7–8.9 ms of CPU a search (HNSW starts
  /// with 60 candidates instead of 100, BM25 completes 100 instead of 300).
  static let hybridCandidates = 30
  /// Documents a single ranking rescores with distinct_documents, at least.
  static let distinctCandidates = 20

  /// The results (documents, with distinct_documents) each ranking should find.
  static func documentsWanted(_ query: Query) -> Int {
    if query.mode == .hybrid { return max(Self.hybridCandidates, query.topK * 3) }
    return query.distinctDocuments ? max(Self.distinctCandidates, query.topK) : query.topK
  }
  /// Chunks read per result wanted with `distinct_documents`.
  static let chunksPerDocument = 3
  /// KEYWORD's candidates come from the postings of the query's rarest terms until they add up
  /// to this many (BM25's weight is in the rare terms: a chunk with only common ones cannot rank
  /// high); the best `candidatePool` of them (or 3 × the results wanted) get the common terms'
  /// share added. This bounds the work per query whatever the corpus size. Adding the common
  /// terms is most of a search's PostgreSQL time (an index lookup per candidate and term): a top
  /// 10 of 100 candidates instead of 300 costs 2.98 instead of 3.81 ms of PostgreSQL CPU at 104k
  /// chunks, and the recall set's KEYWORD figures (180 candidates instead of 300 for its 20
  /// documents) did not change in the third decimal.
  static let rareTermBudget = 5000
  static let candidatePool = 100
  /// The most chunks a websearch-syntax query ranks.
  static let operatorCandidates = 2000

  public func search(_ query: Query, owner: UUID) async throws -> Outcome {
    let bases = try await self.bases.searched(query.knowledgeBaseIDs, owner: owner, keywordsOf: query.mode == .vector ? nil : query.text)
    // One result per document needs more chunks: a document may hold several of the best.
    let perResult = query.distinctDocuments ? Self.chunksPerDocument : 1
    let candidates = Self.documentsWanted(query) * perResult
    let models = Dictionary(grouping: bases, by: \.embeddingModel)
    // A filter narrows the search to the documents it lets through, looked up once.
    let documents = try await self.chunks.documents(matching: query.filter, knowledgeBases: bases.map(\.id))
    if documents?.isEmpty == true {
      return Outcome(hits: [], mode: query.mode, embeddingModel: "", fusion: query.mode == .hybrid ? query.fusion : nil, embeddingTime: .zero)
    }
    // The two rankings at once.
    async let vectorRanking = query.mode == .keyword
      ? VectorRanking(ranked: [], time: .zero, unavailable: nil)
      : self.vectorRanking(query, models: models, documents: documents, limit: candidates)
    var keyword: [RankedChunk] = []
    var keywordWeights: [KeywordWeights] = []
    if query.mode != .vector {
      for (language, group) in Dictionary(grouping: bases, by: \.language).sorted(by: { $0.key < $1.key }) {
        let statistics = ChunkStore.KeywordStatistics.merged(group.compactMap(\.keywords))
        if let weights = Self.keywordWeights(statistics, knowledgeBases: group.map(\.id)) {
          keywordWeights.append(weights)
        }
      }
      keyword = try await self.filled(query, limit: candidates) { limit in
        var ranked: [RankedChunk] = []
        for weights in keywordWeights {
          ranked += try await self.keywordRanking(query, weights: weights, documents: documents, limit: limit)
        }
        return ranked.sorted { $0.score > $1.score }
      }
    }
    let ranking = try await vectorRanking
    var mode = query.mode
    if let why = ranking.unavailable {
      guard mode == .hybrid else { throw KnowledgeError.unavailable("The embedding provider is unavailable: \(why)") }
      self.logger.warning("Hybrid search falls back to keyword search", metadata: ["error": "\(why)"])
      mode = .keyword
    }
    var vector = ranking.ranked
    if query.distinctDocuments {
      (vector, keyword) = try await self.documentRankings(
        vector: vector, keyword: keyword, mode: mode, vectors: ranking.vectors, keywordWeights: keywordWeights)
    }
    var fused = Self.fuse(vector: vector, keyword: keyword, mode: mode, query: query)
    if mode == .hybrid {
      fused = try await self.rescored(fused, depth: max(Self.termMatchDepth, query.topK), distinctDocuments: query.distinctDocuments, weights: keywordWeights)
    }
    fused = Array(fused.filter { $0.score >= query.minScore }.prefix(query.topK))
    // The chunks themselves, read once for the results.
    let chunks = try await self.chunks.chunks(fused.map(\.id))
    var hits: [Hit] = fused.compactMap { result in
      guard let (chunk, title) = chunks[result.id] else { return nil }  // deleted meanwhile
      return Hit(
        chunk: chunk, documentTitle: title, score: result.score, vectorScore: result.vectorScore, keywordScore: result.keywordScore,
        vectorRank: result.vectorRank, keywordRank: result.keywordRank, termMatch: result.termMatch, neighbors: [])
    }
    if query.neighbors > 0 {
      let around = try await self.chunks.neighbors(of: hits.map { ($0.chunk.documentID, $0.chunk.index) }, radius: query.neighbors)
      for index in hits.indices {
        let hit = hits[index].chunk
        hits[index].neighbors = (around[hit.documentID] ?? []).filter { $0.id != hit.id && abs($0.index - hit.index) <= query.neighbors }
      }
    }
    let usedModels = models.keys.sorted().joined(separator: ",")
    return Outcome(
      hits: hits, mode: mode, embeddingModel: mode == .keyword ? "" : usedModels, fusion: mode == .hybrid ? query.fusion : nil,
      embeddingTime: ranking.time)
  }

  struct VectorRanking: Sendable {
    var ranked: [RankedChunk]
    /// The query's embedding for each group of knowledge bases of one model.
    var vectors: [(vector: [Float], knowledgeBases: [UUID])] = []
    var time: Duration
    /// Why the embedding provider could not embed the query.
    var unavailable: String?
  }

  /// The chunks nearest the query, best first, for each embedding model of the knowledge bases
  /// (the query embedded once per model).
  func vectorRanking(_ query: Query, models: [String: [SearchedBase]], documents: [UUID]?, limit: Int) async throws -> VectorRanking {
    var vectors: [(vector: [Float], knowledgeBases: [UUID])] = []
    var time = Duration.zero
    do {
      for (model, group) in models.sorted(by: { $0.key < $1.key }) {
        guard let embedder = self.providers.embedder(for: model) else {
          throw KnowledgeError.failedPrecondition("The embedding model \(model) is not configured on this server")
        }
        let clock = ContinuousClock.now
        let embedded = try await embedder.embed([query.text])
        time += ContinuousClock.now - clock
        guard let first = embedded.first, first.count == embedder.model.dimension else {
          throw EmbeddingError.unavailable("the provider returned no vector of the model's dimension")
        }
        if !first.allSatisfy({ $0 == 0 }) { vectors.append((first, group.map(\.id))) }
      }
    } catch EmbeddingError.unavailable(let why) {
      return VectorRanking(ranked: [], time: time, unavailable: why)
    }
    let ranked = try await self.filled(query, limit: limit) { limit in
      var ranked: [RankedChunk] = []
      for (vector, knowledgeBases) in vectors {
        ranked += try await self.chunks.nearest(vector, knowledgeBases: knowledgeBases, documents: documents, limit: limit)
      }
      return ranked.sorted { $0.score > $1.score }
    }
    return VectorRanking(ranked: ranked, vectors: vectors, time: time, unavailable: nil)
  }

  /// The most chunks a ranking reads to find enough distinct documents.
  static let maximumCandidates = 4000

  /// `rank(limit)`, and with `distinct_documents` again with four times the limit (up to
  /// maximumCandidates) while its chunks come from fewer documents than the search needs and
  /// more chunks exist: a long document's chunks can fill a ranking on their own.
  func filled(_ query: Query, limit: Int, rank: (Int) async throws -> [RankedChunk]) async throws -> [RankedChunk] {
    let documentsWanted = Self.documentsWanted(query)
    var limit = limit
    while true {
      let ranked = try await rank(limit)
      if !query.distinctDocuments || ranked.count < limit || limit >= Self.maximumCandidates
        || Set(ranked.map(\.documentID)).count >= documentsWanted {
        return ranked
      }
      limit = min(limit * 4, Self.maximumCandidates)
    }
  }

  /// BM25 over the chunks that hold any of the query's terms, so that a long natural-language
  /// question matches although no chunk holds all its words, and a chunk holding more of them,
  /// or rarer ones, ranks higher. A query in websearch syntax (a quoted phrase, `-word`, `or`) is
  /// taken as websearch_to_tsquery reads it: only chunks matching it are ranked.
  ///
  /// When the terms' postings are held in memory (PostingsCache, at the generations the weights
  /// were read at) the ranking is computed here, else by PostgreSQL, which is asked to send them
  /// for the next search.
  func keywordRanking(_ query: Query, weights: KeywordWeights, documents: [UUID]?, limit: Int) async throws -> [RankedChunk] {
    if Self.usesOperators(query.text) {
      return try await self.chunks.bm25(
        .matching(tsquery: weights.websearch, cap: Self.operatorCandidates), rest: weights.terms, averageLength: weights.averageLength,
        knowledgeBases: weights.knowledgeBases, documents: documents, limit: limit)
    }
    let rare = Array(weights.terms.prefix(weights.rare))
    let rest = Array(weights.terms.dropFirst(weights.rare))
    let pool = max(Self.candidatePool, limit * 3)
    if let held = self.heldPostings(weights) {
      func terms(_ weighted: ArraySlice<(term: String, idf: Double)>, from start: Int) -> [BM25.Term] {
        weighted.enumerated().map { offset, term in BM25.Term(idf: term.idf, postings: held.map { $0[start + offset] }) }
      }
      return BM25.rank(
        rare: terms(rare[...], from: 0), rest: terms(rest[...], from: rare.count), averageLength: weights.averageLength,
        documents: documents.map(Set.init), pool: pool, limit: limit)
    }
    return try await self.chunks.bm25(
      .rarest(rare, pool: pool), rest: rest, averageLength: weights.averageLength,
      knowledgeBases: weights.knowledgeBases, documents: documents, limit: limit)
  }

  /// The postings of the weights' terms (in their order) in each of their knowledge bases (in
  /// theirs), when the cache holds them all; otherwise nil, and the missing ones are asked for.
  func heldPostings(_ weights: KeywordWeights) -> [[TermPostings]]? {
    let terms = weights.terms.map(\.term)
    var held: [[TermPostings]] = []
    var complete = true
    for base in weights.knowledgeBases {
      guard let generation = weights.generations[base] else { return nil }
      if let postings = self.postings.postings(terms, knowledgeBase: base, generation: generation) {
        held.append(postings)
      } else {
        complete = false
        self.postings.wanted(terms, knowledgeBase: base, generation: generation) { [chunks] terms, base in
          try await chunks.postings(terms, knowledgeBase: base)
        }
      }
    }
    return complete ? held : nil
  }

  /// What BM25 weighs a query's terms with in one group of knowledge bases of one language (read
  /// once per search, however often the ranking reads further).
  struct KeywordWeights: Sendable {
    var knowledgeBases: [UUID]
    /// The query as websearch_to_tsquery reads it.
    var websearch: String
    /// The query's terms in order, with their positions (KeywordStatistics.sequence).
    var sequence: [(term: String, position: Int)]
    /// The query's terms that the knowledge bases hold, with their IDF, rarest first.
    var terms: [(term: String, idf: Double)]
    /// How many of `terms`, the rarest, find the candidates: their postings add up to at most
    /// rareTermBudget (at least one term).
    var rare: Int
    var averageLength: Double
    /// Each knowledge base's keyword generation when the statistics were read.
    var generations: [UUID: Int64]
  }

  /// The weights of the query's terms in the knowledge bases of one language, from their keyword
  /// statistics; nil when it has none that they hold.
  static func keywordWeights(_ statistics: ChunkStore.KeywordStatistics, knowledgeBases: [UUID]) -> KeywordWeights? {
    guard let websearch = statistics.websearch, statistics.chunks > 0 else { return nil }
    let total = Double(statistics.chunks)
    let present = statistics.terms.filter { $0.chunks > 0 }.sorted { $0.chunks < $1.chunks }
    guard !present.isEmpty else { return nil }
    var budget = 0
    var rare = 0
    while rare < present.count && (rare == 0 || budget + present[rare].chunks <= Self.rareTermBudget) {
      budget += present[rare].chunks
      rare += 1
    }
    return KeywordWeights(
      knowledgeBases: knowledgeBases, websearch: websearch, sequence: statistics.sequence,
      // Lucene's IDF: never negative, so a term in most chunks still counts a little.
      terms: present.map { (term: $0.term, idf: log(1 + (total - Double($0.chunks) + 0.5) / (Double($0.chunks) + 0.5))) },
      rare: rare, averageLength: max(1, Double(statistics.totalLength) / total), generations: statistics.generations)
  }

  /// distinct_documents ranks documents. A document's score in each ranking is the mean of its
  /// best chunk's and its first chunk's: a document's opening says what the whole is about (a
  /// manual page's summary, an abstract, a README's first paragraph), which one chunk elsewhere
  /// that happens to match does not. On the retrieval corpus this lifted MiniLM's R@10 from
  /// 0.890 to 0.912 and BM25's from 0.852 to 0.890, scoring every document exactly.
  ///
  /// The documents are those the chunk rankings found (both rankings' for HYBRID); a document one
  /// ranking missed gets that ranking's score from its first chunk alone. Each ranking comes back
  /// one chunk per document (its best, standing for it), ordered by the documents' scores.
  func documentRankings(
    vector: [RankedChunk], keyword: [RankedChunk], mode: Mode, vectors: [(vector: [Float], knowledgeBases: [UUID])],
    keywordWeights: [KeywordWeights]
  ) async throws -> (vector: [RankedChunk], keyword: [RankedChunk]) {
    let bestVector = Self.bestPerDocument(vector)
    let bestKeyword = Self.bestPerDocument(keyword)
    var chunkOf: [UUID: UUID] = [:]
    var documents: [UUID] = []
    for ranked in (mode == .keyword ? [] : bestVector) + (mode == .vector ? [] : bestKeyword) where chunkOf[ranked.documentID] == nil {
      chunkOf[ranked.documentID] = ranked.id
      documents.append(ranked.documentID)
    }
    // The documents by `score` (nil: left out), ties in the order found.
    func ranked(_ score: (UUID) -> Double?) -> [RankedChunk] {
      var scored: [(order: Int, chunk: RankedChunk)] = []
      for (order, document) in documents.enumerated() {
        guard let value = score(document), let chunk = chunkOf[document] else { continue }
        scored.append((order, RankedChunk(id: chunk, documentID: document, score: value)))
      }
      scored.sort { left, right in left.chunk.score != right.chunk.score ? left.chunk.score > right.chunk.score : left.order < right.order }
      return scored.map(\.chunk)
    }
    func bestScores(_ best: [RankedChunk]) -> [UUID: Double] {
      Dictionary(best.map { ($0.documentID, $0.score) }, uniquingKeysWith: { first, _ in first })
    }
    var vectorDocuments: [RankedChunk] = []
    if mode != .keyword {
      var leads: [UUID: Double] = [:]
      for (query, knowledgeBases) in vectors {
        leads.merge(try await self.chunks.leadSimilarities(query, documents: documents, knowledgeBases: knowledgeBases)) { max($0, $1) }
      }
      let best = bestScores(bestVector)
      // A document whose first chunk was not compared (another model's) stands by its best chunk.
      vectorDocuments = ranked { document in
        guard let either = best[document] ?? leads[document] else { return nil }
        return ((best[document] ?? either) + (leads[document] ?? either)) / 2
      }
    }
    var keywordDocuments: [RankedChunk] = []
    if mode != .vector {
      var leads: [UUID: Double] = [:]
      for weights in keywordWeights {
        leads.merge(
          try await self.chunks.leadBM25(weights.terms, averageLength: weights.averageLength, documents: documents, knowledgeBases: weights.knowledgeBases)
        ) { max($0, $1) }
      }
      let best = bestScores(bestKeyword)
      // A first chunk without any of the terms scores 0; a document without any is left out.
      keywordDocuments = ranked { document in
        let lead = leads[document] ?? 0
        let score = ((best[document] ?? lead) + lead) / 2
        return score > 0 ? score : nil
      }
    }
    return (vectorDocuments, keywordDocuments)
  }

  /// Whether the query uses websearch syntax: a double quote, a word with a leading `-`, or `or`
  /// between words.
  static func usesOperators(_ text: String) -> Bool {
    if text.contains("\"") { return true }
    let words = text.split(whereSeparator: \.isWhitespace)
    return words.contains { $0.count > 1 && $0.hasPrefix("-") } || words.dropFirst().dropLast().contains { $0.lowercased() == "or" }
  }

  /// Each document's best chunk, in ranking order.
  static func bestPerDocument(_ ranking: [RankedChunk]) -> [RankedChunk] {
    var seen = Set<UUID>()
    return ranking.filter { seen.insert($0.documentID).inserted }
  }

  /// A chunk of the fused ranking with the components of its score.
  struct Fused: Sendable, Equatable {
    var id: UUID
    var documentID: UUID
    var score = 0.0
    var vectorScore: Double?
    var keywordScore: Double?
    var vectorRank: Int?
    var keywordRank: Int?
    var termMatch: Double?
  }

  /// The two rankings as one, best first, each result with its components.
  static func fuse(vector: [RankedChunk], keyword: [RankedChunk], mode: Mode, query: Query) -> [Fused] {
    // Distinct documents fuse by document: a document's best chunk in either ranking stands for it.
    let key: (RankedChunk) -> UUID = query.distinctDocuments ? { $0.documentID } : { $0.id }
    var results: [UUID: Fused] = [:]
    var order: [UUID] = []
    for (rank, ranked) in vector.enumerated() {
      let id = key(ranked)
      if results[id] == nil { order.append(id) }
      results[id, default: Fused(id: ranked.id, documentID: ranked.documentID)].vectorScore = ranked.score
      results[id]?.vectorRank = rank + 1
    }
    for (rank, ranked) in keyword.enumerated() {
      let id = key(ranked)
      if results[id] == nil { order.append(id) }
      results[id, default: Fused(id: ranked.id, documentID: ranked.documentID)].keywordScore = ranked.score
      results[id]?.keywordRank = rank + 1
    }
    let bestKeyword = keyword.first?.score ?? 0
    let k = Double(query.rrfK)
    let normaliseVector = Self.minMax(vector.map(\.score))
    let normaliseKeyword = Self.minMax(keyword.map(\.score))
    func score(_ result: Fused) -> Double {
      switch (mode, query.fusion) {
      case (.vector, _):
        return max(0, min(1, result.vectorScore ?? 0))
      case (.keyword, _):
        return bestKeyword > 0 ? (result.keywordScore ?? 0) / bestKeyword : 0
      case (.hybrid, .rrf):
        let parts = [result.vectorRank, result.keywordRank].compactMap { $0 }.map { 1 / (k + Double($0)) }
        return parts.reduce(0, +) / (2 / (k + 1))
      case (.hybrid, .weighted):
        return query.alpha * (result.vectorScore.map(normaliseVector) ?? 0)
          + (1 - query.alpha) * (result.keywordScore.map(normaliseKeyword) ?? 0)
      }
    }
    return order.compactMap { id in results[id].map { result in
      var result = result
      result.score = score(result)
      return result
    } }.enumerated().sorted { left, right in
      left.element.score != right.element.score ? left.element.score > right.element.score : left.offset < right.offset
    }.map(\.element)
  }

  /// How many of HYBRID's best results are re-scored by how much of the query their text holds.
  static let termMatchDepth = 20
  /// The weight of that match beside the fused score (which is 0–1, as the match is).
  static let termMatchWeight = 0.3
  /// The chunks of a document's opening that term match reads with distinct_documents: the
  /// chunker ends a chunk at a heading, so the first may hold no more than a title or a synopsis.
  static let openingChunks = 2

  /// HYBRID's best `depth` results re-scored: (fused + termMatchWeight · termMatch) / (1 +
  /// termMatchWeight), the rest divided alike (their match not computed). The fused score weighs
  /// each word of the query alone (BM25, as a bag of words) or the query's gist (the embedding);
  /// neither says whether a text holds *all* of the query, its words next to each other as the
  /// query has them. The text is the result's own chunk, or with distinct_documents the
  /// document's opening (openingChunks): it says what the whole is about.
  func rescored(_ fused: [Fused], depth: Int, distinctDocuments: Bool, weights: [KeywordWeights]) async throws -> [Fused] {
    let top = fused.prefix(depth)
    let terms = Array(Set(weights.flatMap { $0.sequence.map(\.term) }))
    let found = try await self.chunks.termPositions(
      terms, in: distinctDocuments ? .openings(of: top.map(\.documentID), chunks: Self.openingChunks) : .chunks(top.map(\.id)),
      knowledgeBases: weights.flatMap(\.knowledgeBases))
    var match: [UUID: Double] = [:]
    for (id, text) in found {
      guard let sequence = weights.first(where: { $0.knowledgeBases.contains(text.knowledgeBaseID) })?.sequence else { continue }
      match[id] = Self.termMatch(sequence, in: text.positions)
    }
    let scale = 1 + Self.termMatchWeight
    var rescored = fused.enumerated().map { offset, result in
      var result = result
      if offset < depth {
        result.termMatch = match[distinctDocuments ? result.documentID : result.id] ?? 0
      }
      result.score = (result.score + Self.termMatchWeight * (result.termMatch ?? 0)) / scale
      return (offset, result)
    }
    rescored.sort { left, right in left.1.score != right.1.score ? left.1.score > right.1.score : left.0 < right.0 }
    return rescored.map(\.1)
  }

  /// How much of a query a text holds, 0–1: the mean of the share of the query's distinct terms
  /// that it holds (coordination) and the share of the query's neighbouring pairs of terms that
  /// stand in it in the same order, at most two words further apart than in the query
  /// (proximity; a query of one term has coordination alone). `sequence` is the query's terms by
  /// position; `positions` where each term stands in the text.
  static func termMatch(_ sequence: [(term: String, position: Int)], in positions: [String: [Int]]) -> Double {
    let distinct = Set(sequence.map(\.term))
    guard !distinct.isEmpty else { return 0 }
    let coordination = Double(distinct.filter { positions[$0] != nil }.count) / Double(distinct.count)
    let pairs = zip(sequence, sequence.dropFirst()).filter { $0.position < $1.position }
    guard !pairs.isEmpty else { return coordination }
    var sorted: [String: [Int]] = [:]
    for term in distinct { sorted[term] = positions[term]?.sorted() }
    // Each start is looked up by bisection: a query's terms may stand a thousand words apart (stop
    // words between them), so walking the window would cost that much per position.
    let near = pairs.filter { first, second in
      guard let before = sorted[first.term], let after = sorted[second.term] else { return false }
      let reach = second.position - first.position + 2
      return before.contains { start in
        var low = 0
        var high = after.count
        while low < high {
          let middle = (low + high) / 2
          if after[middle] <= start { low = middle + 1 } else { high = middle }
        }
        return low < after.count && after[low] - start <= reach
      }
    }.count
    return (coordination + Double(near) / Double(pairs.count)) / 2
  }

  /// Min-max normalisation over `scores` (all 1 when they are equal).
  static func minMax(_ scores: [Double]) -> @Sendable (Double) -> Double {
    guard let low = scores.min(), let high = scores.max(), high > low else { return { _ in 1 } }
    return { ($0 - low) / (high - low) }
  }
}
