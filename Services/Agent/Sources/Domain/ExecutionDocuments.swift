public import Foundation
public import Logging
public import PlatformCore

/// The knowledge documents file_upload makes of an execution's files, which live only as long
/// as the run: a run deletes them when it ends; when it cannot (the knowledge service down) or
/// never gets there (its service killed mid-run, the execution later failed as interrupted), a
/// durable job does, retrying until the knowledge service answers.
public struct ExecutionDocuments: Sendable {
  public static let jobType = "execution.documents"

  let jobs: JobQueue
  let peers: PlatformPeers
  let issuer: TokenIssuer
  let logger: Logger

  public init(jobs: JobQueue, peers: PlatformPeers, issuer: TokenIssuer, logger: Logger) {
    self.jobs = jobs
    self.peers = peers
    self.issuer = issuer
    self.logger = logger
  }

  /// Queues the deletion of the execution's documents (once: a second request while the first
  /// waits is the same job), inside the caller's transaction on `connection` when given.
  public func scheduleDeletion(of execution: UUID, owner: UUID, in connection: DatabaseConnection? = nil) async throws {
    let payload = JSONValue.object(["execution_id": .string(execution.lowercasedString), "user_id": .string(owner.lowercasedString)])
    let options = JobOptions(dedupKey: "documents:\(execution.lowercasedString)", maxAttempts: 20)
    if let connection {
      try await self.jobs.enqueue(Self.jobType, payload: payload, options: options, in: connection)
    } else {
      try await self.jobs.enqueue(Self.jobType, payload: payload, options: options)
    }
  }

  /// Deletes the documents of the job's execution as its user (the execution itself may be gone),
  /// with a token signed here for a minute that may do nothing but read and delete knowledge.
  public var handler: JobHandler {
    JobHandler(type: Self.jobType, concurrency: 2, retryBackoff: (.seconds(5), .seconds(300))) { job, logger in
      guard let payload = (try? JSONValue(jsonText: job.payload))?.objectValue,
        let id = payload["execution_id"]?.stringValue.flatMap(UUID.init(strict:)),
        let owner = payload["user_id"]?.stringValue.flatMap(UUID.init(strict:))
      else { throw PermanentJobFailure("not an execution and its user: \(job.payload)") }
      let token = try await self.issuer.issue(userID: owner, roles: [], permissions: ["knowledge:read", "knowledge:write"], lifetime: .seconds(60))
      let deleted = try await self.peers.deleteExecutionDocuments(of: id, credential: token)
      if deleted > 0 {
        logger.info("Deleted the documents an execution's run left", metadata: ["execution_id": "\(id)", "count": "\(deleted)"])
      }
    }
  }
}

extension AgentPlugin {
  /// A file_upload plugin that makes documents of the files (rather than handing them to the
  /// sandbox).
  var uploadsToKnowledge: Bool {
    self.kind == .fileUpload && self.config.objectValue?["target"]?.stringValue == "knowledge"
  }
}
