internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
internal import SwiftProtobuf

/// `platform.agent.v1.ExecutionService` over protobuf: starting, reading, cancelling, retrying
/// and watching agent executions.
public struct ExecutionAPI: Platform_Agent_V1_ExecutionServiceHandler {
  let executions: Executions

  public init(executions: Executions) {
    self.executions = executions
  }

  typealias Method = Platform_Agent_V1_ExecutionService.Method

  public static let requirements: [MethodDescriptor: Permission] = [
    Method.startExecution: "agent:execute", Method.getExecution: "agent:read", Method.listExecutions: "agent:read",
    Method.cancelExecution: "agent:execute", Method.listExecutionLogs: "agent:read", Method.watchExecution: "agent:read",
    Method.retryExecution: "agent:execute",
  ]

  public func startExecution(
    _ request: Platform_Agent_V1_StartExecutionRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_Execution {
    let caller = try context.requireCaller()
    guard request.hasInput else { throw AgentError.invalidArgument(field: "input", reason: "is required ({\"message\": \"…\"})") }
    let callback = try await self.executions.callbacks.checked(
      url: request.callbackURL, events: request.callbackEvents, secret: request.callbackSecret, owner: caller.userID)
    let execution = try await self.executions.start(
      .init(
        agentID: try AgentAPI.id(request.agentID, field: "agent_id"), input: JSONValue(request.input),
        workflowID: request.workflowID.isEmpty ? nil : try AgentAPI.id(request.workflowID, field: "workflow_id"),
        parentID: request.parentExecutionID.isEmpty ? nil : try AgentAPI.id(request.parentExecutionID, field: "parent_execution_id"),
        maxRetries: request.maxRetries == 0 ? Execution.defaultMaxRetries : Int(request.maxRetries),
        requestID: request.requestID.isEmpty ? nil : try AgentAPI.id(request.requestID, field: "request_id"), sync: request.sync,
        callback: callback,
        files: .attached(request.files.map { ExecutionFile(name: $0.name, contentType: $0.contentType, content: $0.content) })),
      caller: caller)
    return Self.message(execution)
  }

  public func getExecution(
    _ request: Platform_Agent_V1_GetExecutionRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_Execution {
    let caller = try context.requireCaller()
    return Self.message(try await self.executions.execution(try AgentAPI.id(request.id, field: "id"), caller: caller.userID))
  }

  public func listExecutions(
    _ request: Platform_Agent_V1_ListExecutionsRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_ListExecutionsResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 200) else {
      throw AgentError.invalidArgument(field: "page_size", reason: "must be 0 to 200")
    }
    let agentID = request.agentID.isEmpty ? nil : try AgentAPI.id(request.agentID, field: "agent_id")
    let workflowID = request.workflowID.isEmpty ? nil : try AgentAPI.id(request.workflowID, field: "workflow_id")
    let status = try Self.status(request.status)
    let filter = "\(agentID?.lowercasedString ?? "")/\(workflowID?.lowercasedString ?? "")/\(status?.rawValue ?? "")"
    let after = try PageToken.cursor(request.pageToken, filter: filter, as: ExecutionStore.ListCursor.self)
    let page = try await self.executions.list(
      caller: caller.userID, agentID: agentID, status: status, workflowID: workflowID, after: after, limit: limit)
    // Inputs and outputs can be large: a page holds what fits in 3 MiB, the rest is on the next.
    let messages = page.executions.map { (execution: $0, message: Self.message($0)) }
    let fitted = ResponseBudget.page(messages, more: page.more) { entry in
      // An upper bound: the input and output documents and the fields around them.
      ResponseBudget.fieldSize(entry.execution.input.protobufStructSize) + ResponseBudget.fieldSize(entry.execution.output?.protobufStructSize ?? 0)
        + (entry.execution.error?.message.utf8.count ?? 0) + 1024
    }
    var response = Platform_Agent_V1_ListExecutionsResponse()
    response.totalSize = Int32(clamping: page.total)
    response.executions = fitted.rows.map(\.message)
    if let last = fitted.continueAfter?.execution {
      response.nextPageToken = PageToken.encode(after: ExecutionStore.ListCursor(createdAt: last.createdAt, id: last.id), filter: filter)
    }
    return response
  }

  public func cancelExecution(
    _ request: Platform_Agent_V1_CancelExecutionRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_Execution {
    let caller = try context.requireCaller()
    return Self.message(try await self.executions.cancel(try AgentAPI.id(request.id, field: "id"), caller: caller.userID))
  }

  public func listExecutionLogs(
    _ request: Platform_Agent_V1_ListExecutionLogsRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_ListExecutionLogsResponse {
    let caller = try context.requireCaller()
    let id = try AgentAPI.id(request.executionID, field: "execution_id")
    guard let limit = PageToken.pageSize(request.pageSize, default: 100, maximum: 1000) else {
      throw AgentError.invalidArgument(field: "page_size", reason: "must be 0 to 1000")
    }
    let level = try Self.level(request.minLevel)
    let filter = "\(id.lowercasedString)/\(level.rawValue)"
    let afterID = try PageToken.cursor(request.pageToken, filter: filter, as: Int64.self) ?? 0
    let lines = try await self.executions.logs(id, caller: caller.userID, minLevel: level, afterID: afterID, limit: limit + 1)
    return .with {
      $0.logs = lines.prefix(limit).map(Self.message)
      if lines.count > limit, let last = lines.prefix(limit).last {
        $0.nextPageToken = PageToken.encode(after: last.id, filter: filter)
      }
    }
  }

  /// A watch ends after an hour at most; the caller reconnects with `after_log_id`.
  static let watchLimit = Duration.seconds(3600)

  public func watchExecution(
    _ request: Platform_Agent_V1_WatchExecutionRequest, responses: ResponseStreamWriter<Platform_Agent_V1_ExecutionEvent>,
    context: ServerContext
  ) async throws {
    let caller = try context.requireCaller()
    let id = try AgentAPI.id(request.id, field: "id")
    guard request.afterLogID >= 0 else { throw AgentError.invalidArgument(field: "after_log_id", reason: "may not be negative") }
    let deadline = ContinuousClock.now + Self.watchLimit
    try await self.executions.watch(id, caller: caller.userID, afterLogID: request.afterLogID) { event in
      guard ContinuousClock.now < deadline else { throw RPCError(.deadlineExceeded, "WatchExecution ends after an hour; call it again") }
      try await responses.write(
        .with {
          $0.eventTime = Google_Protobuf_Timestamp(date: Date())
          switch event {
          case .execution(let execution): $0.execution = Self.message(execution)
          case .log(let line): $0.log = Self.message(line)
          case .modelOutput(let round, let text):
            $0.modelOutput = .with {
              $0.round = Int32(round)
              $0.text = text
            }
          }
        })
    }
  }

  public func retryExecution(
    _ request: Platform_Agent_V1_RetryExecutionRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_Execution {
    let caller = try context.requireCaller()
    let retried = try await self.executions.retry(
      try AgentAPI.id(request.id, field: "id"), caller: caller,
      requestID: request.requestID.isEmpty ? nil : try AgentAPI.id(request.requestID, field: "request_id"), sync: request.sync)
    return Self.message(retried)
  }

  // MARK: - Messages

  static func status(_ status: Platform_Common_V1_ExecutionStatus) throws(AgentError) -> Execution.Status? {
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

  static func level(_ level: Platform_Agent_V1_LogLevel) throws(AgentError) -> ExecutionLog.Level {
    switch level {
    case .unspecified, .debug: .debug
    case .info: .info
    case .warning: .warning
    case .error: .error
    case .UNRECOGNIZED: throw .invalidArgument(field: "min_level", reason: "is not a log level")
    }
  }

  static func message(_ e: Execution) -> Platform_Agent_V1_Execution {
    .with {
      $0.id = e.id.lowercasedString
      $0.agentID = e.agentID.lowercasedString
      $0.userID = e.userID.lowercasedString
      if let workflow = e.workflowID { $0.workflowID = workflow.lowercasedString }
      $0.status =
        switch e.status {
        case .pending: .pending
        case .running: .running
        case .completed: .completed
        case .failed: .failed
        case .cancelled: .cancelled
        case .timeout: .timeout
        }
      $0.progress = Int32(e.progress)
      $0.input = e.input.protobufStruct
      if let output = e.output { $0.output = output.protobufStruct }
      if let error = e.error {
        $0.error = .with {
          $0.code = error.code
          $0.message = error.message
          $0.details = error.details
        }
      }
      $0.executionTimeMs = Int32(clamping: e.executionMilliseconds ?? 0)
      if e.tokensUsed != nil || e.cost != nil {
        $0.usage = .with {
          $0.totalTokens = Int32(clamping: e.tokensUsed ?? 0)
          $0.costUsd = e.cost ?? 0
        }
      }
      $0.createTime = Google_Protobuf_Timestamp(date: e.createdAt)
      if let started = e.startedAt { $0.startTime = Google_Protobuf_Timestamp(date: started) }
      if let completed = e.completedAt { $0.completeTime = Google_Protobuf_Timestamp(date: completed) }
      $0.retryCount = Int32(e.retryCount)
      $0.maxRetries = Int32(e.maxRetries)
      if let parent = e.parentID { $0.parentExecutionID = parent.lowercasedString }
      if let url = e.callbackURL { $0.callbackURL = url }
      $0.callbackEvents = e.callbackEvents ?? []
    }
  }

  static func message(_ line: ExecutionLog) -> Platform_Agent_V1_ExecutionLog {
    .with {
      $0.id = line.id
      $0.executionID = line.executionID.lowercasedString
      $0.level =
        switch line.level {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
      $0.message = line.message
      $0.metadata = line.metadata.protobufStruct
      $0.createTime = Google_Protobuf_Timestamp(date: line.createdAt)
    }
  }
}
