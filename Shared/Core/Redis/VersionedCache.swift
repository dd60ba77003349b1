public import CoreMetrics
public import Logging
public import NIOCore
public import PlatformRedis
internal import Synchronization

/// Cache-aside and write-through over Redis for values that carry a version which grows with
/// every write (a row's revision counter).
///
/// Each key `{namespace}:{id}` holds `v<version>:<bytes>`, `t<version>:` for a deleted value
/// (a tombstone), or `u<version>:` for a version too large to cache. Every write is version-guarded in one Lua script: it stores only when
/// nothing newer (or as new) is there, so a slow reader filling the cache after a miss can never
/// put back a version an update has replaced, and a deleted value never comes back. Values over
/// `maxValueBytes` are not cached. Redis errors never fail the caller: a read that cannot reach
/// Redis is a miss (the caller reads its database), a write that cannot is counted, and the
/// client logs one warning per outage.
public final class VersionedCache<Value: Sendable>: Sendable {
  /// What a lookup found.
  public enum Lookup: Sendable {
    case hit(Value)
    /// The value was deleted at this version.
    case deleted
    case miss
  }

  /// Counts since start; exported as metrics.
  public struct Statistics: Sendable, Equatable {
    public var hits = 0
    public var misses = 0
    /// Redis failed (the caller fell back to its database, or a write was skipped).
    public var errors = 0
    /// Writes refused by the version guard (something newer was there).
    public var staleWrites = 0
    /// Values not cached because they exceed `maxValueBytes`.
    public var oversized = 0

    enum Kind: Hashable, Sendable {
      case hit, miss, error, staleWrite, oversized
    }

    mutating func count(_ kind: Kind) {
      switch kind {
      case .hit: self.hits += 1
      case .miss: self.misses += 1
      case .error: self.errors += 1
      case .staleWrite: self.staleWrites += 1
      case .oversized: self.oversized += 1
      }
    }
  }

  public let namespace: String
  public let timeToLive: Duration
  public let maxValueBytes: Int
  private let redis: RedisClient
  private let encode: @Sendable (Value) throws -> ByteBuffer
  private let decode: @Sendable (ByteBuffer) throws -> Value
  private let logger: Logger
  /// The values of recent versions, decoded: a lookup that finds a version decoded before
  /// skips decoding it again (Redis still says which version is current).
  private let decoded: VersionedMemo<String, Value>
  private let counts = Mutex(Statistics())
  private let counters: [Statistics.Kind: Counter]

  /// - Parameters:
  ///   - namespace: the key prefix, `{service}:{resource}` or, as seed 002 §4 has it for
  ///     personas, `persona`.
  ///   - timeToLive: how long an entry lives after its last write.
  ///   - maxValueBytes: larger encoded values are not cached (default 256 KiB).
  ///   - metrics: counts `cache_lookups_total{cache,result}` (hit, miss), `cache_errors_total`,
  ///     `cache_stale_writes_total` and `cache_oversized_total` (default the process's
  ///     `MetricsSystem`).
  ///   - encode, decode: the value's bytes; a value that fails to decode counts as a miss.
  ///   - memo: how many decoded values (and their encoded bytes) are kept in-process by version
  ///     (default none).
  public init(
    redis: RedisClient, namespace: String, timeToLive: Duration, maxValueBytes: Int = 256 * 1024,
    logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory,
    memo: (maxEntries: Int, maxBytes: Int) = (0, 0),
    encode: @escaping @Sendable (Value) throws -> ByteBuffer,
    decode: @escaping @Sendable (ByteBuffer) throws -> Value
  ) {
    let cache = ("cache", namespace)
    self.counters = [
      .hit: Counter(label: "cache_lookups_total", dimensions: [cache, ("result", "hit")], factory: metrics),
      .miss: Counter(label: "cache_lookups_total", dimensions: [cache, ("result", "miss")], factory: metrics),
      .error: Counter(label: "cache_errors_total", dimensions: [cache], factory: metrics),
      .staleWrite: Counter(label: "cache_stale_writes_total", dimensions: [cache], factory: metrics),
      .oversized: Counter(label: "cache_oversized_total", dimensions: [cache], factory: metrics),
    ]
    self.redis = redis
    self.namespace = namespace
    self.timeToLive = timeToLive
    self.maxValueBytes = maxValueBytes
    self.logger = logger
    self.encode = encode
    self.decode = decode
    self.decoded = VersionedMemo(maxEntries: memo.maxEntries, maxBytes: memo.maxBytes)
  }

  public var statistics: Statistics { self.counts.withLock { $0 } }

  public func key(_ id: String) -> String { "\(self.namespace):\(id)" }

  /// What the cache holds for `id`; `.miss` when Redis cannot be reached.
  public func lookup(_ id: String) async -> Lookup {
    let stored: ByteBuffer?
    do {
      stored = try await self.redis.get(self.key(id))
    } catch {
      self.count(.error)
      self.count(.miss)
      return .miss
    }
    guard var entry = stored, let kind = entry.readInteger(as: UInt8.self),
      let colon = entry.readableBytesView.firstIndex(of: UInt8(ascii: ":"))
    else {
      self.count(.miss)
      return .miss
    }
    let version = entry.getString(at: entry.readerIndex, length: colon - entry.readerIndex).flatMap { Int64($0) }
    entry.moveReaderIndex(to: colon + 1)
    if kind == UInt8(ascii: "t") {
      self.count(.hit)
      return .deleted
    }
    guard kind == UInt8(ascii: "v"), let version else {
      self.count(.miss)
      return .miss
    }
    if let value = self.decoded.value(for: id, version: version) {
      self.count(.hit)
      return .hit(value)
    }
    guard let value = try? self.decode(entry) else {
      self.count(.miss)
      return .miss
    }
    self.decoded.store(value, version: version, bytes: entry.readableBytes, for: id)
    self.count(.hit)
    return .hit(value)
  }

  /// Cache-aside: the cached value, or the one `load` reads (stored for the next reader unless
  /// something newer is there by then). nil when `load` finds nothing or the value was deleted.
  public func value(
    for id: String, load: () async throws -> (value: Value, version: Int64)?
  ) async throws -> Value? {
    switch await self.lookup(id) {
    case .hit(let value): return value
    case .deleted: return nil
    case .miss:
      guard let loaded = try await load() else { return nil }
      await self.store(loaded.value, version: loaded.version, for: id)
      return loaded.value
    }
  }

  /// Write-through: stores `value` at `version` unless the cache holds that version or a newer
  /// one.
  public func store(_ value: Value, version: Int64, for id: String) async {
    let bytes: ByteBuffer
    do {
      bytes = try self.encode(value)
    } catch {
      self.logger.error("A cache value failed to encode", metadata: ["cache": "\(self.namespace)", "error": "\(error)"])
      return
    }
    guard bytes.readableBytes <= self.maxValueBytes else {
      self.count(.oversized)
      // An older version may be cached: it must not outlive this write.
      await self.write(version: version, entry: ByteBuffer(string: "u\(version):"), for: id, ttl: self.timeToLive)
      return
    }
    self.decoded.store(value, version: version, bytes: bytes.readableBytes, for: id)
    var entry = ByteBuffer(string: "v\(version):")
    entry.writeImmutableBuffer(bytes)
    await self.write(version: version, entry: entry, for: id, ttl: self.timeToLive)
  }

  /// Marks `id` deleted at `version`: older versions can no longer be stored.
  public func storeDeletion(version: Int64, for id: String) async {
    await self.write(version: version, entry: ByteBuffer(string: "t\(version):"), for: id, ttl: self.timeToLive)
  }

  /// A write that fails leaves the older copy in place until it expires, so a failure that is
  /// not an outage (a timeout, a dropped connection) is retried twice; during an outage the
  /// client fails at once, and nobody reads the copy either.
  private func write(version: Int64, entry: ByteBuffer, for id: String, ttl: Duration) async {
    for delay in [Duration.zero, .milliseconds(20), .milliseconds(100)] {
      if delay > .zero { try? await Task.sleep(for: delay) }
      do {
        let reply = try await self.redis.evaluate(
          VersionedCacheWrite.script, keys: [self.key(id)],
          arguments: [.integer(version), .bytes(entry), .integer(RedisClient.milliseconds(ttl))])
        if reply == .integer(0) { self.count(.staleWrite) }
        return
      } catch let error as RedisError where error.code == .unavailable || error.code == .closed {
        self.count(.error)
        return
      } catch {
        self.count(.error)
      }
    }
  }

  private func count(_ kind: Statistics.Kind) {
    self.counts.withLock { $0.count(kind) }
    self.counters[kind]?.increment()
  }
}

/// The version-guarded write of `VersionedCache` (a generic type cannot hold it).
enum VersionedCacheWrite {
  /// Stores `ARGV[2]` under `KEYS[1]` for `ARGV[3]` ms unless the stored entry's version is at
  /// least `ARGV[1]`. Returns 1 when stored, 0 when refused.
  static let script = RedisScript(
    """
    local current = redis.call('GET', KEYS[1])
    if current then
      local colon = string.find(current, ':', 1, true)
      local stored = colon and tonumber(string.sub(current, 2, colon - 1))
      if stored and stored >= tonumber(ARGV[1]) then return 0 end
    end
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
    """)
}
