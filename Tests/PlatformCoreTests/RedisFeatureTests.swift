import Foundation
import Logging
import NIOCore
import PlatformCore
import PlatformRedis
import PlatformTesting
import Testing

/// The core's Redis features (cache, rate limits, locks, sessions) against real redis-server
/// processes, one per test.
@Suite("Core Redis features")
struct RedisFeatureTests {
  static let logger = TestPostgres.quietLogger

  static func client(_ server: RedisTestServer) throws -> RedisClient {
    var configuration = try RedisConfiguration(url: server.url)
    configuration.reconnectBackoff = (.milliseconds(20), .milliseconds(200))
    return try RedisClient(configuration: configuration, logger: Self.logger)
  }

  static func textCache(_ redis: RedisClient, maxValueBytes: Int = 1024) -> VersionedCache<String> {
    VersionedCache<String>(
      redis: redis, namespace: "test:text", timeToLive: .seconds(60), maxValueBytes: maxValueBytes, logger: Self.logger,
      encode: { ByteBuffer(string: $0) }, decode: { String(buffer: $0) })
  }

  @Test("cache: version-guarded writes, tombstones, cache-aside, value cap, counters")
  func cache() async throws {
    let server = try await RedisTestServer()
    let redis = try Self.client(server)
    let cache = Self.textCache(redis)
    guard case .miss = await cache.lookup("a") else { throw Failure("expected a miss") }

    await cache.store("two", version: 2, for: "a")
    await cache.store("one", version: 1, for: "a")  // a slow writer with an older version
    await cache.store("two again", version: 2, for: "a")  // the same version is not rewritten
    guard case .hit("two") = await cache.lookup("a") else { throw Failure("the older version replaced the newer") }
    #expect(cache.statistics.staleWrites == 2)
    #expect(try #require(try await redis.timeToLive("test:text:a")) > .seconds(55))

    await cache.storeDeletion(version: 3, for: "a")
    await cache.store("two", version: 2, for: "a")
    guard case .deleted = await cache.lookup("a") else { throw Failure("a deleted value came back") }

    // Cache-aside: the loader runs on a miss only, and fills the cache.
    var loads = 0
    for _ in 0..<3 {
      let value = try await cache.value(for: "b") {
        loads += 1
        return ("loaded", 7)
      }
      #expect(value == "loaded")
    }
    #expect(loads == 1)

    // Too large to cache: not stored, and older versions cannot be stored after it.
    await cache.store("small", version: 1, for: "c")
    await cache.store(String(repeating: "x", count: 2000), version: 2, for: "c")
    await cache.store("small", version: 1, for: "c")
    guard case .miss = await cache.lookup("c") else { throw Failure("an oversized or older value was served") }
    #expect(cache.statistics.oversized == 1)
    #expect(cache.statistics.errors == 0)
    await redis.close()
  }

  @Test("cache: Redis down is a miss and the loader answers; caching resumes when it is back")
  func cacheOutage() async throws {
    let server = try await RedisTestServer()
    let redis = try Self.client(server)
    let cache = Self.textCache(redis)
    await cache.store("cached", version: 1, for: "k")
    server.kill()
    for _ in 0..<50 {
      #expect(try await cache.value(for: "k") { ("from the database", 1) } == "from the database")
    }
    #expect(cache.statistics.errors >= 50)
    try await server.start()
    try await eventually { (try? await redis.ping()) != nil }
    #expect(try await cache.value(for: "k") { ("reloaded", 2) } == "reloaded")
    guard case .hit("reloaded") = await cache.lookup("k") else { throw Failure("caching did not resume") }
    await redis.close()
  }

  @Test("rate limit: two replicas sharing Redis cut a burst at exactly the limit")
  func rateLimitAcrossReplicas() async throws {
    let server = try await RedisTestServer()
    let replicas = [try Self.client(server), try Self.client(server)]
    let limiters = replicas.map { RateLimiter(redis: $0, logger: Self.logger) }
    let key = "user-\(UUID().uuidString):read"
    let allowed = try await withThrowingTaskGroup(of: Bool.self) { group in
      for index in 0..<200 {
        group.addTask {
          if case .allowed = await limiters[index % 2].acquire(key, limit: 37, per: .seconds(60)) { return true }
          return false
        }
      }
      return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
    }
    #expect(allowed == 37)
    #expect(limiters[0].rejectedCount + limiters[1].rejectedCount == 163)
    guard case .limited(let retryAfter) = await limiters[0].acquire(key, limit: 37, per: .seconds(60)) else {
      throw Failure("over the limit but allowed")
    }
    #expect(retryAfter > .seconds(55) && retryAfter <= .seconds(60))
    // Another caller has a window of its own.
    guard case .allowed = await limiters[1].acquire(key + "-other", limit: 37, per: .seconds(60)) else {
      throw Failure("another key was limited")
    }
    for replica in replicas { await replica.close() }
  }

  @Test("rate limit: the window slides; calls fit again once the oldest leave it")
  func rateLimitWindow() async throws {
    let server = try await RedisTestServer()
    let redis = try Self.client(server)
    let limiter = RateLimiter(redis: redis, logger: Self.logger)
    try await redis.ping()  // connected before the window starts
    for _ in 0..<3 {
      guard case .allowed = await limiter.acquire("slide", limit: 3, per: .seconds(2)) else { throw Failure("limited early") }
    }
    guard case .limited = await limiter.acquire("slide", limit: 3, per: .seconds(2)) else { throw Failure("not limited") }
    try await Task.sleep(for: .milliseconds(2100))
    guard case .allowed = await limiter.acquire("slide", limit: 3, per: .seconds(2)) else { throw Failure("the window did not slide") }
    await redis.close()
  }

  @Test("rate limit: Redis down follows the configured policy", arguments: [RateLimitOutagePolicy.allow, .deny])
  func rateLimitOutage(_ policy: RateLimitOutagePolicy) async throws {
    let server = try await RedisTestServer()
    let redis = try Self.client(server)
    let limiter = RateLimiter(redis: redis, outagePolicy: policy, logger: Self.logger)
    server.kill()
    let decision = await limiter.acquire("down", limit: 1, per: .seconds(60))
    switch (policy, decision) {
    case (.allow, .allowed), (.deny, .limited): break
    default: Issue.record("\(policy) answered \(decision)")
    }
    #expect(limiter.outageDecisionCount == 1)
    await redis.close()
  }

  @Test("locks: one owner at a time; only the owner releases or extends; an expired lease is lost")
  func locks() async throws {
    let server = try await RedisTestServer()
    let redis = try Self.client(server)
    let locks = DistributedLocks(redis: redis)
    let first = try #require(try await locks.acquire("job:1", ttl: .seconds(3)))
    #expect(try await locks.acquire("job:1", ttl: .seconds(10)) == nil)
    let impostor = DistributedLocks.Lease(name: "job:1", token: "not-the-token")
    #expect(try await locks.release(impostor) == false)
    #expect(try await locks.extend(impostor, ttl: .seconds(10)) == false)
    #expect(try await locks.extend(first, ttl: .milliseconds(300)))
    // At most 300 ms left (or already gone on a slow machine), not the 3 s it had.
    #expect(try await redis.timeToLive("lock:job:1").map { $0 <= .milliseconds(300) } ?? true)
    try await Task.sleep(for: .milliseconds(400))
    let second = try #require(try await locks.acquire("job:1", ttl: .seconds(10)), "an expired lock was not free")
    #expect(try await locks.release(first) == false, "the old owner released the new owner's lock")
    #expect(try await locks.extend(first, ttl: .seconds(10)) == false)
    #expect(try await locks.release(second))
    #expect(try await locks.acquire("job:1", ttl: .seconds(1)) != nil)
    await redis.close()
  }

  @Test("sessions: create, touch slides the expiry, revoke")
  func sessions() async throws {
    let server = try await RedisTestServer()
    let redis = try Self.client(server)
    let sessions = SessionStore(redis: redis, idleTimeout: .seconds(900))
    let user = UUID()
    let session = Session(
      userID: user, email: "ada@example.com", roles: ["developer"], permissions: ["persona:read"],
      lastActive: Date(timeIntervalSince1970: 1_700_000_000))
    try await sessions.create(session)
    let key = "session:\(user.uuidString.lowercased())"
    #expect(try await redis.hashGetAll(key)["roles"] == ByteBuffer(string: "[\"developer\"]"))
    _ = try await redis.expire(key, after: .seconds(10))
    let touched = try #require(try await sessions.touch(user, now: Date(timeIntervalSince1970: 1_700_000_100)))
    #expect(touched.email == "ada@example.com" && touched.roles == ["developer"] && touched.permissions == ["persona:read"])
    #expect(touched.lastActive == Date(timeIntervalSince1970: 1_700_000_100))
    #expect(try #require(try await redis.timeToLive(key)) > .seconds(890))
    #expect(try await sessions.revoke(user))
    #expect(try await sessions.touch(user) == nil)
    #expect(try await sessions.revoke(user) == false)
    await redis.close()
  }
}

struct Failure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, for at most `limit`.
func eventually(within limit: Duration = .seconds(5), _ condition: () async -> Bool) async throws {
  let deadline = ContinuousClock.now + limit
  while ContinuousClock.now < deadline {
    if await condition() { return }
    try await Task.sleep(for: .milliseconds(20))
  }
  throw Failure("condition not met within \(limit)")
}
