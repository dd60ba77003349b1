public import Foundation
public import Logging
public import PlatformCore
internal import GRPCRuntime

/// Agent executions: started (run before answering, or by a durable job), read, listed,
/// cancelled, retried, watched.
public struct Executions: Sendable {
  let store: ExecutionStore
  let agents: AgentStore
  let runner: ExecutionRunner
  let cache: ExecutionCache
  let callbacks: ExecutionCallbacks
  let jobs: JobQueue
  let locks: DistributedLocks
  let running: RunningTasks
  /// Signs the short-lived tokens background runs call other services with.
  let issuer: TokenIssuer
  /// Whether a background run's user may still act.
  let identity: IdentityStore
  let logger: Logger

  public static let jobType = "execution.run"
  public static let cancelChannel = "agent:execution:cancel"

  public init(
    store: ExecutionStore, agents: AgentStore, runner: ExecutionRunner, cache: ExecutionCache, callbacks: ExecutionCallbacks, jobs: JobQueue,
    locks: DistributedLocks, running: RunningTasks, issuer: TokenIssuer, identity: IdentityStore, logger: Logger
  ) {
    self.callbacks = callbacks
    self.store = store
    self.agents = agents
    self.runner = runner
    self.cache = cache
    self.jobs = jobs
    self.locks = locks
    self.running = running
    self.issuer = issuer
    self.identity = identity
    self.logger = logger
  }

  public struct Start: Sendable {
    public var agentID: UUID
    public var input: JSONValue
    public var workflowID: UUID?
    public var parentID: UUID?
    public var retryCount: Int
    public var maxRetries: Int
    public var requestID: UUID?
    public var sync: Bool
    /// Where events go (checked by `ExecutionCallbacks.checked`).
    public var callback: ExecutionCallback?
    /// Files for the file_upload plugin.
    public var files: Files

    /// An execution's files: new ones, or those of the execution it retries.
    public enum Files: Sendable {
      case attached([ExecutionFile])
      /// A retry (RetryExecution or an automatic one): the parent's files, and it must be the
      /// parent's only retry.
      case retrying(UUID)
    }

    public init(
      agentID: UUID, input: JSONValue, workflowID: UUID?, parentID: UUID?, retryCount: Int = 0, maxRetries: Int, requestID: UUID?, sync: Bool,
      callback: ExecutionCallback? = nil, files: Files = .attached([])
    ) {
      self.callback = callback
      self.files = files
      self.agentID = agentID
      self.input = input
      self.workflowID = workflowID
      self.parentID = parentID
      self.retryCount = retryCount
      self.maxRetries = maxRetries
      self.requestID = requestID
      self.sync = sync
    }
  }

  /// Starts an execution of the caller's active agent. A request id already used returns that
  /// execution; while the first call with it is still creating one, `lock:execution:{request}`
  /// makes the second wait for it instead of making another.
  public func start(_ start: Start, caller: Caller) async throws -> Execution {
    if let problem = start.input.problem(maxDepth: 16, maxBytes: Execution.maxInputBytes) {
      throw AgentError.invalidArgument(field: "input", reason: problem)
    }
    guard case .object(let fields) = start.input, let message = fields["message"] else {
      throw AgentError.invalidArgument(field: "input", reason: "must be an object with a message")
    }
    guard case .string(let text) = message, !text.isEmpty, text.utf8.count <= Execution.maxMessageBytes else {
      throw AgentError.invalidArgument(field: "input.message", reason: "must be 1 to \(Execution.maxMessageBytes) bytes of text")
    }
    guard (0...10).contains(start.maxRetries) else { throw AgentError.invalidArgument(field: "max_retries", reason: "must be 0 to 10") }
    guard let agent = try await self.agents.agent(start.agentID, owner: caller.userID) else { throw AgentError.notFound("Agent not found") }
    if let parentID = start.parentID, try await self.store.execution(parentID, owner: caller.userID) == nil {
      throw AgentError.invalidArgument(field: "parent_execution_id", reason: "is not an execution of yours")
    }
    guard agent.status == .active else {
      throw AgentError.failedPrecondition("The agent is \(agent.status.rawValue); only active agents run")
    }
    var files: [ExecutionFile] = []
    if case .attached(let attached) = start.files, !attached.isEmpty {
      let plugins = try await self.agents.enabledPlugins(of: agent.id)
      guard let upload = plugins.first(where: { $0.kind == .fileUpload }) else {
        throw AgentError.failedPrecondition("Files need an enabled file_upload plugin on the agent")
      }
      files = try ExecutionFile.checked(attached, limit: upload.config.objectValue?["max_files"]?.intValue ?? ExecutionFile.maxFiles)
    }

    var lease: DistributedLocks.Lease?
    if let requestID = start.requestID {
      lease = try await self.waitForLock("execution:\(caller.userID.lowercasedString):\(requestID.lowercasedString)")
    }
    let created: (execution: Execution, created: Bool)
    let new = ExecutionStore.NewExecution(
      agentID: agent.id, userID: caller.userID, workflowID: start.workflowID, parentID: start.parentID, input: start.input,
      retryCount: start.retryCount, maxRetries: start.maxRetries, requestID: start.requestID, callback: start.callback)
    let lines = [ExecutionLog.Pending(.info, "Execution created", metadata: ["sync": .bool(start.sync)])]
    do {
      if start.sync, case .attached(let attached) = start.files, attached.isEmpty {
        // One statement is the whole write; this call runs it next, so its status cannot go back.
        created = try await self.store.insert(new, lines: lines)
        if created.created { await self.cache.write(created.execution) }
      } else {
        created = try await self.store.insert(new, lines: lines) { connection, execution in
          switch start.files {
          case .attached:
            try await self.store.attach(files, to: execution.id, in: connection)
          case .retrying(let parent):
            // One retry per execution: a second (a concurrent one included) is refused.
            if let earlier = try await self.store.retryOfParent(parent, other: execution.id, in: connection) {
              throw AgentError.failedPrecondition("The execution was retried already, as \(earlier.lowercasedString); retry that one")
            }
            try await self.store.copyFiles(from: parent, to: execution.id, in: connection)
          }
          // Before the commit: a job may start it at once after, and its status must not go back.
          await self.cache.write(execution)
          guard !start.sync else { return }
          try await self.jobs.enqueue(
            Self.jobType, payload: Self.payload(execution.id, caller: caller),
            options: JobOptions(dedupKey: "execution:\(execution.id.lowercasedString)", maxAttempts: 3), in: connection)
        }
      }
    } catch {
      if let lease { _ = try? await self.locks.release(lease) }
      throw error
    }
    if let lease { _ = try? await self.locks.release(lease) }
    guard created.created else { return created.execution }
    let id = created.execution.id
    guard start.sync else {
      return created.execution
    }
    // Run now, as the caller (their credentials go with every plugin call).
    do {
      return try await self.runLocked(id, known: created.execution, agent: agent) { nil }
    } catch {
      // The caller went away before it ran, or the run could not be recorded (the database went
      // away): end it here rather than leave it to the sweep.
      let cancelled = Task.isCancelled || error is CancellationError || (error as? RPCError)?.code == .cancelled
      let store = self.store, cache = self.cache, onStatusChange = self.callbacks.onStatusChange
      _ = try? await Task {
        let ended = try await store.finish(
          id, status: cancelled ? .cancelled : .failed, output: nil,
          error: cancelled ? nil : .init(code: "internal", message: "The execution could not be recorded"), milliseconds: nil, tokens: nil,
          cost: nil, then: onStatusChange)
        if let ended { await cache.write(ended) }
      }.value
      throw error
    }
  }

  /// Runs the execution while holding `lock:execution:{id}` (seed §4.2.6: 30 s, renewed every
  /// 10 s while it runs, so a crashed worker's lock lapses soon), so no two workers run one
  /// execution; known to `running` meanwhile, so a cancel reaches it. When another worker holds
  /// the lock: the execution as it is now, or with `retryLater` an error (the job tries again).
  private func runLocked(
    _ id: UUID, known: Execution? = nil, agent: Agent? = nil, retryLater: Bool = false, credentials: @escaping ExecutionRunner.Credentials
  ) async throws -> Execution {
    let locks = self.locks
    var lease: DistributedLocks.Lease?
    var redisDown = false
    do {
      lease = try await locks.acquire("execution:\(id.lowercasedString)", ttl: .seconds(30))
    } catch {
      redisDown = true  // The job's claim still makes one worker run it.
    }
    if lease == nil && !redisDown {
      guard retryLater else { return try await self.store.execution(id) ?? { throw AgentError.notFound("Execution not found") }() }
      // A job whose worker died comes back when its lease lapses, and the dead worker's lock
      // lapses about then too: wait for it rather than spend an attempt.
      let deadline = ContinuousClock.now + .seconds(40)
      while lease == nil, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(500))
        lease = try? await locks.acquire("execution:\(id.lowercasedString)", ttl: .seconds(30))
      }
      if lease == nil { throw AgentError.unavailable("Another worker runs execution \(id.lowercasedString)") }
    }
    let renewal = lease.map { held in
      Task {
        await Periodic.run(every: .seconds(10), starting: .afterInterval, logger: self.logger, failure: "Could not extend an execution's lease") {
          _ = try await locks.extend(held, ttl: .seconds(30))
        }
      }
    }
    defer {
      renewal?.cancel()
      if let lease { Task { _ = try? await locks.release(lease) } }
    }
    return try await self.running.run(id) { try await self.runner.run(id, known: known, agent: agent, credentials: credentials) }
  }

  /// Takes `lock:{name}` (seed §4.2.6), waiting up to 10 s for another holder.
  private func waitForLock(_ name: String) async throws -> DistributedLocks.Lease? {
    let deadline = ContinuousClock.now + .seconds(10)
    while ContinuousClock.now < deadline {
      do {
        // Short: the database's unique request id is what makes one execution; the lock only
        // spares the second caller a failed insert, and a crashed holder's lapses soon.
        if let lease = try await self.locks.acquire(name, ttl: .seconds(30)) { return lease }
      } catch {
        return nil  // Redis is down: the database's unique request id still makes one execution.
      }
      try await Task.sleep(for: .milliseconds(20))
    }
    throw AgentError.unavailable("Another call with this request id is still starting the execution; retry")
  }

  /// The permissions plugin calls need: rendering the persona, searching and (file_upload)
  /// writing knowledge, asking text-to-SQL, running code.
  static let pluginPermissions: Set<Permission> = [
    "persona:read", "knowledge:read", "knowledge:write", "sql:read", "sql:execute", "code:execute",
  ]

  /// Least privilege for a background run's calls: of the permissions its caller had, only
  /// those plugin calls use (all of them for a caller granted everything, `*`).
  static func jobPermissions(granted: [Permission]) -> [Permission] {
    if granted.contains(.all) { return Self.pluginPermissions.sorted { $0.rawValue < $1.rawValue } }
    return granted.filter(Self.pluginPermissions.contains)
  }

  /// What a background run needs to act as its caller: the permissions they had.
  static func payload(_ id: UUID, caller: Caller) -> JSONValue {
    .object([
      "execution_id": .string(id.lowercasedString),
      "permissions": .array(caller.permissions.map(\.rawValue).sorted().map { .string($0) }),
      "email": caller.email.map { .string($0) } ?? .null,
    ])
  }

  /// Runs queued executions: as their caller, through tokens signed here for 5 minutes with the
  /// caller's permissions at the time they started it. A failure that retrying may fix (a
  /// plugin's service UNAVAILABLE) becomes a new attempt, a child execution, up to max_retries.
  public var handler: JobHandler {
    JobHandler(type: Self.jobType, concurrency: 8, retryBackoff: (.seconds(1), .seconds(30))) { job, logger in
      guard let payload = (try? JSONValue(jsonText: job.payload))?.objectValue,
        let id = payload["execution_id"]?.stringValue.flatMap(UUID.init(strict:))
      else { throw PermanentJobFailure("not an execution: \(job.payload)") }
      guard let execution = try await self.store.execution(id) else { return }
      let permissions = Self.jobPermissions(granted: PlatformPeers.strings(payload["permissions"]).map(Permission.init(rawValue:)))
      let issuer = self.issuer, identity = self.identity
      let userID = execution.userID
      let email = payload["email"]?.stringValue
      let finished = try await self.runLocked(id, known: execution, retryLater: true) {
        // A token per call, and only while the user may still sign in: a deactivated or
        // deleted user's runs stop at their next call.
        guard let user = try await identity.user(id: userID), user.canSignIn else {
          throw Execution.Failure(code: "user_inactive", message: "The user who started the execution was deactivated or deleted")
        }
        return try await issuer.issue(
          userID: userID, email: email, roles: [], permissions: permissions, sessionID: nil, lifetime: .seconds(300), now: Date())
      }
      try await self.retryIfTransient(finished, payload: .object(payload))
    }
  }

  /// A failed run whose failure was transient runs again as a child, after a backoff.
  private func retryIfTransient(_ finished: Execution, payload: JSONValue) async throws {
    guard finished.status == .failed, finished.error?.details["transient"] == "true", finished.retryCount < finished.maxRetries else { return }
    let delay = Double(1 << min(finished.retryCount, 5))
    // A request id of its own, derived from the parent: a handler run twice makes one child.
    let child = try await self.store.insert(
      .init(
        agentID: finished.agentID, userID: finished.userID, workflowID: finished.workflowID, parentID: finished.id, input: finished.input,
        retryCount: finished.retryCount + 1, maxRetries: finished.maxRetries, requestID: Self.retryRequestID(of: finished.id),
        callback: try await self.store.callback(of: finished.id))
    ) { connection, child in
      try await self.store.copyFiles(from: finished.id, to: child.id, in: connection)
      var fields = payload.objectValue ?? [:]
      fields["execution_id"] = .string(child.id.lowercasedString)
      try await self.jobs.enqueue(
        Self.jobType, payload: .object(fields),
        options: JobOptions(dedupKey: "execution:\(child.id.lowercasedString)", maxAttempts: 3, runAt: Date().addingTimeInterval(delay)),
        in: connection)
    }
    try await self.store.log(
      finished.id, .info, "Retried automatically", metadata: ["child_execution_id": .string(child.execution.id.lowercasedString)])
  }

  /// The request id of the automatic retry of `parent`: SHA-256 of its id, as a version 5 UUID.
  static func retryRequestID(of parent: UUID) -> UUID {
    UUID(derivedFrom: "automatic-retry:\(parent.lowercasedString)")
  }

  /// The caller's execution: a finished one from Redis when it is there.
  public func execution(_ id: UUID, caller: UUID) async throws -> Execution {
    if let cached = await self.cache.finished(id), cached.userID == caller { return cached }
    guard let execution = try await self.store.execution(id, owner: caller) else { throw AgentError.notFound("Execution not found") }
    return execution
  }

  public func list(
    caller: UUID, agentID: UUID?, status: Execution.Status?, workflowID: UUID?, after: ExecutionStore.ListCursor?, limit: Int
  ) async throws -> (executions: [Execution], total: Int, more: Bool) {
    try await self.store.list(owner: caller, agentID: agentID, status: status, workflowID: workflowID, after: after, limit: limit)
  }

  /// Stops the runs of executions cancelled with their deleted agent (here, or on the instance
  /// running them), and tells their callbacks.
  public func stopCancelled(_ ids: [UUID], reason: String) async {
    for id in ids {
      await self.running.cancel(id)
      try? await self.store.log(id, .warning, reason)
      guard let cancelled = try? await self.store.execution(id) else { continue }
      await self.cache.write(cancelled)
      await self.callbacks.notify(cancelled, event: "cancelled")
    }
  }

  /// Cancels a pending or running execution of the caller's and stops its run (here, or on the
  /// instance running it) within a second; idempotent on a cancelled one.
  public func cancel(_ id: UUID, caller: UUID) async throws -> Execution {
    guard let current = try await self.store.execution(id, owner: caller) else { throw AgentError.notFound("Execution not found") }
    if current.status == .cancelled { return current }
    if current.status.isFinished {
      throw AgentError.failedPrecondition("The execution has already ended (\(current.status.rawValue))")
    }
    guard let cancelled = try await self.store.cancel(id, owner: caller, then: self.callbacks.onStatusChange) else {
      throw AgentError.notFound("Execution not found")
    }
    await self.running.cancel(id)
    if cancelled.status == .cancelled {
      try? await self.store.log(id, .warning, "Cancelled by the caller")
      await self.cache.write(cancelled)
      return cancelled
    }
    throw AgentError.failedPrecondition("The execution has already ended (\(cancelled.status.rawValue))")
  }

  /// Runs a finished, unsuccessful execution again as its child.
  public func retry(_ id: UUID, caller: Caller, requestID: UUID?, sync: Bool) async throws -> Execution {
    guard let parent = try await self.store.execution(id, owner: caller.userID) else { throw AgentError.notFound("Execution not found") }
    guard [.failed, .cancelled, .timeout].contains(parent.status) else {
      throw AgentError.failedPrecondition("Only a failed, cancelled or timed-out execution can be retried (this one is \(parent.status.rawValue))")
    }
    guard parent.retryCount < parent.maxRetries else {
      throw AgentError.failedPrecondition("The execution has been retried \(parent.retryCount) times, its max_retries (\(parent.maxRetries))")
    }
    return try await self.start(
      Start(
        agentID: parent.agentID, input: parent.input, workflowID: parent.workflowID, parentID: parent.id, retryCount: parent.retryCount + 1,
        maxRetries: parent.maxRetries, requestID: requestID, sync: sync, callback: try await self.store.callback(of: parent.id),
        files: .retrying(parent.id)),
      caller: caller)
  }

  public func logs(_ id: UUID, caller: UUID, minLevel: ExecutionLog.Level, afterID: Int64, limit: Int) async throws -> [ExecutionLog] {
    guard let execution = try await self.store.execution(id, owner: caller) else { throw AgentError.notFound("Execution not found") }
    return try await self.store.logs(of: execution, minLevel: minLevel, afterID: afterID, limit: limit)
  }

  /// What a watcher sees: the execution whenever its status or progress changes, and its new
  /// log lines, until it has ended. Read from the database every `interval` by the watcher's
  /// own task, so a slow watcher never slows the run.
  public func watch(
    _ id: UUID, caller: UUID, afterLogID: Int64, interval: Duration = .milliseconds(100),
    send: (WatchEvent) async throws -> Void
  ) async throws {
    guard var current = try await self.store.execution(id, owner: caller) else { throw AgentError.notFound("Execution not found") }
    try await send(.execution(current))
    var lastLog = afterLogID
    var outputSent = 0
    while true {
      let lines = try await self.store.logs(of: current, minLevel: .debug, afterID: lastLog, limit: 200)
      for line in lines { try await send(.log(line)) }
      lastLog = lines.last?.id ?? lastLog
      // The model's text as it streams (in Redis, an hour; replayed from the start).
      let pieces = await self.cache.modelOutput(id, from: outputSent)
      for piece in pieces { try await send(.modelOutput(round: piece.round, text: piece.text)) }
      outputSent += pieces.count
      if current.status.isFinished && lines.count < 200 && pieces.count < 500 { return }
      try await Task.sleep(for: interval)
      guard let latest = try await self.store.execution(id, owner: caller) else { return }
      if latest.status != current.status || latest.progress != current.progress {
        // Lines written before the change come first.
        let before = try await self.store.logs(of: latest, minLevel: .debug, afterID: lastLog, limit: 200)
        for line in before { try await send(.log(line)) }
        lastLog = before.last?.id ?? lastLog
        try await send(.execution(latest))
      }
      current = latest
    }
  }

  /// Fails, every minute until cancelled, the executions no one runs any more (a sync run whose
  /// service died, a job out of attempts) once older than `age`; the documents their runs may
  /// have made of attached files get a job that deletes them, in the same transaction.
  public func failInterrupted(olderThan age: Duration) async {
    await Periodic.run(every: .seconds(60), logger: self.logger, failure: "Could not check for interrupted executions") {
      let onStatusChange = self.callbacks.onStatusChange
      let failed = try await self.store.failInterrupted(olderThan: age) { connection, execution in
        try await onStatusChange(connection, execution)
        if try await self.store.hasFiles(execution.id),
          try await self.agents.enabledPlugins(of: execution.agentID).contains(where: \.uploadsToKnowledge)
        {
          try await self.runner.documents.scheduleDeletion(of: execution.id, owner: execution.userID, in: connection)
        }
      }
      if !failed.isEmpty {
        self.logger.warning("Failed executions a stopped service left pending or running", metadata: ["count": "\(failed.count)"])
      }
      for execution in failed {
        await self.cache.write(execution)
      }
    }
  }

  public enum WatchEvent: Sendable {
    case execution(Execution)
    case log(ExecutionLog)
    case modelOutput(round: Int, text: String)
  }
}
