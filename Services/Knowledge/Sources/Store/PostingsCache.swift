public import CoreMetrics
public import Foundation
internal import Synchronization

/// One term's postings in one knowledge base: the chunks holding it, ordered by chunk id (as
/// PostgreSQL orders uuids: by their bytes; `keys` are the ids as 128-bit numbers of that order),
/// with each chunk's document, the term's frequency in it and its keyword length.
public struct TermPostings: Sendable, Equatable {
  public private(set) var keys: [UInt128] = []
  public private(set) var documents: [UUID] = []
  public private(set) var frequencies: [Int32] = []
  public private(set) var lengths: [Int32] = []

  public init() {}

  /// Postings from parallel lists ordered by chunk id; nil when their lengths differ.
  public init?(chunks: [UUID], documents: [UUID], frequencies: [Int32], lengths: [Int32]) {
    guard chunks.count == documents.count, chunks.count == frequencies.count, chunks.count == lengths.count else { return nil }
    self.keys = chunks.map(Self.key)
    (self.documents, self.frequencies, self.lengths) = (documents, frequencies, lengths)
  }

  public mutating func append(chunk: UUID, document: UUID, frequency: Int32, length: Int32) {
    self.keys.append(Self.key(chunk))
    self.documents.append(document)
    self.frequencies.append(frequency)
    self.lengths.append(length)
  }

  public var count: Int { self.keys.count }

  /// The memory the lists take (what the cache's budget counts).
  var bytes: Int { self.keys.count * (MemoryLayout<UInt128>.stride + MemoryLayout<UUID>.stride + 2 * MemoryLayout<Int32>.stride) + 4 * 32 }

  /// Where the chunk with `key` is, by bisection.
  public func index(of key: UInt128) -> Int? {
    var low = 0
    var high = self.keys.count
    while low < high {
      let middle = (low + high) / 2
      if self.keys[middle] < key { low = middle + 1 } else { high = middle }
    }
    return low < self.keys.count && self.keys[low] == key ? low : nil
  }

  /// A uuid as the number its 16 bytes make, most significant first: ordered as PostgreSQL orders uuids.
  public static func key(_ id: UUID) -> UInt128 {
    withUnsafeBytes(of: id.uuid) { bytes in bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) } }
  }

  public static func id(_ key: UInt128) -> UUID {
    var bytes = (UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0),
                 UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0))
    withUnsafeMutableBytes(of: &bytes) { buffer in
      for index in 0..<16 { buffer[index] = UInt8(truncatingIfNeeded: key >> (8 * (15 - index))) }
    }
    return UUID(uuid: bytes)
  }
}

/// Postings read from PostgreSQL, kept in memory by (knowledge base, keyword generation, term)
/// within a byte budget, least recently used first out.
///
/// A knowledge base's keyword generation changes in the transaction that adds or removes any of
/// its chunks (migration 0004), and a search reads it in the same statement as the keyword
/// statistics: postings cached for that generation are exactly what PostgreSQL holds for the
/// search's snapshot, and a document deleted or re-indexed is never served from older postings.
///
/// A search never waits for the cache: on a miss it ranks in PostgreSQL and queues the missing
/// terms (`wanted`) for one background reader, but only once the knowledge base's generation has
/// stood for `settle` (a knowledge base being filled changes generation with every document;
/// reading its postings again each time would only add work).
public final class PostingsCache: Sendable {
  struct Key: Hashable, Sendable {
    var knowledgeBase: UUID
    var generation: Int64
    var term: String
  }

  /// The most bytes the postings take (0: nothing is cached).
  public let budget: Int
  let settle: Duration
  private let state = Mutex(State())
  private let hitMetric: Counter
  private let missMetric: Counter
  private let bytesMetric: Gauge

  struct State {
    var entries: [Key: (postings: TermPostings, used: UInt64)] = [:]
    var bytes = 0
    var tick: UInt64 = 0
    /// The newest generation seen of each knowledge base, and since when.
    var generations: [UUID: (generation: Int64, since: ContinuousClock.Instant)] = [:]
    /// The terms searches missed, by knowledge base, to be read at that generation.
    var pending: [UUID: Pending] = [:]
    /// The terms being read.
    var inFlight: Set<Key> = []
    /// Terms read whose postings were over a quarter of the budget: not kept, not read again at
    /// that generation.
    var oversized: Set<Key> = []
    /// Whether the background reader runs.
    var reading = false
    var hits = 0
    var misses = 0
  }

  /// - Parameter metrics: counts `cache_lookups_total{cache="keyword_postings",result}` (hit: a
  ///   search ranked in memory, miss: in PostgreSQL) and sets `cache_bytes{cache}`.
  public init(budget: Int, settle: Duration = .seconds(1), metrics: any MetricsFactory = MetricsSystem.factory) {
    self.budget = max(0, budget)
    self.settle = settle
    let cache = ("cache", "keyword_postings")
    self.hitMetric = Counter(label: "cache_lookups_total", dimensions: [cache, ("result", "hit")], factory: metrics)
    self.missMetric = Counter(label: "cache_lookups_total", dimensions: [cache, ("result", "miss")], factory: metrics)
    self.bytesMetric = Gauge(label: "cache_bytes", dimensions: [cache], factory: metrics)
  }

  /// The postings of each of `terms` in `knowledgeBase` at `generation`, in order, or nil when any
  /// of them is not cached.
  public func postings(_ terms: [String], knowledgeBase: UUID, generation: Int64) -> [TermPostings]? {
    guard self.budget > 0 else { return nil }
    let (found, dropped): ([TermPostings]?, Int?) = self.state.withLock { state in
      let dropped = state.saw(knowledgeBase, generation: generation) ? state.bytes : nil
      var found: [TermPostings] = []
      found.reserveCapacity(terms.count)
      for term in terms {
        let key = Key(knowledgeBase: knowledgeBase, generation: generation, term: term)
        guard let entry = state.entries[key] else {
          state.misses += 1
          return (nil, dropped)
        }
        found.append(entry.postings)
      }
      state.tick += 1
      for term in terms { state.entries[Key(knowledgeBase: knowledgeBase, generation: generation, term: term)]?.used = state.tick }
      state.hits += 1
      return (found, dropped)
    }
    if let dropped { self.bytesMetric.record(dropped) }
    (found == nil ? self.missMetric : self.hitMetric).increment()
    return found
  }

  /// Reads postings: those of the terms in the knowledge base, with the generation they were read
  /// at (nil: the knowledge base is gone).
  public typealias Reader = @Sendable (_ terms: [String], _ knowledgeBase: UUID) async throws -> (generation: Int64, postings: [String: TermPostings])?

  struct Pending {
    var generation: Int64
    /// In the order asked for, and as a set.
    var terms: [String] = []
    var queued: Set<String> = []
    var read: Reader
  }

  /// The most terms waiting to be read for one knowledge base.
  static let pendingLimit = 4096
  /// Terms one read asks for (a statement's size: a common term has tens of thousands of postings).
  static let termsPerRead = 32

  /// Queues the missing of `terms` of `knowledgeBase` at `generation` to be read by `read` in the
  /// background, unless the generation is not the newest seen or has not stood for `settle`. One
  /// reader works through the queue, `termsPerRead` terms at a time; what it reads is kept when
  /// its generation is still the newest.
  public func wanted(_ terms: [String], knowledgeBase: UUID, generation: Int64, read: @escaping Reader) {
    guard self.budget > 0 else { return }
    let start: Bool = self.state.withLock { state in
      state.saw(knowledgeBase, generation: generation)
      guard let seen = state.generations[knowledgeBase], seen.generation == generation, ContinuousClock.now - seen.since >= self.settle
      else { return false }
      var queue = state.pending[knowledgeBase] ?? Pending(generation: generation, read: read)
      for term in terms where queue.terms.count < Self.pendingLimit && !queue.queued.contains(term) {
        let key = Key(knowledgeBase: knowledgeBase, generation: generation, term: term)
        guard state.entries[key] == nil, !state.inFlight.contains(key), !state.oversized.contains(key) else { continue }
        queue.terms.append(term)
        queue.queued.insert(term)
      }
      guard !queue.terms.isEmpty else { return false }
      queue.read = read
      state.pending[knowledgeBase] = queue
      if state.reading { return false }
      state.reading = true
      return true
    }
    if start { Task { await self.readPending() } }
  }

  /// Reads the queued terms until none are left.
  private func readPending() async {
    while true {
      let next: (knowledgeBase: UUID, terms: [String], read: Reader)? = self.state.withLock { state in
        state.inFlight.removeAll()
        guard let (knowledgeBase, queue) = state.pending.first else {
          state.reading = false
          return nil
        }
        let batch = Array(queue.terms.prefix(Self.termsPerRead))
        if batch.count == queue.terms.count {
          state.pending[knowledgeBase] = nil
        } else {
          state.pending[knowledgeBase]?.terms.removeFirst(batch.count)
          state.pending[knowledgeBase]?.queued.subtract(batch)
        }
        for term in batch { state.inFlight.insert(Key(knowledgeBase: knowledgeBase, generation: queue.generation, term: term)) }
        return (knowledgeBase, batch, queue.read)
      }
      guard let (knowledgeBase, terms, read) = next else { return }
      if let (generation, postings) = try? await read(terms, knowledgeBase) {
        self.keep(postings, knowledgeBase: knowledgeBase, generation: generation)
      }
    }
  }

  func keep(_ postings: [String: TermPostings], knowledgeBase: UUID, generation: Int64) {
    let bytes = self.state.withLock { state -> Int in
      state.saw(knowledgeBase, generation: generation)
      guard state.generations[knowledgeBase]?.generation == generation else { return state.bytes }
      state.tick += 1
      for (term, list) in postings {
        let key = Key(knowledgeBase: knowledgeBase, generation: generation, term: term)
        guard list.bytes <= self.budget / 4 else {
          state.oversized.insert(key)
          continue
        }
        if let old = state.entries[key] { state.bytes -= old.postings.bytes }
        state.entries[key] = (list, state.tick)
        state.bytes += list.bytes
      }
      state.evict(to: self.budget)
      return state.bytes
    }
    self.bytesMetric.record(bytes)
  }

  /// Bytes held, entries, searches served from the cache and searches that were not.
  public var statistics: (bytes: Int, entries: Int, hits: Int, misses: Int) {
    self.state.withLock { ($0.bytes, $0.entries.count, $0.hits, $0.misses) }
  }

  /// Whether a background read is under way.
  public var reading: Bool { self.state.withLock(\.reading) }
}

extension PostingsCache.State {
  /// Notes `generation` of `knowledgeBase`; a newer one than known drops the older one's postings.
  /// - Returns: whether it dropped any.
  @discardableResult
  mutating func saw(_ knowledgeBase: UUID, generation: Int64) -> Bool {
    if let seen = self.generations[knowledgeBase], seen.generation >= generation { return false }
    let hadOlder = self.generations[knowledgeBase] != nil
    self.generations[knowledgeBase] = (generation, ContinuousClock.now)
    self.pending[knowledgeBase] = nil
    guard hadOlder else { return false }
    self.oversized = self.oversized.filter { $0.knowledgeBase != knowledgeBase }
    let before = self.entries.count
    for (key, entry) in self.entries where key.knowledgeBase == knowledgeBase && key.generation < generation {
      self.entries[key] = nil
      self.bytes -= entry.postings.bytes
    }
    return self.entries.count < before
  }

  /// Drops the least recently used entries until the rest fit `budget` (down to seven eighths of
  /// it, so that eviction sorts once for many insertions).
  mutating func evict(to budget: Int) {
    guard self.bytes > budget else { return }
    let target = budget - budget / 8
    for (key, entry) in self.entries.sorted(by: { $0.value.used < $1.value.used }) {
      if self.bytes <= target { break }
      self.entries[key] = nil
      self.bytes -= entry.postings.bytes
    }
  }
}
