internal import Foundation
public import PlatformRedis

/// Locks shared by every replica through Redis (seed 002 §4.2.6): `lock:{name}` set with
/// `SET NX PX` to a random owner token. Only the owner releases or extends it (a Lua script
/// compares the token first), so a holder whose lease ran out and was taken over cannot release
/// the new holder's lock.
public struct DistributedLocks: Sendable {
  /// A held lock: its name and the owner token proving who holds it.
  public struct Lease: Sendable, Hashable {
    public let name: String
    public let token: String

    /// A lease as recorded elsewhere (a job row holding the token, say).
    public init(name: String, token: String) {
      self.name = name
      self.token = token
    }
  }

  private let redis: RedisClient

  static let release = RedisScript(
    """
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """)

  static let extend = RedisScript(
    """
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return 0
    """)

  public init(redis: RedisClient) {
    self.redis = redis
  }

  static func key(_ name: String) -> String { "lock:\(name)" }

  /// Takes `name` for `ttl` if nobody holds it.
  /// - Returns: the lease, or nil when another owner holds the lock.
  /// - Throws: `RedisError` when Redis cannot be reached (nobody can be sure who holds it).
  public func acquire(_ name: String, ttl: Duration) async throws -> Lease? {
    let token = UUID().uuidString
    let taken = try await self.redis.set(Self.key(name), to: .string(token), expiration: ttl, condition: .ifAbsent)
    return taken ? Lease(name: name, token: token) : nil
  }

  /// Releases `lease`.
  /// - Returns: false when the lease had already run out (someone else may hold the lock now).
  @discardableResult
  public func release(_ lease: Lease) async throws -> Bool {
    try await self.redis.evaluate(Self.release, keys: [Self.key(lease.name)], arguments: [.string(lease.token)]) == .integer(1)
  }

  /// Gives `lease` `ttl` more from now.
  /// - Returns: false when the lease had already run out and the lock is lost.
  public func extend(_ lease: Lease, ttl: Duration) async throws -> Bool {
    try await self.redis.evaluate(
      Self.extend, keys: [Self.key(lease.name)],
      arguments: [.string(lease.token), .integer(RedisClient.milliseconds(ttl))]) == .integer(1)
  }
}
