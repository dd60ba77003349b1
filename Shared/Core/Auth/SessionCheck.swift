public import Foundation
public import Logging
public import PlatformRedis
internal import Synchronization

/// What the auth interceptor does with a token whose session Redis cannot confirm because Redis
/// is down (`SESSION_CHECK_REDIS_DOWN`).
public enum SessionOutagePolicy: String, Sendable, CaseIterable {
  /// Accept valid tokens (default): an outage does not sign everyone out; a logout during it
  /// takes effect when Redis is back.
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

  public init(
    redis: RedisClient, outagePolicy: SessionOutagePolicy = .allow, cacheFor: Duration = .seconds(2),
    capacity: Int = 10_000, logger: Logger
  ) {
    self.sessions = SessionStore(redis: redis)
    self.outagePolicy = outagePolicy
    self.cacheFor = cacheFor
    self.capacity = capacity
    self.logger = logger
  }

  public enum Verdict: Sendable, Equatable {
    case live
    case ended
    /// Redis could not answer; the outage policy decided.
    case unknown(accepted: Bool)
  }

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
      return .unknown(accepted: self.outagePolicy == .allow)
    }
    self.confirmed.withLock { confirmed in
      if confirmed.count >= self.capacity { confirmed.removeAll(keepingCapacity: true) }
      confirmed[key] = now + self.cacheFor
    }
    return .live
  }
}
