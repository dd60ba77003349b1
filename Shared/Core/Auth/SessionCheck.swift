public import CoreMetrics
public import Foundation
public import Logging
public import PlatformRedis
internal import Synchronization

/// What the auth interceptor does with a token whose session Redis cannot confirm because Redis
/// is down (`SESSION_CHECK_REDIS_DOWN`).
public enum SessionOutagePolicy: String, Sendable, CaseIterable {
  /// Accept valid tokens (default): an outage does not sign everyone out; a logout during it
  /// takes effect when Redis is back (the agent service retries the revocation until it is).
  /// Each acceptance is counted (`session_checks_unverified_total`) and logged once a minute.
  case allow
  /// Refuse tokens with a session: safer, and everyone is signed out while Redis is down.
  case deny
}

/// Confirms that a token's session (`sid`) is still the user's live session in Redis, so a
/// logout or a deactivation stops that user's tokens in every service within seconds. A
/// confirmation is remembered for `cacheFor` (default 2 s), bounding both Redis traffic and how
/// long a revoked session keeps working here.
public final class SessionCheck: Sendable {
  private let sessions: SessionStore
  private let outagePolicy: SessionOutagePolicy
  private let cacheFor: Duration
  private let capacity: Int
  private let logger: Logger
  private let confirmed = Mutex<[String: ContinuousClock.Instant]>([:])
  private let uncheckedMetric: Counter
  private let unverified = Atomic<Int>(0)
  /// When the last warning about unchecked sessions was logged (one a minute at most).
  private let lastWarning = Mutex<ContinuousClock.Instant?>(nil)

  /// - Parameter metrics: counts `session_checks_unverified_total{policy}`: tokens whose session
  ///   Redis could not confirm, accepted or refused by the outage policy.
  public init(
    redis: RedisClient, outagePolicy: SessionOutagePolicy = .allow, cacheFor: Duration = .seconds(2),
    capacity: Int = 10_000, logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory
  ) {
    self.sessions = SessionStore(redis: redis)
    self.outagePolicy = outagePolicy
    self.cacheFor = cacheFor
    self.capacity = capacity
    self.logger = logger
    self.uncheckedMetric = Counter(
      label: "session_checks_unverified_total", dimensions: [("policy", outagePolicy.rawValue)], factory: metrics)
  }

  public enum Verdict: Sendable, Equatable {
    case live
    case ended
    /// Redis could not answer; the outage policy decided.
    case unknown(accepted: Bool)
  }

  /// Tokens whose session Redis could not confirm, since start.
  public var unverifiedCount: Int { self.unverified.load(ordering: .relaxed) }

  public func check(userID: UUID, sessionID: String) async -> Verdict {
    let key = userID.lowercasedString + "/" + sessionID
    let now = ContinuousClock.now
    if let until = self.confirmed.withLock({ $0[key] }), until > now { return .live }
    do {
      guard try await self.sessions.isLive(userID, sessionID: sessionID) else {
        self.confirmed.withLock { _ = $0.removeValue(forKey: key) }
        return .ended
      }
    } catch {
      self.uncheckedMetric.increment()
      self.unverified.wrappingAdd(1, ordering: .relaxed)
      let now = ContinuousClock.now
      let due = self.lastWarning.withLock { last in
        guard last.map({ now - $0 >= .seconds(60) }) ?? true else { return false }
        last = now
        return true
      }
      if due {
        self.logger.warning(
          self.outagePolicy == .allow
            ? "Accepting tokens whose session cannot be checked (Redis is unreachable; SESSION_CHECK_REDIS_DOWN=allow)"
            : "Refusing tokens whose session cannot be checked (Redis is unreachable; SESSION_CHECK_REDIS_DOWN=deny)",
          metadata: ["error": "\(error)", "policy": "\(self.outagePolicy.rawValue)"])
      }
      return .unknown(accepted: self.outagePolicy == .allow)
    }
    self.confirmed.withLock { confirmed in
      if confirmed.count >= self.capacity { confirmed.removeAll(keepingCapacity: true) }
      confirmed[key] = now + self.cacheFor
    }
    return .live
  }
}
