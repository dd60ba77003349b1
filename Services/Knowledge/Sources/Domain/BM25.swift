public import Foundation

/// BM25 over postings held in memory (PostingsCache): the ranking ChunkStore.bm25 computes in
/// PostgreSQL with `.rarest` candidates, to the same scores and order (SearchTests compares them).
/// The candidates are the chunks holding any of the rare terms, scored by those; the best `pool`
/// of them get the other terms' shares added (a bisection in each term's postings), and the best
/// `limit` are the ranking.
public enum BM25 {
  /// A query term: its IDF and its postings in each of the searched knowledge bases.
  public struct Term: Sendable {
    public var idf: Double
    public var postings: [TermPostings]

    public init(idf: Double, postings: [TermPostings]) {
      self.idf = idf
      self.postings = postings
    }
  }

  /// One term's share of a chunk's score, as ChunkStore.termScore spells it in SQL (the same
  /// operations in the same order, so the same float8).
  @inline(__always)
  static func share(idf: Double, frequency: Int32, length: Int32, averageLength: Double) -> Double {
    let tf = Double(frequency)
    return idf * tf * (ChunkStore.k1 + 1) / (tf + ChunkStore.k1 * ((1 - ChunkStore.b) + ChunkStore.b * Double(length) / averageLength))
  }

  /// A chunk the rare terms found: its id (TermPostings.key), document, knowledge base (the index
  /// of its postings in each Term) and score so far.
  struct Candidate {
    var key: UInt128
    var document: UUID
    var base: Int
    var score: Double

    /// The ranking's order: the higher score first, then the lower chunk id (as PostgreSQL's
    /// `ORDER BY total DESC, chunk_id`).
    static func ranksBefore(_ left: Candidate, _ right: Candidate) -> Bool {
      left.score != right.score ? left.score > right.score : left.key < right.key
    }
  }

  public static func rank(
    rare: [Term], rest: [Term], averageLength: Double, documents: Set<UUID>?, pool: Int, limit: Int
  ) -> [RankedChunk] {
    var best = Best(capacity: pool)
    // Each knowledge base's rare-term lists merged by chunk id (they are ordered by it): a chunk's
    // shares are summed when the merge reaches it, in the terms' order, without a hash table.
    for base in 0..<(rare.first?.postings.count ?? 0) {
      let lists = rare.map { $0.postings[base] }
      var heads = [Int](repeating: 0, count: lists.count)
      while true {
        var smallest: UInt128?
        for term in lists.indices where heads[term] < lists[term].count {
          let key = lists[term].keys[heads[term]]
          if smallest.map({ key < $0 }) ?? true { smallest = key }
        }
        guard let key = smallest else { break }
        var score = 0.0
        var document: UUID?
        for term in lists.indices where heads[term] < lists[term].count && lists[term].keys[heads[term]] == key {
          let at = heads[term]
          score += Self.share(idf: rare[term].idf, frequency: lists[term].frequencies[at], length: lists[term].lengths[at], averageLength: averageLength)
          document = lists[term].documents[at]
          heads[term] = at + 1
        }
        guard let document, documents?.contains(document) ?? true else { continue }
        best.offer(Candidate(key: key, document: document, base: base, score: score))
      }
    }
    var ranked = best.ranked()
    if !rest.isEmpty {
      for index in ranked.indices {
        var added = 0.0
        for term in rest {
          let list = term.postings[ranked[index].base]
          guard let at = list.index(of: ranked[index].key) else { continue }
          added += Self.share(idf: term.idf, frequency: list.frequencies[at], length: list.lengths[at], averageLength: averageLength)
        }
        ranked[index].score += added
      }
      ranked.sort(by: Candidate.ranksBefore)
    }
    return ranked.prefix(limit).map { RankedChunk(id: TermPostings.id($0.key), documentID: $0.document, score: $0.score) }
  }

  /// The best `capacity` candidates offered: a heap that keeps the worst of them at its root.
  struct Best {
    let capacity: Int
    private var heap: [Candidate] = []

    init(capacity: Int) {
      self.capacity = max(0, capacity)
      self.heap.reserveCapacity(self.capacity)
    }

    mutating func offer(_ candidate: Candidate) {
      if self.heap.count < self.capacity {
        self.heap.append(candidate)
        var child = self.heap.count - 1
        while child > 0 {
          let parent = (child - 1) / 2
          guard Candidate.ranksBefore(self.heap[parent], self.heap[child]) else { break }
          self.heap.swapAt(parent, child)
          child = parent
        }
      } else if self.capacity > 0, Candidate.ranksBefore(candidate, self.heap[0]) {
        self.heap[0] = candidate
        var parent = 0
        while true {
          var worst = parent
          let left = 2 * parent + 1
          if left < self.heap.count && Candidate.ranksBefore(self.heap[worst], self.heap[left]) { worst = left }
          if left + 1 < self.heap.count && Candidate.ranksBefore(self.heap[worst], self.heap[left + 1]) { worst = left + 1 }
          if worst == parent { break }
          self.heap.swapAt(parent, worst)
          parent = worst
        }
      }
    }

    /// The candidates kept, best first.
    func ranked() -> [Candidate] { self.heap.sorted(by: Candidate.ranksBefore) }
  }
}
