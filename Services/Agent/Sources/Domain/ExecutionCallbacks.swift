public import Foundation
public import Logging
public import PlatformCore
internal import Crypto

/// Where an execution's events go (executions.callback_*): the URL, the events chosen, and the
/// signing secret sealed with AGENT_ENCRYPTION_KEY for this execution's owner.
public struct ExecutionCallback: Sendable, Equatable {
  public var url: String
  public var events: [String]
  /// `keyID:box` from `SecretBox.seal`.
  public var sealedSecret: String

  public static let allEvents = ["started", "completed", "failed", "cancelled", "timeout"]
  public static let endings = ["completed", "failed", "cancelled", "timeout"]
}

/// Execution callbacks (seed 003): checked when an execution starts, then each chosen event is a
/// job (`execution.callback`) that POSTs the execution as JSON, signed with HMAC-SHA256, to a
/// URL the egress policy allows (checked again at each delivery, on the address connected to),
/// retried with backoff until the receiver takes it.
public struct ExecutionCallbacks: Sendable {
  let jobs: JobQueue
  let store: ExecutionStore
  let http: EgressHTTPClient
  /// Nil when AGENT_ENCRYPTION_KEY is unset: callbacks are refused.
  let secrets: SecretBox?
  let logger: Logger

  public static let jobType = "execution.callback"

  public init(jobs: JobQueue, store: ExecutionStore, policy: EgressPolicy, secrets: SecretBox?, logger: Logger) {
    self.jobs = jobs
    self.store = store
    self.http = EgressHTTPClient(policy: policy, maxResponseBytes: 64 << 10)
    self.secrets = secrets
    self.logger = logger
  }

  static func context(_ owner: UUID) -> String { "execution-callback:\(owner.lowercasedString)" }

  /// The callback a request asks for, checked; nil when it asks for none.
  public func checked(url: String, events: [String], secret: String, owner: UUID) async throws(ServiceError) -> ExecutionCallback? {
    if url.isEmpty {
      guard events.isEmpty, secret.isEmpty else {
        throw .invalidArgument(field: "callback_url", reason: "is required with callback_events or callback_secret")
      }
      return nil
    }
    guard let secrets = self.secrets else {
      throw .failedPrecondition("Callbacks are off on this server: AGENT_ENCRYPTION_KEY is not set")
    }
    guard url.utf8.count <= 2048, let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
      let host = parsed.host, !host.isEmpty, parsed.user == nil, parsed.password == nil
    else { throw .invalidArgument(field: "callback_url", reason: "must be an http or https URL with a host and no credentials, at most 2048 bytes") }
    do {
      _ = try await self.http.policy.resolve(host: host, port: parsed.port ?? (scheme == "https" ? 443 : 80))
    } catch {
      throw .invalidArgument(field: "callback_url", reason: "is not allowed: \(error.description)")
    }
    var chosen: [String] = []
    for event in events {
      guard ExecutionCallback.allEvents.contains(event) else {
        throw .invalidArgument(field: "callback_events", reason: "\(event) is not one of \(ExecutionCallback.allEvents.joined(separator: ", "))")
      }
      if !chosen.contains(event) { chosen.append(event) }
    }
    guard (16...256).contains(secret.utf8.count) else { throw .invalidArgument(field: "callback_secret", reason: "must be 16 to 256 bytes") }
    let sealed: (keyID: String, sealed: String)
    do {
      sealed = try secrets.seal(Array(secret.utf8), context: Self.context(owner))
    } catch {
      throw .unavailable("The callback secret could not be sealed")
    }
    return ExecutionCallback(url: url, events: chosen.isEmpty ? ExecutionCallback.endings : chosen, sealedSecret: "\(sealed.keyID):\(sealed.sealed)")
  }

  /// Queues the delivery of the event `execution`'s status is, when it asked for it, inside the
  /// transaction that changed the status (`ExecutionStore.StatusChange`).
  public var onStatusChange: ExecutionStore.StatusChange {
    let jobs = self.jobs
    return { connection, execution in
      let event = execution.status == .running ? "started" : execution.status.rawValue
      guard let events = execution.callbackEvents, events.contains(event) else { return }
      try await jobs.enqueue(
        Self.jobType, payload: Self.payload(execution.id, event: event), options: Self.options(execution.id, event: event), in: connection)
    }
  }

  static func payload(_ id: UUID, event: String) -> JSONValue {
    .object(["execution_id": .string(id.lowercasedString), "event": .string(event)])
  }

  /// Once per event and execution.
  static func options(_ id: UUID, event: String) -> JobOptions {
    JobOptions(priority: 60, dedupKey: "callback:\(id.lowercasedString):\(event)", maxAttempts: 8)
  }

  /// Queues the delivery of `event` when the execution asked for it (once per event), after the
  /// change was committed: for changes made elsewhere (an agent's deletion).
  public func notify(_ execution: Execution, event: String) async {
    guard let events = execution.callbackEvents, events.contains(event) else { return }
    do {
      try await self.jobs.enqueue(Self.jobType, payload: Self.payload(execution.id, event: event), options: Self.options(execution.id, event: event))
    } catch {
      self.logger.warning("A callback could not be queued", metadata: ["execution_id": "\(execution.id)", "event": "\(event)", "error": "\(error)"])
    }
  }

  /// The signature header's value: `sha256=` and the hex HMAC-SHA256 of "<timestamp>.<body>".
  public static func signature(secret: [UInt8], timestamp: Int, body: Data) -> String {
    var message = Data("\(timestamp).".utf8)
    message.append(body)
    let code = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
    return "sha256=" + code.map { String(format: "%02x", $0) }.joined()
  }

  /// Delivers queued events.
  public var handler: JobHandler {
    JobHandler(type: Self.jobType, concurrency: 4, retryBackoff: (.seconds(1), .seconds(300))) { job, logger in
      guard let payload = (try? JSONValue(jsonText: job.payload))?.objectValue,
        let id = payload["execution_id"]?.stringValue.flatMap(UUID.init(strict:)), let event = payload["event"]?.stringValue
      else { throw PermanentJobFailure("not a callback: \(job.payload)") }
      guard let execution = try await self.store.execution(id), let target = try await self.store.callback(of: id),
        let url = URL(string: target.url), let secrets = self.secrets
      else { throw PermanentJobFailure("the execution or its callback is gone, or AGENT_ENCRYPTION_KEY is unset") }
      let parts = target.sealedSecret.split(separator: ":", maxSplits: 1).map(String.init)
      guard parts.count == 2, let secret = try? secrets.open(parts[1], keyID: parts[0], context: Self.context(execution.userID)) else {
        throw PermanentJobFailure("the callback secret cannot be opened (AGENT_ENCRYPTION_KEY changed?)")
      }
      let body = Data(JSONValue.object(["event": .string(event), "execution": ExecutionCache.json(execution)]).jsonText.utf8)
      let timestamp = Int(Date().timeIntervalSince1970)
      let response: EgressHTTPClient.Response
      do {
        response = try await self.http.send(
          "POST", url,
          headers: [
            ("Content-Type", "application/json"), ("User-Agent", "platform-agent/1"), ("X-Platform-Event", event),
            ("X-Platform-Delivery", job.id.lowercasedString), ("X-Platform-Timestamp", String(timestamp)),
            ("X-Platform-Signature", Self.signature(secret: secret, timestamp: timestamp, body: body)),
          ], body: body, timeout: .seconds(10))
      } catch let failure as EgressHTTPClient.Failure {
        if case .refused = failure { throw PermanentJobFailure("the callback URL is not allowed any more: \(failure.description)") }
        throw failure
      }
      switch response.status {
      case 200..<300:
        logger.info("Callback delivered", metadata: ["execution_id": "\(id)", "event": "\(event)", "status": "\(response.status)"])
      case 400..<500 where response.status != 408 && response.status != 429:
        throw PermanentJobFailure("the receiver refused the callback: HTTP \(response.status)")
      default:
        throw ServiceError.unavailable("the receiver answered HTTP \(response.status)")
      }
    }
  }
}
