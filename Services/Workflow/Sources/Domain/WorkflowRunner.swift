public import Foundation
public import Logging
internal import PlatformCore
internal import Synchronization

/// The durable executor. A run is claimed under a fresh fencing token; every node move (start,
/// retry, completion, failure, skip) is committed, with its history entry, before the nodes
/// after it start; so a runner that stops at any point (a crash, a lost lease) leaves a state
/// another runner goes on from: completed nodes keep their outputs and never run again, nodes
/// that were in flight run again only when that is safe (their kind is idempotent or their
/// retry policy allows another attempt), and the history says which.
public struct WorkflowRunner: Sendable {
  let executions: ExecutionStore
  let workflows: WorkflowStore
  let executors: NodeExecutors
  let limits: WorkflowLimits
  let logger: Logger
  /// Snapshots never change: each one's plan is made once per process.
  let plans = PlanCache()

  public init(executions: ExecutionStore, workflows: WorkflowStore, executors: NodeExecutors, limits: WorkflowLimits, logger: Logger) {
    self.executions = executions
    self.workflows = workflows
    self.executors = executors
    self.limits = limits
    self.logger = logger
  }

  /// How one node's attempts ended.
  enum NodeResult: Sendable {
    case completed(String, output: JSONValue, tookFailBranch: Bool)
    /// Failed for good under on_error `fail`: the run fails.
    case failed(String, NodeFailure)
    case cancelled(String)
    /// The run is no longer this runner's (fenced out, or cancelled by a call).
    case lost(String)
    /// The run's deadline passed.
    case deadline
    /// The node's state could not be written (the database went away, after retries): the run
    /// stops here and its job tries again later, from what was committed.
    case storeUnavailable(String)
  }

  /// Runs (or goes on with) execution `id` until it ends or stops being this runner's.
  /// - Returns: the execution as it is then; nil if it does not exist.
  public func run(_ id: UUID, credential: RunCredential?) async throws -> WorkflowExecution? {
    let token = UUID()
    guard let execution = try await self.executions.claim(id, token: token) else { return try await self.executions.execution(id) }
    let plan: WorkflowPlan
    if let cached = self.plans.plan(for: execution.snapshotID) {
      plan = cached
    } else {
      guard let snapshot = try await self.workflows.snapshot(id: execution.snapshotID) else {
        return try await self.executions.finish(
          id, token: token, status: .failed, output: nil, error: NodeFailure(code: "snapshot_missing", message: "The workflow version it ran is gone"))
      }
      plan = self.plans.store(WorkflowPlan(snapshot.definition), for: snapshot.id)
    }
    guard plan.isValid else {
      let problems = plan.issues.filter { !$0.isWarning }.prefix(3).map(\.message).joined(separator: "; ")
      return try await self.executions.finish(
        id, token: token, status: .failed, output: nil, error: NodeFailure(code: "invalid_workflow", message: "The workflow is not runnable: \(problems)"))
    }
    let rows = try await self.executions.nodes(of: id)
    var state = RunState(plan: plan, input: execution.input, rows: rows)
    let steps = StepBudget(used: rows.reduce(0) { $0 + $1.attempts }, limit: self.limits.maxSteps)
    var overrides: [String: [String: JSONValue]] = [:]
    for row in rows { if let override = row.dataOverride { overrides[row.nodeID] = override } }

    // Nodes in flight when the last runner stopped (running), or stopped with it (cancelled by a
    // shutdown: the run itself was not cancelled, or it could not be claimed); and a failure it
    // committed without ending the run.
    var failure: NodeFailure?
    for row in rows where row.status == .failed {
      failure = failure ?? NodeFailure(code: "node_failed", message: "Node \(row.nodeID): \(row.error?.message ?? "failed")")
    }
    for row in rows where row.status == .running || row.status == .cancelled {
      guard let node = plan.nodes[row.nodeID] else { continue }
      let data = node.data.merging(overrides[row.nodeID] ?? [:]) { _, new in new }
      if node.kind.isIdempotent(data) || row.attempts < node.policy.maxAttempts {
        let why = node.kind.isIdempotent(data) ? "its kind (\(node.kind.rawValue)) is safe to run again" : "its retry policy allows another attempt"
        let result = try await self.executions.change(
          id, token: token,
          .init(row.nodeID, from: [.running, .cancelled], to: .pending, event: .interrupted, message: "Interrupted by a stop of the service; it runs again: \(why)"))
        guard result.written else { return try await self.executions.execution(id) }
        state.ended(row.nodeID, as: .pending)
      } else {
        let interrupted = NodeFailure(
          code: "interrupted",
          message: "Interrupted by a stop of the service after attempt \(row.attempts); not run again: a \(node.kind.rawValue) node may have had its effect, and its retry policy allows \(node.policy.maxAttempts) attempt(s)")
        let settled = await self.settleFailure(
          node, failure: interrupted, event: .interrupted, milliseconds: row.executionMilliseconds ?? 0, from: [.running, .cancelled]
        ) { change in try? await self.executions.change(id, token: token, change) }
        switch settled {
        case .completed(let nodeID, let output, let tookFailBranch):
          state.completed(nodeID, output: output, tookFailBranch: tookFailBranch)
        case .failed(let nodeID, _):
          state.ended(nodeID, as: .failed)
          failure = failure ?? NodeFailure(code: "node_failed", message: "Node \(nodeID): \(interrupted.message)")
        default:
          throw ServiceError.unavailable("The run's state could not be written; its job tries again")
        }
      }
    }

    let deadline = execution.deadline ?? execution.createdAt.addingTimeInterval(Double(self.limits.runTimeout.components.seconds))
    var stopped = false
    var timedOut = false
    var storeFailed = false
    if failure == nil {
      await withTaskGroup(of: NodeResult.self) { group in
        let remaining = deadline.timeIntervalSinceNow
        group.addTask {
          do {
            try await Task.sleep(for: .milliseconds(Int64(max(remaining, 0) * 1000)))
            return .deadline
          } catch {
            return .cancelled("")
          }
        }
        var running = Set<String>()
        var draining = false
        while true {
          if !draining && !Task.isCancelled {
            let (ready, skipped, failedEdges) = state.decide()
            if let first = failedEdges.first {
              failure = failure ?? NodeFailure(code: "condition", message: first)
              draining = true
            }
            if !skipped.isEmpty {
              do {
                guard try await self.executions.skip(id, token: token, nodes: skipped) else {
                  stopped = true
                  draining = true
                  group.cancelAll()
                  continue
                }
              } catch {
                storeFailed = true
                draining = true
                group.cancelAll()
                continue
              }
            }
            for nodeID in ready where running.count < self.limits.maxParallel && !draining {
              guard let node = plan.nodes[nodeID] else { continue }
              running.insert(nodeID)
              state.started(nodeID)
              let scope = state.scope
              let upstream = state.upstream(of: nodeID)
              let override = overrides[nodeID] ?? [:]
              let attempts = rows.first { $0.nodeID == nodeID }?.attempts ?? 0
              group.addTask {
                await self.runNode(
                  node, execution: execution, token: token, credential: credential, scope: scope, upstream: upstream, override: override,
                  priorAttempts: attempts, steps: steps)
              }
            }
          }
          if running.isEmpty { break }
          guard let result = await group.next() else { break }
          switch result {
          case .completed(let nodeID, let output, let tookFailBranch):
            running.remove(nodeID)
            state.completed(nodeID, output: output, tookFailBranch: tookFailBranch)
          case .failed(let nodeID, let nodeFailure):
            running.remove(nodeID)
            state.ended(nodeID, as: .failed)
            if failure == nil { failure = NodeFailure(code: "node_failed", message: "Node \(nodeID): \(nodeFailure.message)") }
            // Nodes in flight finish (their results are kept for a resume); nothing new starts.
            draining = true
          case .cancelled(let nodeID):
            running.remove(nodeID)
            if !nodeID.isEmpty { state.ended(nodeID, as: .cancelled) }
            draining = true
          case .lost(let nodeID):
            running.remove(nodeID)
            stopped = true
            draining = true
            group.cancelAll()
          case .deadline:
            timedOut = true
            draining = true
            group.cancelAll()
          case .storeUnavailable(let nodeID):
            running.remove(nodeID)
            storeFailed = true
            draining = true
            group.cancelAll()
          }
        }
        group.cancelAll()
      }
    }
    if storeFailed { throw ServiceError.unavailable("The run's state could not be written; its job tries again") }
    if Task.isCancelled || stopped { return try await self.detached { try await self.executions.execution(id) } }
    let status: WorkflowExecution.Status
    var error: NodeFailure?
    var output: JSONValue?
    if timedOut {
      status = .timeout
      error = NodeFailure(code: "timeout", message: "The run passed its deadline (WORKFLOW_TIMEOUT_SECONDS)")
    } else if let failure {
      status = .failed
      error = failure
    } else if let unsettled = plan.order.first(where: { state.status[$0]?.isSettled != true }) {
      // Every node ends completed or skipped in a run that succeeds; anything else is a fault of
      // the engine, and the run must not claim success.
      status = .failed
      error = NodeFailure(code: "incomplete", message: "Node \(unsettled) did not finish (\(state.status[unsettled]?.rawValue ?? "unknown"))")
    } else {
      let result = state.output
      if result.jsonText.utf8.count > self.limits.maxOutputBytes {
        status = .failed
        error = NodeFailure(code: "output_too_large", message: "The run's output exceeds \(self.limits.maxOutputBytes) bytes")
      } else {
        status = .completed
        output = result
      }
    }
    let finished = try await self.executions.finish(id, token: token, status: status, output: output, error: error)
    if let finished { return finished }
    return try await self.executions.execution(id)
  }

  /// Runs `operation` in a task that a cancelled caller does not cancel (to record an end).
  func detached<Result: Sendable>(_ operation: @escaping @Sendable () async throws -> Result) async throws -> Result {
    try await Task { try await operation() }.value
  }

  /// The attempts of one node: each committed as it starts and as it ends; failures retried
  /// after their backoff while the policy allows; then the node's on_error decides.
  func runNode(
    _ node: PlannedNode, execution: WorkflowExecution, token: UUID, credential: RunCredential?, scope: RunScope,
    upstream: [(id: String, output: JSONValue)], override: [String: JSONValue], priorAttempts: Int, steps: StepBudget
  ) async -> NodeResult {
    let id = execution.id
    let data = node.data.merging(override) { _, new in new }
    var attempt = priorAttempts
    /// Writes a node move (tried again over a few seconds if the database fails); nil when it
    /// could not be written.
    @Sendable func record(_ change: ExecutionStore.NodeChange) async -> ExecutionStore.ChangeResult? {
      for pause in [Duration.milliseconds(100), .milliseconds(500), .seconds(2)] {
        if let result = try? await self.detached({ try await self.executions.change(id, token: token, change) }) { return result }
        try? await Task.sleep(for: pause)
      }
      return try? await self.detached { try await self.executions.change(id, token: token, change) }
    }
    while true {
      let allowed = steps.take()
      var resolved: [String: JSONValue]? = nil
      var resolution: NodeFailure? = nil
      do throws(NodeFailure) {
        resolved = try self.executors.resolved(data, kind: node.kind, scope: scope)
      } catch {
        resolution = error
      }
      // Kinds that compute in process, quickly and without effects outside the run, are run
      // first and recorded started and finished in one write: a crash before it leaves them
      // pending, to run again, which repeats nothing.
      var precomputed: Result<NodeOutcome, NodeFailure>?
      if allowed, let resolved, resolution == nil, Self.inlineKinds.contains(node.kind) {
        let context = NodeContext(
          executionID: id, workflowID: execution.workflowID, nodeID: node.id, attempt: attempt + 1, credential: credential,
          timeout: node.policy.timeout, scope: scope)
        let began = ContinuousClock.now
        let outcome: Result<NodeOutcome, NodeFailure>
        do throws(NodeFailure) {
          outcome = .success(try await self.executors.execute(node.kind, data: resolved, upstream: upstream, context: context))
        } catch {
          outcome = .failure(error)
        }
        if case .success(let result) = outcome, result.output.jsonText.utf8.count <= self.limits.maxOutputBytes {
          guard let written = await record(
            .init(
              node.id, from: [.pending], to: .completed, event: .finished, input: .object(resolved), output: result.output, cost: result.cost,
              milliseconds: Int((ContinuousClock.now - began).wholeMilliseconds), startsAttempt: true, alsoStarted: true))
          else { return .storeUnavailable(node.id) }
          return written.written ? .completed(node.id, output: result.output, tookFailBranch: false) : .lost(node.id)
        }
        precomputed = outcome
      }
      guard let started = await record(
        .init(
          node.id, from: [.pending], to: .running, event: .started, message: attempt > 0 ? "Attempt \(attempt + 1)" : nil,
          input: resolved.map { .object($0) }, startsAttempt: true))
      else { return .storeUnavailable(node.id) }
      guard started.written, started.runStatus == .running else { return .lost(node.id) }
      attempt = started.attempts
      let began = ContinuousClock.now
      let outcome: Result<NodeOutcome, NodeFailure>
      if let precomputed {
        outcome = precomputed
      } else if !allowed {
        outcome = .failure(NodeFailure(code: "step_limit", message: "The run reached its step limit (WORKFLOW_MAX_STEPS = \(self.limits.maxSteps))"))
      } else if let resolution {
        outcome = .failure(resolution)
      } else {
        let context = NodeContext(
          executionID: id, workflowID: execution.workflowID, nodeID: node.id, attempt: attempt, credential: credential, timeout: node.policy.timeout,
          scope: scope)
        let data = resolved ?? [:]
        outcome = await Self.within(node.policy.timeout) {
          () async throws(NodeFailure) -> NodeOutcome in
          try await self.executors.execute(node.kind, data: data, upstream: upstream, context: context)
        }
      }
      let milliseconds = Int((ContinuousClock.now - began).wholeMilliseconds)
      // A result that arrived is kept even if the run was stopped meanwhile (a resume must not
      // send it again); a failure caused by the stop is recorded as cancelled.
      if Task.isCancelled, case .failure = outcome {
        _ = await record(.init(node.id, from: [.running], to: .cancelled, event: .failed, message: "Cancelled", milliseconds: milliseconds))
        return .cancelled(node.id)
      }
      switch outcome {
      case .success(let result):
        let size = result.output.jsonText.utf8.count
        if size > self.limits.maxOutputBytes {
          let failure = NodeFailure(code: "output_too_large", message: "The output is \(size) bytes; a node's output is at most \(self.limits.maxOutputBytes)")
          return await self.settleFailure(node, failure: failure, event: .failed, milliseconds: milliseconds, from: [.running], record: record)
        }
        guard let written = await record(
          .init(
            node.id, from: [.running], to: .completed, event: .finished, output: result.output, childExecutionID: result.childExecutionID,
            cost: result.cost, milliseconds: milliseconds))
        else { return .storeUnavailable(node.id) }
        return written.written ? .completed(node.id, output: result.output, tookFailBranch: false) : .lost(node.id)
      case .failure(let failure):
        // Attempts count from this runner's start: a resumed node (or one a crash interrupted)
        // gets its policy's attempts again.
        let attemptsHere = attempt - priorAttempts
        if failure.retryable && attemptsHere < node.policy.maxAttempts && allowed {
          let wait = node.policy.backoff * Double(1 << min(attemptsHere - 1, 10))
          guard let written = await record(
            .init(
              node.id, from: [.running], to: .pending, event: .retried,
              message: "Attempt \(attempt) failed (\(failure.code)); retrying in \(wait.wholeMilliseconds) ms", error: failure,
              milliseconds: milliseconds))
          else { return .storeUnavailable(node.id) }
          guard written.written else { return .lost(node.id) }
          do {
            try await Task.sleep(for: wait)
          } catch {
            // Cancelled while waiting: the node is pending again, which is what a resume wants.
            return .cancelled(node.id)
          }
          continue
        }
        return await self.settleFailure(node, failure: failure, event: .failed, milliseconds: milliseconds, from: [.running], record: record)
      }
    }
  }

  /// The kinds run in process and recorded in one write when they succeed.
  static let inlineKinds: Set<NodeKind> = [.start, .end, .template, .condition, .variableAssign, .aggregate]

  /// A node's last failure, as its on_error says: the run fails, or the node completes with
  /// its default output, or with its error on the `fail` branch.
  private func settleFailure(
    _ node: PlannedNode, failure: NodeFailure, event: NodeEvent.Kind, milliseconds: Int, from: [NodeExecution.Status],
    record: (ExecutionStore.NodeChange) async -> ExecutionStore.ChangeResult?
  ) async -> NodeResult {
    let change: ExecutionStore.NodeChange
    let result: NodeResult
    switch node.policy.onError {
    case .fail:
      change = .init(node.id, from: from, to: .failed, event: event, message: failure.message, error: failure, milliseconds: milliseconds)
      result = .failed(node.id, failure)
    case .useDefault(let output):
      change = .init(
        node.id, from: from, to: .completed, event: event, message: "\(failure.message); continuing with its default output", output: output,
        error: failure, milliseconds: milliseconds)
      result = .completed(node.id, output: output, tookFailBranch: false)
    case .failBranch:
      let output = JSONValue.object(["error": .object(["code": .string(failure.code), "message": .string(failure.message)])])
      change = .init(
        node.id, from: from, to: .completed, event: event, message: "\(failure.message); taking its fail branch", output: output, error: failure,
        milliseconds: milliseconds)
      result = .completed(node.id, output: output, tookFailBranch: true)
    }
    guard let written = await record(change) else { return .storeUnavailable(node.id) }
    return written.written ? result : .lost(node.id)
  }

  /// `operation`'s result, or a retryable timeout failure once `limit` has passed (the
  /// operation is cancelled then).
  static func within(
    _ limit: Duration, _ operation: @escaping @Sendable () async throws(NodeFailure) -> NodeOutcome
  ) async -> Result<NodeOutcome, NodeFailure> {
    await withTaskGroup(of: Result<NodeOutcome, NodeFailure>?.self) { group in
      group.addTask {
        do throws(NodeFailure) {
          return .success(try await operation())
        } catch {
          return .failure(error)
        }
      }
      group.addTask {
        do {
          try await Task.sleep(for: limit)
          return .failure(NodeFailure(code: "timeout", message: "The node ran past its timeout (\(limit.wholeMilliseconds) ms)", retryable: true))
        } catch {
          return nil
        }
      }
      var result: Result<NodeOutcome, NodeFailure>?
      while result == nil, let next = await group.next() {
        result = next
      }
      group.cancelAll()
      return result ?? .failure(NodeFailure(code: "cancelled", message: "Cancelled"))
    }
  }
}

/// The node attempts a run may still make (WORKFLOW_MAX_STEPS), shared by its node tasks.
final class StepBudget: Sendable {
  private let used: Mutex<Int>
  let limit: Int

  init(used: Int, limit: Int) {
    self.used = Mutex(used)
    self.limit = limit
  }

  /// Takes one step; false when none is left.
  func take() -> Bool {
    self.used.withLock { used in
      guard used < self.limit else { return false }
      used += 1
      return true
    }
  }
}

/// The plans of recently run snapshots, by snapshot id (immutable, so never stale), at most 256.
final class PlanCache: Sendable {
  private let plans = Mutex<[UUID: WorkflowPlan]>([:])

  func plan(for snapshotID: UUID) -> WorkflowPlan? { self.plans.withLock { $0[snapshotID] } }

  func store(_ plan: WorkflowPlan, for snapshotID: UUID) -> WorkflowPlan {
    self.plans.withLock { plans in
      if plans.count >= 256 { plans.removeAll() }
      plans[snapshotID] = plan
    }
    return plan
  }
}
