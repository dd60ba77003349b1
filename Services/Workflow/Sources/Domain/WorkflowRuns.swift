public import Foundation
public import Logging
public import PlatformCore
internal import GRPCRuntime
internal import Synchronization

/// Runs of workflows: started (by a call or a schedule), run by durable jobs, read, listed,
/// cancelled, resumed and watched.
public struct WorkflowRuns: Sendable {
  let workflows: WorkflowStore
  let executions: ExecutionStore
  let runner: WorkflowRunner
  let jobs: JobQueue
  let running: RunningTasks
  /// Seals run credentials in the database (WORKFLOW_ENCRYPTION_KEY); without it they are kept
  /// in this process only, and a run resumed elsewhere cannot call other services.
  let secrets: SecretBox?
  let credentials: CredentialMemory
  /// Wakes the sync callers waiting for a run this process ran.
  let finished = RunSignals()
  /// The snapshot id of each workflow's current version, once this process has run it.
  let snapshotIDs = VersionedMemo<UUID, UUID>(maxEntries: 10_000, maxBytes: 10_000 * 64)
  let limits: WorkflowLimits
  let logger: Logger

  public static let jobType = "workflow.run"
  public static let scheduleJobType = "workflow.schedule"
  public static let cancelChannel = "workflow:execution:cancel"

  public init(
    workflows: WorkflowStore, executions: ExecutionStore, runner: WorkflowRunner, jobs: JobQueue, running: RunningTasks, secrets: SecretBox?,
    limits: WorkflowLimits, logger: Logger
  ) {
    self.workflows = workflows
    self.executions = executions
    self.runner = runner
    self.jobs = jobs
    self.running = running
    self.secrets = secrets
    self.credentials = CredentialMemory()
    self.limits = limits
    self.logger = logger
  }

  public struct Start: Sendable {
    public var workflowID: UUID
    public var inputs: JSONValue
    /// Run only if the workflow is at this version.
    public var version: Int?
    /// Run this snapshot's version instead of the current definition.
    public var snapshotVersion: Int?
    public var requestID: UUID?
    public var sync: Bool
    public var scheduleID: String?

    public init(
      workflowID: UUID, inputs: JSONValue, version: Int? = nil, snapshotVersion: Int? = nil, requestID: UUID? = nil, sync: Bool = false,
      scheduleID: String? = nil
    ) {
      self.workflowID = workflowID
      self.inputs = inputs
      self.version = version
      self.snapshotVersion = snapshotVersion
      self.requestID = requestID
      self.sync = sync
      self.scheduleID = scheduleID
    }
  }

  /// Starts a run of the owner's workflow: its snapshot (written for the current version if it
  /// has none), its node rows and its job, in one transaction. A request id already used
  /// returns that run. With `sync`, waits for its end (until `waitUntil`).
  public func start(_ start: Start, owner: UUID, credential: RunCredential?, waitUntil: ContinuousClock.Instant? = nil) async throws -> WorkflowExecution {
    if let problem = start.inputs.problem(maxDepth: NestingLimit.defaultDepth, maxBytes: WorkflowExecution.maxInputBytes) {
      throw ServiceError.invalidArgument(field: "inputs", reason: problem)
    }
    guard let workflow = try await self.workflows.workflow(start.workflowID, owner: owner) else { throw ServiceError.notFound("Workflow not found") }
    guard workflow.status.isRunnable else { throw ServiceError.failedPrecondition("The workflow is \(workflow.status.rawValue); it does not run") }
    if let version = start.version, version != workflow.version {
      throw ServiceError.failedPrecondition("The workflow is at version \(workflow.version), not \(version)")
    }
    let snapshotID: UUID
    let version: Int
    let definition: WorkflowDefinition
    if let snapshotVersion = start.snapshotVersion {
      guard let snapshot = try await self.workflows.snapshot(of: workflow.id, version: snapshotVersion) else {
        throw ServiceError.notFound("The workflow has no snapshot of version \(snapshotVersion)")
      }
      (snapshotID, version, definition) = (snapshot.id, snapshot.workflowVersion, snapshot.definition)
    } else {
      (snapshotID, version, definition) = (UUID(), workflow.version, workflow.definition)
    }
    let plan = WorkflowPlan(definition)
    guard plan.isValid else { throw ServiceError.failedPrecondition("The workflow is not valid: \(Workflows.describe(plan))") }
    let inputs = try Self.checkedInputs(start.inputs, plan: plan)
    let snapshot = start.snapshotVersion == nil ? try await self.snapshotID(of: workflow, owner: owner) : snapshotID
    let sealed = try credential.flatMap { credential in
      try self.secrets.map { try $0.seal(Array(credential.sealedText.utf8), context: "workflow-run-credential") }
    }
    let deadline = Date().addingTimeInterval(Double(self.limits.runTimeout.components.seconds))
    let created = try await self.executions.insert(
      .init(
        workflowID: workflow.id, snapshotID: snapshot, workflowVersion: version, userID: owner, input: inputs,
        nodes: plan.order.compactMap { id in plan.nodes[id].map { (id, $0.kind.rawValue) } }, requestID: start.requestID,
        scheduleID: start.scheduleID, deadline: deadline, credential: sealed)
    ) { connection, execution in
      if let credential, self.secrets == nil { self.credentials.keep(credential, for: execution.id, until: deadline) }
      try await self.enqueue(execution, in: connection)
    }
    guard start.sync, created.created || !created.execution.status.isFinished else { return created.execution }
    return try await self.wait(for: created.execution.id, until: waitUntil ?? ContinuousClock.now + self.limits.runTimeout)
  }

  /// The snapshot of the workflow's current version, written by the first run of that version;
  /// remembered (a version's snapshot never changes).
  private func snapshotID(of workflow: Workflow, owner: UUID) async throws -> UUID {
    if let known = self.snapshotIDs.value(for: workflow.id, version: Int64(workflow.version)) { return known }
    let id = try await self.workflows.snapshot(workflow, createdBy: owner, published: false)
    self.snapshotIDs.store(id, version: Int64(workflow.version), bytes: 64, for: workflow.id)
    return id
  }

  private func enqueue(_ execution: WorkflowExecution, in connection: DatabaseConnection) async throws {
    try await self.jobs.enqueue(
      Self.jobType, payload: .object(["execution_id": .string(execution.id.lowercasedString)]),
      // A run is retried by its job only for failures of the platform (the database went
      // away); node failures are the run's own outcome.
      options: JobOptions(dedupKey: "workflow-run:\(execution.id.lowercasedString):\(execution.resumeCount)", maxAttempts: 20), in: connection)
  }

  /// The run once it has ended, or as it is at `until`: woken at once when this process ran it,
  /// else (another replica runs it) it looks every 100 ms.
  func wait(for id: UUID, until: ContinuousClock.Instant) async throws -> WorkflowExecution {
    while true {
      guard let execution = try await self.executions.execution(id) else { throw ServiceError.notFound("Execution not found") }
      if execution.status.isFinished || ContinuousClock.now >= until { return execution }
      await self.finished.wait(for: id, upTo: min(.milliseconds(100), until - ContinuousClock.now))
    }
  }

  /// `inputs` against the start node's declared fields (`data.inputs`): required ones present,
  /// each of its type (INVALID_ARGUMENT naming `inputs.<name>`).
  static func checkedInputs(_ inputs: JSONValue, plan: WorkflowPlan) throws(ServiceError) -> JSONValue {
    let given: [String: JSONValue]
    switch inputs {
    case .null: given = [:]
    case .object(let object): given = object
    default: throw .invalidArgument(field: "inputs", reason: "must be an object")
    }
    guard let start = plan.startID.flatMap({ plan.nodes[$0] }), let fields = start.data["inputs"]?.objectValue else { return .object(given) }
    for (name, field) in fields.sorted(by: { $0.key < $1.key }) {
      let spec = field.objectValue ?? [:]
      guard let value = given[name], value != .null else {
        if spec["required"] == .bool(true) { throw .invalidArgument(field: "inputs.\(name)", reason: "is required") }
        continue
      }
      if let type = spec["type"]?.stringValue {
        let actual = value.typeName
        let matches = actual == type || (type == "number" && actual == "integer")
        guard matches else { throw .invalidArgument(field: "inputs.\(name)", reason: "must be a \(type) (it is a \(actual))") }
      }
    }
    return .object(given)
  }

  /// Runs queued runs: as the user who started them, with the credential they came with.
  public var handler: JobHandler {
    JobHandler(type: Self.jobType, concurrency: 32, retryBackoff: (.seconds(1), .seconds(30))) { job, logger in
      guard let payload = (try? JSONValue(jsonText: job.payload))?.objectValue,
        let id = payload["execution_id"]?.stringValue.flatMap(UUID.init(strict:))
      else { throw PermanentJobFailure("not a workflow execution: \(job.payload)") }
      let credential = try await self.credential(of: id)
      defer { self.finished.signal(id) }
      let execution = try await self.running.run(id) { try await self.runner.run(id, credential: credential) }
      // Kept for a run that stopped unfinished here (its job comes back here, or a resume).
      if execution?.status.isFinished != false { self.credentials.forget(id) }
    }
  }

  /// The credential a run calls other services with: kept here, or sealed in its row.
  func credential(of id: UUID) async throws -> RunCredential? {
    if let kept = self.credentials.credential(for: id) { return kept }
    guard let secrets = self.secrets, let stored = try await self.executions.credential(of: id) else { return nil }
    guard let plaintext = try? secrets.open(stored.sealed, keyID: stored.keyID, context: "workflow-run-credential") else { return nil }
    return RunCredential(sealedText: String(decoding: plaintext, as: UTF8.self))
  }

  public func execution(_ id: UUID, owner: UUID) async throws -> (WorkflowExecution, [NodeExecution]) {
    guard let execution = try await self.executions.execution(id, owner: owner) else { throw ServiceError.notFound("Execution not found") }
    return (execution, try await self.executions.nodes(of: id))
  }

  public func list(
    owner: UUID, workflowID: UUID?, status: WorkflowExecution.Status?, after: ExecutionStore.ListCursor?, limit: Int
  ) async throws -> (executions: [WorkflowExecution], total: Int, more: Bool) {
    try await self.executions.list(owner: owner, workflowID: workflowID, status: status, after: after, limit: limit)
  }

  /// Cancels a pending or running run and stops its nodes (here, or on the instance running
  /// it; their calls to other services are cancelled with them); idempotent on a cancelled one.
  public func cancel(_ id: UUID, owner: UUID) async throws -> WorkflowExecution {
    guard let current = try await self.executions.execution(id, owner: owner) else { throw ServiceError.notFound("Execution not found") }
    if current.status == .cancelled { return current }
    guard !current.status.isFinished else { throw ServiceError.failedPrecondition("The execution has already ended (\(current.status.rawValue))") }
    guard let cancelled = try await self.executions.cancel(id, owner: owner) else {
      let now = try await self.executions.execution(id, owner: owner)
      if let now, now.status == .cancelled { return now }
      throw ServiceError.failedPrecondition("The execution has already ended (\(now?.status.rawValue ?? "gone"))")
    }
    _ = await self.running.cancel(id)
    return cancelled
  }

  /// Runs a failed, cancelled or timed-out run again from its unfinished nodes: completed ones
  /// keep their outputs and do not run again. `nodeData` changes the data of nodes that have
  /// not completed. Idempotent on a pending or running run.
  public func resume(_ id: UUID, owner: UUID, nodeData: [String: [String: JSONValue]], credential: RunCredential?) async throws -> WorkflowExecution {
    guard let current = try await self.executions.execution(id, owner: owner) else { throw ServiceError.notFound("Execution not found") }
    if !current.status.isFinished { return current }
    guard current.status != .completed else { throw ServiceError.failedPrecondition("The execution completed; there is nothing to resume") }
    guard let workflow = try await self.workflows.workflow(current.workflowID, owner: owner), workflow.status != .archived else {
      throw ServiceError.failedPrecondition("The workflow was deleted or archived")
    }
    if !nodeData.isEmpty {
      let nodes = try await self.executions.nodes(of: id)
      for (nodeID, data) in nodeData.sorted(by: { $0.key < $1.key }) {
        guard let node = nodes.first(where: { $0.nodeID == nodeID }) else {
          throw ServiceError.invalidArgument(field: "node_data.\(nodeID.prefix(100))", reason: "names no node of this run")
        }
        guard node.status != .completed && node.status != .skipped else {
          throw ServiceError.failedPrecondition("Node \(nodeID) \(node.status.rawValue); only nodes that did not complete take changed data")
        }
        if let problem = JSONValue.object(data).problem(maxDepth: NestingLimit.defaultDepth, maxBytes: 65536) {
          throw ServiceError.invalidArgument(field: "node_data.\(nodeID)", reason: problem)
        }
      }
    }
    let sealed = try credential.flatMap { credential in
      try self.secrets.map { try $0.seal(Array(credential.sealedText.utf8), context: "workflow-run-credential") }
    }
    let deadline = Date().addingTimeInterval(Double(self.limits.runTimeout.components.seconds))
    guard let resumed = try await self.executions.resume(id, owner: owner, overrides: nodeData, deadline: deadline, credential: sealed, then: { connection, execution in
      if let credential, self.secrets == nil { self.credentials.keep(credential, for: execution.id, until: deadline) }
      try await self.enqueue(execution, in: connection)
    }) else {
      // Resumed by a concurrent call.
      return try await self.executions.execution(id, owner: owner) ?? { throw ServiceError.notFound("Execution not found") }()
    }
    return resumed
  }

  public enum WatchEvent: Sendable {
    case execution(WorkflowExecution, [NodeExecution])
    case node(NodeExecution, NodeEvent)
  }

  /// The run, then each node event as it is recorded, and the run again whenever its status
  /// changes, until it has ended. Read from the database every `interval` by the watcher's own
  /// task, so a slow watcher never slows the run.
  public func watch(
    _ id: UUID, owner: UUID, interval: Duration = .milliseconds(100), until: ContinuousClock.Instant, send: (WatchEvent) async throws -> Void
  ) async throws {
    guard var current = try await self.executions.execution(id, owner: owner) else { throw ServiceError.notFound("Execution not found") }
    try await send(.execution(current, try await self.executions.nodes(of: id)))
    var lastEvent: Int64 = 0
    while true {
      let events = try await self.executions.events(of: id, after: lastEvent, limit: 500)
      if !events.isEmpty {
        let nodes = try await self.executions.nodes(of: id)
        for event in events {
          guard var node = nodes.first(where: { $0.nodeID == event.nodeID }) else { continue }
          // The node as the event saw it: its attempt, and its output only once it finished.
          node.attempts = event.attempt
          if event.kind == .started { node.status = .running; node.output = nil; node.error = nil }
          try await send(.node(node, event))
        }
        lastEvent = events.last!.id
      }
      if current.status.isFinished && events.count < 500 { return }
      guard ContinuousClock.now < until else { throw RPCError(.deadlineExceeded, "WatchWorkflowExecution ends after an hour; call it again") }
      if events.count < 500 { try await Task.sleep(for: interval) }
      guard let latest = try await self.executions.execution(id, owner: owner) else { return }
      if latest.status != current.status {
        // Events recorded before the change come first.
        let before = try await self.executions.events(of: id, after: lastEvent, limit: 500)
        if !before.isEmpty {
          let nodes = try await self.executions.nodes(of: id)
          for event in before {
            guard var node = nodes.first(where: { $0.nodeID == event.nodeID }) else { continue }
            node.attempts = event.attempt
            try await send(.node(node, event))
          }
          lastEvent = before.last!.id
        }
        try await send(.execution(latest, try await self.executions.nodes(of: id)))
      }
      current = latest
    }
  }

  // MARK: - Schedules

  /// Every `interval` until cancelled: each enabled schedule's fire times of the last
  /// `window` become one job each (the jobs table's dedup key makes one per fire time across
  /// replicas), and that job starts the run. Fire times missed for longer (the service was
  /// down) are not caught up.
  public func schedule(interval: Duration = .seconds(5), window: TimeInterval = 120) async {
    await Periodic.run(every: interval, logger: self.logger, failure: "Could not check workflow schedules") {
      try await self.enqueueDueFires(now: Date(), window: window)
    }
  }

  func enqueueDueFires(now: Date, window: TimeInterval) async throws {
    var after: UUID?
    while true {
      let page = try await self.workflows.scheduled(after: after, limit: 500)
      for workflow in page {
        try await self.enqueueDueFires(of: workflow, now: now, window: window)
      }
      guard page.count == 500, let last = page.last else { return }
      after = last.id
    }
  }

  private func enqueueDueFires(of workflow: WorkflowStore.Scheduled, now: Date, window: TimeInterval) async throws {
    for schedule in workflow.schedules where schedule.enabled {
      guard let cron = try? CronSchedule(parsing: schedule.cron), let zone = schedule.zone else { continue }
      for fire in cron.fireTimes(after: now.addingTimeInterval(-window), through: now, in: zone, limit: 10) {
        let key = Self.fireKey(workflow: workflow.id, schedule: schedule.id, fire: fire)
        try await self.jobs.enqueue(
          Self.scheduleJobType,
          payload: .object([
            "workflow_id": .string(workflow.id.lowercasedString), "schedule_id": .string(schedule.id),
            "fire_time": .number(fire.timeIntervalSince1970), "user_id": .string(workflow.userID.lowercasedString),
          ]), options: JobOptions(dedupKey: key, maxAttempts: 5))
      }
    }
  }

  static func fireKey(workflow: UUID, schedule: String, fire: Date) -> String {
    "workflow-schedule:\(workflow.lowercasedString):\(schedule):\(Int64(fire.timeIntervalSince1970))"
  }

  /// Starts the run of one fire time (its request id is derived from the fire time, so a
  /// handler run twice starts one run).
  public var scheduleHandler: JobHandler {
    JobHandler(type: Self.scheduleJobType, concurrency: 4) { job, logger in
      guard let payload = (try? JSONValue(jsonText: job.payload))?.objectValue,
        let workflowID = payload["workflow_id"]?.stringValue.flatMap(UUID.init(strict:)),
        let owner = payload["user_id"]?.stringValue.flatMap(UUID.init(strict:)), let scheduleID = payload["schedule_id"]?.stringValue,
        case .number(let seconds)? = payload["fire_time"]
      else { throw PermanentJobFailure("not a schedule fire: \(job.payload)") }
      guard let workflow = try await self.workflows.workflow(workflowID, owner: owner),
        let schedule = workflow.schedules.first(where: { $0.id == scheduleID && $0.enabled }), workflow.status.isRunnable
      else { return }
      let key = Self.fireKey(workflow: workflowID, schedule: scheduleID, fire: Date(timeIntervalSince1970: seconds))
      do {
        _ = try await self.start(
          Start(workflowID: workflowID, inputs: .object(schedule.inputs), requestID: Self.requestID(for: key), scheduleID: scheduleID), owner: owner,
          credential: schedule.openedKey(self.secrets).map { RunCredential(header: "x-api-key", value: $0) })
      } catch let error as ServiceError {
        throw PermanentJobFailure("\(error)")
      }
    }
  }

  /// A version 5 UUID derived from `key`.
  static func requestID(for key: String) -> UUID { UUID(derivedFrom: key) }
}

/// Run credentials kept in this process (when no secrets key lets them be sealed in the run's
/// row) while their runs may still run here: until the run finishes here, or its deadline has
/// passed (a run past its deadline stops without calling anyone; a resume keeps a new
/// credential). Runs that end elsewhere (another replica ran the job) or wait for a resume that
/// never comes are swept out once their deadline passes, so the memory holds at most the runs
/// started within one run timeout.
final class CredentialMemory: Sendable {
  private struct State {
    var entries: [UUID: (credential: RunCredential, until: Date)] = [:]
    /// The count at which expired entries are swept next: twice what the last sweep left, so a
    /// sweep costs O(1) per keep.
    var sweepAt = CredentialMemory.firstSweep
  }

  static let firstSweep = 64
  private let state = Mutex(State())

  func keep(_ credential: RunCredential, for id: UUID, until deadline: Date) {
    self.state.withLock { state in
      state.entries[id] = (credential, deadline)
      guard state.entries.count >= state.sweepAt else { return }
      let now = Date()
      state.entries = state.entries.filter { $0.value.until > now }
      state.sweepAt = max(Self.firstSweep, 2 * state.entries.count)
    }
  }

  func credential(for id: UUID) -> RunCredential? {
    self.state.withLock { state in state.entries[id].flatMap { $0.until > Date() ? $0.credential : nil } }
  }

  func forget(_ id: UUID) { _ = self.state.withLock { $0.entries.removeValue(forKey: id) } }

  /// Entries held, expired or not.
  var count: Int { self.state.withLock { $0.entries.count } }
}

/// Wakes tasks waiting for a run to end (sync RunWorkflow calls) when this process has run it.
final class RunSignals: Sendable {
  private struct Waiter {
    var token: UUID
    var continuation: CheckedContinuation<Void, Never>
  }

  private struct State {
    var waiters: [UUID: [Waiter]] = [:]
    /// Waits given up (timed out) before their continuation was registered.
    var abandoned: Set<UUID> = []
  }

  private let state = Mutex(State())

  /// Returns when `id` is signalled or after `timeout`, whichever comes first.
  func wait(for id: UUID, upTo timeout: Duration) async {
    let token = UUID()
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        await withTaskCancellationHandler {
          await withCheckedContinuation { continuation in
            let resumeNow = self.state.withLock { state in
              if state.abandoned.remove(token) != nil { return true }
              state.waiters[id, default: []].append(Waiter(token: token, continuation: continuation))
              return false
            }
            if resumeNow { continuation.resume() }
          }
        } onCancel: {
          let waiter = self.state.withLock { state -> Waiter? in
            if let index = state.waiters[id]?.firstIndex(where: { $0.token == token }) {
              let waiter = state.waiters[id]!.remove(at: index)
              if state.waiters[id]!.isEmpty { state.waiters[id] = nil }
              return waiter
            }
            state.abandoned.insert(token)
            return nil
          }
          waiter?.continuation.resume()
        }
      }
      group.addTask { try? await Task.sleep(for: timeout) }
      _ = await group.next()
      group.cancelAll()
    }
  }

  func signal(_ id: UUID) {
    let waiters = self.state.withLock { $0.waiters.removeValue(forKey: id) ?? [] }
    for waiter in waiters { waiter.continuation.resume() }
  }
}
