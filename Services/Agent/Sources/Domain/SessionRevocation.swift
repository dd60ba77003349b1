public import Foundation
public import Logging
public import PlatformCore

/// Ends sessions in Redis for logout and deactivation, durably: when Redis cannot be reached,
/// the revocation becomes a job that retries until Redis is back, so an acknowledged logout or
/// deactivation is never lost (services accept valid tokens during an outage by default; once
/// Redis returns, the session goes and its tokens stop everywhere within seconds).
public struct SessionRevocation: Sendable {
  let sessions: SessionStore
  let jobs: JobQueue
  let logger: Logger

  public static let jobType = "session.revoke"

  public init(sessions: SessionStore, jobs: JobQueue, logger: Logger) {
    self.sessions = sessions
    self.jobs = jobs
    self.logger = logger
  }

  /// Ends the session of `userID`: only `sessionID` if given (a newer sign-in is left alone),
  /// any otherwise.
  /// - Returns: false when Redis could not be reached and the revocation was queued.
  @discardableResult
  public func revoke(_ userID: UUID, sessionID: String?) async throws -> Bool {
    do {
      try await self.sessions.revoke(userID, sessionID: sessionID)
      return true
    } catch {
      var payload: [String: JSONValue] = ["user_id": .string(userID.lowercasedString)]
      if let sessionID { payload["session_id"] = .string(sessionID) }
      try await self.jobs.enqueue(Self.jobType, payload: .object(payload), options: JobOptions(priority: 90, maxAttempts: 100))
      self.logger.warning(
        "The session could not be ended in Redis now; it will be when Redis is back",
        metadata: ["user_id": "\(userID)", "error": "\(error)"])
      return false
    }
  }

  /// Runs queued revocations: retried with backoff (1 s doubling to 30 s) while Redis is down.
  public var handler: JobHandler {
    JobHandler(type: Self.jobType, concurrency: 2, retryBackoff: (.seconds(1), .seconds(30))) { job, logger in
      guard let fields = (try? JSONValue(jsonText: job.payload))?.objectValue, let userID = fields["user_id"]?.stringValue.flatMap(UUID.init(strict:)) else {
        throw PermanentJobFailure("not a session revocation: \(job.payload)")
      }
      try await self.sessions.revoke(userID, sessionID: fields["session_id"]?.stringValue)
      logger.notice("A session revocation queued during a Redis outage is done", metadata: ["user_id": "\(userID)"])
    }
  }
}
