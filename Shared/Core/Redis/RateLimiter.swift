public import CoreMetrics
internal import Foundation
public import Logging
public import PlatformRedis
internal import Synchronization

/// What the rate limiter does while Redis cannot be reached (`RATE_LIMIT_REDIS_DOWN`).
public enum RateLimitOutagePolicy: String, Sendable, CaseIterable {
  /// Let calls through (the default: an outage of the limiter's store is not an outage of the
  /// service).
  case allow
  /// Refuse calls with RESOURCE_EXHAUSTED.
  case deny
}

/// A sliding-window rate limiter shared by every replica through Redis: one sorted set per key
/// (`ratelimit:{key}`) holding the calls of the last window, checked and updated atomically in
/// one Lua script on Redis's own clock, so replicas with skewed clocks agree and a burst over
/// the limit is cut at exactly the limit.
public final class RateLimiter: Sendable {
  public enum Decision: Sendable, Equatable {
    /// Let through; `remaining` more calls fit in the window.
    case allowed(remaining: Int)
    /// Over the limit; a call fits again after `retryAfter`.
    case limited(retryAfter: Duration)
  }

  private let redis: RedisClient
  private let outagePolicy: RateLimitOutagePolicy
  private let logger: Logger
  /// Makes members unique across replicas and calls in the same microsecond.
  private let instance = UUID().uuidString.prefix(8)
  private let sequence = Atomic<Int>(0)
  private let rejected = Atomic<Int>(0)
  private let outageDecisions = Atomic<Int>(0)
  private let rejectedMetric: Counter
  private let outageMetric: Counter

  /// KEYS[1]: the window's sorted set. ARGV: window (µs), limit, member.
  /// Returns {1, remaining} or {0, µs until the oldest call leaves the window}.
  static let slidingWindow = RedisScript(
    """
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
    local window = tonumber(ARGV[1])
    local limit = tonumber(ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    local count = redis.call('ZCARD', KEYS[1])
    if count < limit then
      redis.call('ZADD', KEYS[1], now, ARGV[3])
      redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
      return {1, limit - count - 1}
    end
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now}
    """)

  /// - Parameter metrics: counts `rate_limit_rejections_total` and
  ///   `rate_limit_outage_decisions_total` (default the process's `MetricsSystem`).
  public init(
    redis: RedisClient, outagePolicy: RateLimitOutagePolicy = .allow, logger: Logger,
    metrics: any MetricsFactory = MetricsSystem.factory
  ) {
    self.redis = redis
    self.outagePolicy = outagePolicy
    self.logger = logger
    self.rejectedMetric = Counter(label: "rate_limit_rejections_total", factory: metrics)
    self.outageMetric = Counter(
      label: "rate_limit_outage_decisions_total", dimensions: [("policy", outagePolicy.rawValue)], factory: metrics)
  }

  /// Calls refused for being over a limit, since start.
  public var rejectedCount: Int { self.rejected.load(ordering: .relaxed) }
  /// Decisions made by the outage policy because Redis could not be reached, since start.
  public var outageDecisionCount: Int { self.outageDecisions.load(ordering: .relaxed) }

  /// Counts one call against `key`'s window of `limit` calls per `window`.
  public func acquire(_ key: String, limit: Int, per window: Duration) async -> Decision {
    let member = "\(self.instance)-\(self.sequence.wrappingAdd(1, ordering: .relaxed).newValue)"
    do {
      let reply = try await self.redis.evaluate(
        Self.slidingWindow, keys: ["ratelimit:\(key)"],
        arguments: [.integer(max(window.wholeMicroseconds, 1)), .integer(Int64(limit)), .string(member)])
      guard let elements = reply.elements, elements.count == 2, let verdict = elements[0].integer,
        let amount = elements[1].integer
      else { throw RedisError(.unexpectedReply, "the rate limit script answered \(reply)") }
      if verdict == 1 { return .allowed(remaining: Int(amount)) }
      self.rejected.add(1, ordering: .relaxed)
      self.rejectedMetric.increment()
      return .limited(retryAfter: .microseconds(max(amount, 1000)))
    } catch {
      self.outageDecisions.add(1, ordering: .relaxed)
      self.outageMetric.increment()
      switch self.outagePolicy {
      case .allow: return .allowed(remaining: 0)
      case .deny: return .limited(retryAfter: .seconds(1))
      }
    }
  }
}
