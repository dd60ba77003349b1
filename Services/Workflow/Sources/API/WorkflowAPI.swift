internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

/// `platform.workflow.v1.WorkflowService` over protobuf.
public struct WorkflowAPI: Platform_Workflow_V1_WorkflowServiceHandler {
  let workflows: Workflows
  let runs: WorkflowRuns

  public init(workflows: Workflows, runs: WorkflowRuns) {
    self.workflows = workflows
    self.runs = runs
  }

  typealias Method = Platform_Workflow_V1_WorkflowService.Method

  public static let accessPolicy = AccessPolicy([
    Method.createWorkflow: "workflow:write", Method.getWorkflow: "workflow:read", Method.listWorkflows: "workflow:read",
    Method.updateWorkflow: "workflow:write", Method.deleteWorkflow: "workflow:write", Method.validateWorkflow: "workflow:read",
    Method.runWorkflow: "workflow:execute", Method.getWorkflowExecution: "workflow:read", Method.listWorkflowExecutions: "workflow:read",
    Method.cancelWorkflowExecution: "workflow:execute", Method.resumeWorkflowExecution: "workflow:execute",
    Method.watchWorkflowExecution: "workflow:read", Method.listSnapshots: "workflow:read", Method.publishWorkflow: "workflow:write",
    Method.restoreSnapshot: "workflow:write",
  ])

  /// How long a WatchWorkflowExecution stream may last.
  static let watchLimit = Duration.seconds(3600)

  // MARK: - Workflows

  public func createWorkflow(_ request: Platform_Workflow_V1_CreateWorkflowRequest, context: ServerContext) async throws -> Platform_Workflow_V1_Workflow {
    let caller = try context.requireCaller()
    guard request.hasWorkflow else { throw ServiceError.invalidArgument(field: "workflow", reason: "is required") }
    let draft = try Self.draft(request.workflow, statusDefault: .draft)
    let requestID = request.requestID.isEmpty ? nil : try Self.id(request.requestID, field: "request_id")
    return Self.message(try await self.workflows.create(draft, owner: caller.userID, requestID: requestID))
  }

  public func getWorkflow(_ request: Platform_Workflow_V1_GetWorkflowRequest, context: ServerContext) async throws -> Platform_Workflow_V1_Workflow {
    let caller = try context.requireCaller()
    return Self.message(try await self.workflows.workflow(try Self.id(request.id, field: "id"), owner: caller.userID))
  }

  public func listWorkflows(
    _ request: Platform_Workflow_V1_ListWorkflowsRequest, context: ServerContext
  ) async throws -> Platform_Workflow_V1_ListWorkflowsResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 1000) else {
      throw ServiceError.invalidArgument(field: "page_size", reason: "may not be negative")
    }
    let status = try Self.status(request.status, field: "status")
    guard request.tags.count <= Workflow.maxTags, request.tags.allSatisfy({ $0.utf8.count <= 200 }) else {
      throw ServiceError.invalidArgument(field: "tags", reason: "at most \(Workflow.maxTags) tags")
    }
    guard request.query.utf8.count <= 200 else { throw ServiceError.invalidArgument(field: "query", reason: "must be at most 200 bytes") }
    let query = request.query.trimmingCharacters(in: .whitespaces).isEmpty ? nil : request.query
    let filter = PageToken.fingerprint("\(status?.rawValue ?? "")/\(request.tags.sorted().joined(separator: ","))/\(query ?? "")")
    let after = try PageToken.cursor(request.pageToken, filter: filter, as: WorkflowStore.ListCursor.self)
    let page = try await self.workflows.list(owner: caller.userID, status: status, tags: request.tags, query: query, after: after, limit: limit)
    var response = Platform_Workflow_V1_ListWorkflowsResponse()
    response.totalSize = Int32(clamping: page.total)
    // Without their definitions (GetWorkflow has them): a page stays small.
    response.workflows = page.workflows.map { workflow in
      var message = Self.message(workflow)
      message.nodes = []
      message.edges = []
      return message
    }
    if page.more, let last = page.workflows.last {
      response.nextPageToken = PageToken.encode(after: WorkflowStore.ListCursor(updatedAt: last.updatedAt, id: last.id), filter: filter)
    }
    return response
  }

  public func updateWorkflow(_ request: Platform_Workflow_V1_UpdateWorkflowRequest, context: ServerContext) async throws -> Platform_Workflow_V1_Workflow {
    let caller = try context.requireCaller()
    guard request.hasWorkflow else { throw ServiceError.invalidArgument(field: "workflow", reason: "is required") }
    let id = try Self.id(request.workflow.id, field: "workflow.id")
    guard request.version > 0 else { throw ServiceError.invalidArgument(field: "version", reason: "is required (the version last read)") }
    let paths = Set(request.updateMask.paths)
    let patch = try Self.draft(request.workflow, statusDefault: .draft, checkStatus: paths.contains("status"))
    return Self.message(try await self.workflows.update(id, owner: caller.userID, paths: paths, patch: patch, version: Int(request.version)))
  }

  public func deleteWorkflow(_ request: Platform_Workflow_V1_DeleteWorkflowRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    let cancelled = try await self.workflows.delete(
      try Self.id(request.id, field: "id"), owner: caller.userID, version: request.version == 0 ? nil : Int(request.version))
    for id in cancelled { _ = await self.runs.running.cancel(id) }
    return Google_Protobuf_Empty()
  }

  public func validateWorkflow(
    _ request: Platform_Workflow_V1_ValidateWorkflowRequest, context: ServerContext
  ) async throws -> Platform_Workflow_V1_ValidateWorkflowResponse {
    let caller = try context.requireCaller()
    let definition: WorkflowDefinition
    switch request.target {
    case .workflowID(let text)?:
      definition = try await self.workflows.workflow(try Self.id(text, field: "workflow_id"), owner: caller.userID).definition
    case .workflow(let workflow)?:
      definition = Self.definition(workflow)
      try definition.checked()
    case nil:
      throw ServiceError.invalidArgument(field: "target", reason: "give workflow_id or workflow")
    }
    let plan = WorkflowPlan(definition)
    var response = Platform_Workflow_V1_ValidateWorkflowResponse()
    response.isValid = plan.isValid
    response.issues = plan.issues.map { issue in
      .with {
        $0.code = Self.code(issue.code)
        $0.message = issue.message
        $0.nodeID = issue.nodeID ?? ""
        $0.edgeID = issue.edgeID ?? ""
        $0.isWarning = issue.isWarning
      }
    }
    if plan.isValid { response.topologicalOrder = plan.order }
    return response
  }

  public func publishWorkflow(_ request: Platform_Workflow_V1_PublishWorkflowRequest, context: ServerContext) async throws -> Platform_Workflow_V1_Workflow {
    let caller = try context.requireCaller()
    return Self.message(
      try await self.workflows.publish(try Self.id(request.id, field: "id"), owner: caller.userID, version: request.version == 0 ? nil : Int(request.version)))
  }

  public func restoreSnapshot(_ request: Platform_Workflow_V1_RestoreSnapshotRequest, context: ServerContext) async throws -> Platform_Workflow_V1_Workflow {
    let caller = try context.requireCaller()
    guard request.snapshotVersion > 0 else { throw ServiceError.invalidArgument(field: "snapshot_version", reason: "is required") }
    return Self.message(
      try await self.workflows.restore(
        try Self.id(request.workflowID, field: "workflow_id"), snapshotVersion: Int(request.snapshotVersion), owner: caller.userID,
        version: request.version == 0 ? nil : Int(request.version)))
  }

  public func listSnapshots(
    _ request: Platform_Workflow_V1_ListSnapshotsRequest, context: ServerContext
  ) async throws -> Platform_Workflow_V1_ListSnapshotsResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 1000) else {
      throw ServiceError.invalidArgument(field: "page_size", reason: "may not be negative")
    }
    let id = try Self.id(request.workflowID, field: "workflow_id")
    let filter = id.lowercasedString
    let after = try PageToken.cursor(request.pageToken, filter: filter, as: WorkflowStore.SnapshotCursor.self)
    let page = try await self.workflows.snapshots(of: id, owner: caller.userID, after: after, limit: limit)
    let fitted = ResponseBudget.page(page.snapshots, more: page.more) { ResponseBudget.fieldSize($0.data.protobufStructSize) + 256 }
    var response = Platform_Workflow_V1_ListSnapshotsResponse()
    response.totalSize = Int32(clamping: page.total)
    response.snapshots = fitted.rows.map { snapshot in
      .with {
        $0.id = snapshot.id.lowercasedString
        $0.workflowID = snapshot.workflowID.lowercasedString
        $0.workflowVersion = Int32(clamping: snapshot.workflowVersion)
        $0.snapshotData = snapshot.data.protobufStruct
        $0.createdBy = snapshot.createdBy.lowercasedString
        $0.createTime = Google_Protobuf_Timestamp(date: snapshot.createdAt)
      }
    }
    if let last = fitted.continueAfter {
      response.nextPageToken = PageToken.encode(after: WorkflowStore.SnapshotCursor(version: last.workflowVersion), filter: filter)
    }
    return response
  }

  // MARK: - Runs

  public func runWorkflow(_ request: Platform_Workflow_V1_RunWorkflowRequest, context: ServerContext) async throws -> Platform_Workflow_V1_WorkflowExecution {
    let caller = try context.requireCaller()
    let start = WorkflowRuns.Start(
      workflowID: try Self.id(request.workflowID, field: "workflow_id"), inputs: request.hasInputs ? JSONValue(request.inputs) : .object([:]),
      version: request.version == 0 ? nil : Int(request.version), snapshotVersion: request.snapshotVersion == 0 ? nil : Int(request.snapshotVersion),
      requestID: request.requestID.isEmpty ? nil : try Self.id(request.requestID, field: "request_id"), sync: request.sync)
    // A sync call answers a little before its deadline, with the run as it is then.
    let waitUntil = context.deadline.map { $0 - .milliseconds(200) }
    let execution = try await self.runs.start(start, owner: caller.userID, credential: .ofCurrentCall, waitUntil: waitUntil)
    if request.sync {
      let (finished, nodes) = try await self.runs.execution(execution.id, owner: caller.userID)
      return Self.message(finished, nodes: nodes)
    }
    return Self.message(execution, nodes: [])
  }

  public func getWorkflowExecution(
    _ request: Platform_Workflow_V1_GetWorkflowExecutionRequest, context: ServerContext
  ) async throws -> Platform_Workflow_V1_WorkflowExecution {
    let caller = try context.requireCaller()
    let (execution, nodes) = try await self.runs.execution(try Self.id(request.id, field: "id"), owner: caller.userID)
    return Self.message(execution, nodes: nodes)
  }

  public func listWorkflowExecutions(
    _ request: Platform_Workflow_V1_ListWorkflowExecutionsRequest, context: ServerContext
  ) async throws -> Platform_Workflow_V1_ListWorkflowExecutionsResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 1000) else {
      throw ServiceError.invalidArgument(field: "page_size", reason: "may not be negative")
    }
    let workflowID = request.workflowID.isEmpty ? nil : try Self.id(request.workflowID, field: "workflow_id")
    let status = try Self.executionStatus(request.status)
    let filter = "\(workflowID?.lowercasedString ?? "")/\(status?.rawValue ?? "")"
    let after = try PageToken.cursor(request.pageToken, filter: filter, as: ExecutionStore.ListCursor.self)
    let page = try await self.runs.list(owner: caller.userID, workflowID: workflowID, status: status, after: after, limit: limit)
    let fitted = ResponseBudget.page(page.executions, more: page.more) { execution in
      ResponseBudget.fieldSize(execution.input.protobufStructSize) + ResponseBudget.fieldSize(execution.output?.protobufStructSize ?? 0)
        + (execution.error?.message.utf8.count ?? 0) + 1024
    }
    var response = Platform_Workflow_V1_ListWorkflowExecutionsResponse()
    response.totalSize = Int32(clamping: page.total)
    response.executions = fitted.rows.map { Self.message($0, nodes: []) }
    if let last = fitted.continueAfter {
      response.nextPageToken = PageToken.encode(after: ExecutionStore.ListCursor(createdAt: last.createdAt, id: last.id), filter: filter)
    }
    return response
  }

  public func cancelWorkflowExecution(
    _ request: Platform_Workflow_V1_CancelWorkflowExecutionRequest, context: ServerContext
  ) async throws -> Platform_Workflow_V1_WorkflowExecution {
    let caller = try context.requireCaller()
    let id = try Self.id(request.id, field: "id")
    _ = try await self.runs.cancel(id, owner: caller.userID)
    let (execution, nodes) = try await self.runs.execution(id, owner: caller.userID)
    return Self.message(execution, nodes: nodes)
  }

  public func resumeWorkflowExecution(
    _ request: Platform_Workflow_V1_ResumeWorkflowExecutionRequest, context: ServerContext
  ) async throws -> Platform_Workflow_V1_WorkflowExecution {
    let caller = try context.requireCaller()
    let id = try Self.id(request.id, field: "id")
    guard request.nodeData.count <= WorkflowDefinition.maxNodes else {
      throw ServiceError.invalidArgument(field: "node_data", reason: "names more nodes than a workflow has")
    }
    let nodeData = request.nodeData.mapValues { JSONValue($0).objectValue ?? [:] }
    let resumed = try await self.runs.resume(id, owner: caller.userID, nodeData: nodeData, credential: .ofCurrentCall)
    return Self.message(resumed, nodes: try await self.runs.execution(id, owner: caller.userID).1)
  }

  public func watchWorkflowExecution(
    _ request: Platform_Workflow_V1_WatchWorkflowExecutionRequest, responses: ResponseStreamWriter<Platform_Workflow_V1_WorkflowExecutionEvent>,
    context: ServerContext
  ) async throws {
    let caller = try context.requireCaller()
    let id = try Self.id(request.id, field: "id")
    let deadline = ContinuousClock.now + Self.watchLimit
    try await self.runs.watch(id, owner: caller.userID, until: deadline) { event in
      try await responses.write(
        .with {
          $0.eventTime = Google_Protobuf_Timestamp(date: Date())
          switch event {
          case .execution(let execution, let nodes):
            $0.execution = Self.message(execution, nodes: nodes)
          case .node(let node, let nodeEvent):
            $0.node = Self.message(node)
            $0.nodeEvent = Self.kind(nodeEvent.kind)
            $0.message = nodeEvent.message ?? ""
            $0.eventTime = Google_Protobuf_Timestamp(date: nodeEvent.createdAt)
          }
        })
    }
  }

  // MARK: - Conversions

  static func id(_ text: String, field: String) throws(ServiceError) -> UUID {
    guard let id = UUID(strict: text) else { throw .invalidArgument(field: field, reason: "must be a UUID") }
    return id
  }

  static func status(_ status: Platform_Workflow_V1_WorkflowStatus, field: String) throws(ServiceError) -> Workflow.Status? {
    switch status {
    case .unspecified: nil
    case .draft: .draft
    case .active: .active
    case .paused: .paused
    case .archived: .archived
    case .UNRECOGNIZED: throw .invalidArgument(field: field, reason: "is not a workflow status")
    }
  }

  static func executionStatus(_ status: Platform_Common_V1_ExecutionStatus) throws(ServiceError) -> WorkflowExecution.Status? {
    switch status {
    case .unspecified: nil
    case .pending: .pending
    case .running: .running
    case .completed: .completed
    case .failed: .failed
    case .cancelled: .cancelled
    case .timeout: .timeout
    case .UNRECOGNIZED: throw .invalidArgument(field: "status", reason: "is not an execution status")
    }
  }

  static func definition(_ message: Platform_Workflow_V1_Workflow) -> WorkflowDefinition {
    WorkflowDefinition(
      nodes: message.nodes.map { node in
        WorkflowNode(
          id: node.id, type: node.type, label: node.label, position: (node.position.x, node.position.y),
          data: JSONValue(node.data).objectValue ?? [:], extra: JSONValue(node.extra).objectValue ?? [:])
      },
      edges: message.edges.map { edge in
        WorkflowEdge(
          id: edge.id, source: edge.source, target: edge.target, sourceHandle: edge.sourceHandle, targetHandle: edge.targetHandle,
          condition: edge.condition, label: edge.label, extra: JSONValue(edge.extra).objectValue ?? [:])
      },
      viewport: message.hasViewport
        ? .object(["x": .number(message.viewport.x), "y": .number(message.viewport.y), "zoom": .number(message.viewport.zoom)])
        : WorkflowDefinition.defaultViewport)
  }

  static func draft(_ message: Platform_Workflow_V1_Workflow, statusDefault: Workflow.Status, checkStatus: Bool = true) throws(ServiceError) -> Workflows.Draft {
    let status = checkStatus ? (try Self.status(message.status, field: "workflow.status") ?? statusDefault) : statusDefault
    return Workflows.Draft(
      name: message.name, description: message.description_p, status: status, definition: Self.definition(message),
      metadata: message.hasMetadata ? JSONValue(message.metadata).objectValue ?? [:] : [:], tags: message.tags,
      schedules: message.schedules.map { schedule in
        WorkflowSchedule(
          id: schedule.id, cron: schedule.cron, timeZone: schedule.timeZone, inputs: JSONValue(schedule.inputs).objectValue ?? [:],
          enabled: schedule.enabled, apiKey: schedule.apiKey.isEmpty ? nil : schedule.apiKey)
      })
  }

  static func message(_ workflow: Workflow) -> Platform_Workflow_V1_Workflow {
    .with {
      $0.id = workflow.id.lowercasedString
      $0.userID = workflow.userID.lowercasedString
      $0.name = workflow.name
      $0.description_p = workflow.description
      $0.status =
        switch workflow.status {
        case .draft: .draft
        case .active: .active
        case .paused: .paused
        case .archived: .archived
        }
      $0.version = Int32(clamping: workflow.version)
      $0.nodes = workflow.definition.nodes.map { node in
        .with {
          $0.id = node.id
          $0.type = node.type
          $0.label = node.label
          $0.position = .with {
            $0.x = node.position.x
            $0.y = node.position.y
          }
          $0.data = JSONValue.object(node.data).protobufStruct
          if !node.extra.isEmpty { $0.extra = JSONValue.object(node.extra).protobufStruct }
        }
      }
      $0.edges = workflow.definition.edges.map { edge in
        .with {
          $0.id = edge.id
          $0.source = edge.source
          $0.target = edge.target
          $0.sourceHandle = edge.sourceHandle
          $0.targetHandle = edge.targetHandle
          $0.condition = edge.condition
          $0.label = edge.label
          if !edge.extra.isEmpty { $0.extra = JSONValue.object(edge.extra).protobufStruct }
        }
      }
      let viewport = workflow.definition.viewport.objectValue ?? [:]
      func number(_ key: String, _ fallback: Double) -> Double { if case .number(let value)? = viewport[key] { value } else { fallback } }
      $0.viewport = .with {
        $0.x = number("x", 0)
        $0.y = number("y", 0)
        $0.zoom = number("zoom", 1)
      }
      $0.metadata = JSONValue.object(workflow.metadata).protobufStruct
      $0.tags = workflow.tags
      $0.schedules = workflow.schedules.map { schedule in
        .with {
          $0.id = schedule.id
          $0.cron = schedule.cron
          $0.timeZone = schedule.timeZone
          $0.inputs = JSONValue.object(schedule.inputs).protobufStruct
          $0.enabled = schedule.enabled
          $0.hasApiKey_p = schedule.sealedKey != nil
          if schedule.enabled, let zone = schedule.zone, let next = try? CronSchedule(parsing: schedule.cron).nextFire(after: Date(), in: zone) {
            $0.nextFireTime = Google_Protobuf_Timestamp(date: next)
          }
        }
      }
      $0.createTime = Google_Protobuf_Timestamp(date: workflow.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: workflow.updatedAt)
      if let published = workflow.publishedAt { $0.publishTime = Google_Protobuf_Timestamp(date: published) }
      if let deleted = workflow.deletedAt { $0.deleteTime = Google_Protobuf_Timestamp(date: deleted) }
    }
  }

  static func executionStatus(_ status: WorkflowExecution.Status) -> Platform_Common_V1_ExecutionStatus {
    switch status {
    case .pending: .pending
    case .running: .running
    case .completed: .completed
    case .failed: .failed
    case .cancelled: .cancelled
    case .timeout: .timeout
    }
  }

  static func message(_ execution: WorkflowExecution, nodes: [NodeExecution]) -> Platform_Workflow_V1_WorkflowExecution {
    .with {
      $0.id = execution.id.lowercasedString
      $0.workflowID = execution.workflowID.lowercasedString
      $0.workflowVersion = Int32(clamping: execution.workflowVersion)
      $0.userID = execution.userID.lowercasedString
      $0.status = Self.executionStatus(execution.status)
      $0.input = execution.input.protobufStruct
      if let output = execution.output {
        // The output is any JSON value; a non-object one is given as {"value": …}.
        $0.output = output.objectValue != nil ? output.protobufStruct : JSONValue.object(["value": output]).protobufStruct
      }
      if let error = execution.error {
        $0.error = .with {
          $0.code = error.code
          $0.message = error.message
        }
      }
      $0.nodeExecutions = nodes.map(Self.message)
      $0.currentNodeID = execution.currentNodeID ?? ""
      $0.totalNodes = Int32(clamping: execution.totalNodes)
      $0.completedNodes = Int32(clamping: execution.completedNodes)
      $0.executionTimeMs = Int32(clamping: execution.executionMilliseconds ?? 0)
      if let cost = execution.cost { $0.usage = .with { $0.costUsd = cost } }
      $0.createTime = Google_Protobuf_Timestamp(date: execution.createdAt)
      if let started = execution.startedAt { $0.startTime = Google_Protobuf_Timestamp(date: started) }
      if let completed = execution.completedAt { $0.completeTime = Google_Protobuf_Timestamp(date: completed) }
      $0.resumeCount = Int32(clamping: execution.resumeCount)
      $0.scheduleID = execution.scheduleID ?? ""
    }
  }

  static func message(_ node: NodeExecution) -> Platform_Workflow_V1_NodeExecution {
    .with {
      $0.nodeID = node.nodeID
      $0.nodeType = node.nodeType
      $0.status =
        switch node.status {
        case .pending: .pending
        case .running: .running
        case .completed, .skipped: .completed
        case .failed: .failed
        case .cancelled: .cancelled
        }
      $0.skipped = node.status == .skipped
      if let input = node.input?.objectValue { $0.resolvedData = JSONValue.object(input).protobufStruct }
      if let input = node.input?.objectValue { $0.input = JSONValue.object(input).protobufStruct }
      if let output = node.output {
        $0.output = output.objectValue != nil ? output.protobufStruct : JSONValue.object(["value": output]).protobufStruct
      }
      if let error = node.error {
        $0.error = .with {
          $0.code = error.code
          $0.message = error.message
          if error.retryable { $0.details = ["retryable": "true"] }
        }
      }
      $0.attempt = Int32(clamping: node.attempts)
      $0.childExecutionID = node.childExecutionID ?? ""
      if let started = node.startedAt { $0.startTime = Google_Protobuf_Timestamp(date: started) }
      if let completed = node.completedAt { $0.completeTime = Google_Protobuf_Timestamp(date: completed) }
      $0.executionTimeMs = Int32(clamping: node.executionMilliseconds ?? 0)
    }
  }

  static func kind(_ kind: NodeEvent.Kind) -> Platform_Workflow_V1_NodeEventKind {
    switch kind {
    case .started: .started
    case .retried: .retried
    case .finished: .finished
    case .failed: .failed
    case .skipped: .skipped
    case .interrupted: .interrupted
    }
  }

  static func code(_ code: WorkflowIssue.Code) -> Platform_Workflow_V1_WorkflowIssueCode {
    switch code {
    case .cycle: .cycle
    case .duplicateID: .duplicateID
    case .danglingEdge: .danglingEdge
    case .unknownNodeType: .unknownNodeType
    case .invalidNodeData: .invalidNodeData
    case .missingStart: .missingInput
    case .missingEnd: .missingOutput
    case .unreachableNode: .unreachableNode
    case .invalidCondition: .invalidCondition
    case .unknownReference: .unknownReference
    }
  }
}
