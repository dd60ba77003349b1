internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
internal import SwiftProtobuf
internal import NIOCore

extension ExecutionError: RPCErrorConvertible {
  public var rpcError: RPCError {
    switch self {
    case .invalidArgument(let field, let reason): RPCError(.invalidArgument, "\(field): \(reason)")
    case .notFound: RPCError(.notFound, "Execution not found")
    case .busy(let message): RPCError(.resourceExhausted, message, metadata: ["grpc-retry-pushback-ms": "1000"])
    case .unavailable(let message): RPCError(.unavailable, message)
    }
  }
}

/// `platform.codesandbox.v1.CodeSandboxService` over protobuf.
public struct CodeSandboxAPI: Platform_Codesandbox_V1_CodeSandboxServiceHandler {
  private let executions: Executions

  public init(executions: Executions) {
    self.executions = executions
  }

  public static let accessPolicy = AccessPolicy([
    Platform_Codesandbox_V1_CodeSandboxService.Method.executeCode: "code:execute",
    Platform_Codesandbox_V1_CodeSandboxService.Method.streamExecution: "code:execute",
    Platform_Codesandbox_V1_CodeSandboxService.Method.cancelExecution: "code:execute",
    Platform_Codesandbox_V1_CodeSandboxService.Method.getCodeExecution: "code:read",
    Platform_Codesandbox_V1_CodeSandboxService.Method.listCodeExecutions: "code:read",
    Platform_Codesandbox_V1_CodeSandboxService.Method.analyzeCode: "code:read",
  ])

  public func executeCode(
    _ request: Platform_Codesandbox_V1_ExecuteCodeRequest, context: ServerContext
  ) async throws -> Platform_Codesandbox_V1_CodeExecution {
    let caller = try context.requireCaller()
    return Self.message(try await self.executions.execute(try Self.request(request), caller: caller.userID))
  }

  public func streamExecution(
    _ request: Platform_Codesandbox_V1_ExecuteCodeRequest, responses: ResponseStreamWriter<Platform_Codesandbox_V1_StreamExecutionResponse>,
    context: ServerContext
  ) async throws {
    let caller = try context.requireCaller()
    let finished = try await self.executions.execute(try Self.request(request), caller: caller.userID) { event in
      // A client that stops reading cancels the call, and with it the run.
      switch event {
      case .started(let execution):
        try? await responses.write(.with { $0.started = Self.message(execution) })
      case .output(let stream, let data, let offset):
        try? await responses.write(.with {
          $0.output = .with {
            $0.stream = stream == 1 ? .stdout : .stderr
            $0.data = Data(data.readableBytesView)
            $0.offset = Int64(offset)
          }
        })
      }
    }
    try await responses.write(.with { $0.completed = Self.message(finished) })
  }

  public func cancelExecution(
    _ request: Platform_Codesandbox_V1_CancelExecutionRequest, context: ServerContext
  ) async throws -> Platform_Codesandbox_V1_CodeExecution {
    let caller = try context.requireCaller()
    return Self.message(try await self.executions.cancel(try Self.id(request.id, field: "id"), caller: caller.userID))
  }

  public func getCodeExecution(
    _ request: Platform_Codesandbox_V1_GetCodeExecutionRequest, context: ServerContext
  ) async throws -> Platform_Codesandbox_V1_CodeExecution {
    let caller = try context.requireCaller()
    return Self.message(try await self.executions.execution(try Self.id(request.id, field: "id"), caller: caller.userID))
  }

  struct ListFilter: Codable, Equatable {
    var language: String
    var status: String
    var agent: String
  }

  struct Cursor: Codable {
    var createdMicros: Int64
    var id: UUID
    var filter: ListFilter
  }

  public func listCodeExecutions(
    _ request: Platform_Codesandbox_V1_ListCodeExecutionsRequest, context: ServerContext
  ) async throws -> Platform_Codesandbox_V1_ListCodeExecutionsResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 1000) else {
      throw ExecutionError.invalidArgument(field: "page_size", reason: "must be 0 to 1000")
    }
    let language = request.language == .unspecified ? nil : try Self.language(request.language)
    let status: Execution.Status?
    switch request.status {
    case .unspecified: status = nil
    case .pending: status = .pending
    case .running: status = .running
    case .completed: status = .completed
    case .failed: status = .failed
    case .cancelled: status = .cancelled
    case .timeout: status = .timeout
    case .UNRECOGNIZED: throw ExecutionError.invalidArgument(field: "status", reason: "is not a status")
    }
    let agent = request.agentID.isEmpty ? nil : try Self.id(request.agentID, field: "agent_id")
    let filter = ListFilter(language: language?.rawValue ?? "", status: status?.rawValue ?? "", agent: request.agentID)
    var cursor: (Date, UUID)?
    if !request.pageToken.isEmpty {
      guard let decoded = PageToken.decode(request.pageToken, as: Cursor.self), decoded.filter == filter else {
        throw ExecutionError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
      }
      cursor = (Date(timeIntervalSince1970: Double(decoded.createdMicros) / 1_000_000), decoded.id)
    }
    let page = try await self.executions.list(
      caller: caller.userID, language: language, status: status, agentID: agent, after: cursor, limit: limit)
    return .with {
      $0.executions = page.executions.map(Self.message)
      $0.totalSize = Int32(clamping: page.total)
      if page.more, let last = page.executions.last {
        $0.nextPageToken = PageToken.encode(
          Cursor(createdMicros: Int64((last.createdAt.timeIntervalSince1970 * 1_000_000).rounded(.down)), id: last.id, filter: filter))
      }
    }
  }

  public func analyzeCode(
    _ request: Platform_Codesandbox_V1_AnalyzeCodeRequest, context: ServerContext
  ) async throws -> Platform_Codesandbox_V1_AnalyzeCodeResponse {
    let language = try Self.language(request.language)
    try Executions.Request.checkCode(request.code)
    let report = await self.executions.analysis(request.code, language: language)
    return .with {
      $0.securityScore = Int32(report.score)
      $0.issues = report.findings.map(Self.message)
      $0.allowed = !report.hasCritical
    }
  }

  // MARK: - Messages

  static func request(_ request: Platform_Codesandbox_V1_ExecuteCodeRequest) throws -> Executions.Request {
    let limits = try Execution.Limits.checked(
      timeout: request.limits.timeoutMs, memory: request.limits.memoryMb, cpu: request.limits.cpuMillis,
      output: request.limits.maxOutputBytes)
    return try Executions.Request(
      language: try Self.language(request.language), code: request.code, stdin: Array(request.stdin.utf8), limits: limits,
      agentID: request.agentID.isEmpty ? nil : try Self.id(request.agentID, field: "agent_id"),
      requestID: request.requestID.isEmpty ? nil : try Self.id(request.requestID, field: "request_id"),
      files: request.files.map { ($0.name, Array($0.content)) }, typeCheck: request.typeCheck, blockOnCritical: request.blockOnCritical)
  }

  static func language(_ language: Platform_Codesandbox_V1_Language) throws -> Language {
    switch language {
    case .python: .python
    case .javascript: .javascript
    case .typescript: .typescript
    case .unspecified, .UNRECOGNIZED: throw ExecutionError.invalidArgument(field: "language", reason: "must be python, javascript or typescript")
    }
  }

  static func id(_ text: String, field: String) throws -> UUID {
    guard let id = UUID(strict: text) else { throw ExecutionError.invalidArgument(field: field, reason: "is not a UUID") }
    return id
  }

  static func message(_ finding: SecurityFinding) -> Platform_Codesandbox_V1_SecurityIssue {
    .with {
      $0.rule = finding.rule
      $0.severity = Platform_Codesandbox_V1_IssueSeverity(rawValue: finding.severity.rawValue) ?? .unspecified
      $0.message = finding.message
      $0.line = Int32(clamping: finding.line)
      $0.column = Int32(clamping: finding.column)
    }
  }

  static func message(_ execution: Execution) -> Platform_Codesandbox_V1_CodeExecution {
    .with {
      $0.id = execution.id.lowercasedString
      $0.userID = execution.userID.lowercasedString
      if let agent = execution.agentID { $0.agentID = agent.lowercasedString }
      $0.language = switch execution.language {
      case .python: .python
      case .javascript: .javascript
      case .typescript: .typescript
      }
      $0.code = execution.code
      $0.status = switch execution.status {
      case .pending: .pending
      case .running: .running
      case .completed: .completed
      case .failed: .failed
      case .timeout: .timeout
      case .cancelled: .cancelled
      }
      $0.stdout = execution.stdout
      $0.stderr = execution.stderr
      if let code = execution.exitCode { $0.exitCode = Int32(clamping: code) }
      $0.signal = Int32(clamping: execution.signal ?? 0)
      $0.stdoutTruncated = execution.stdoutTruncated
      $0.stderrTruncated = execution.stderrTruncated
      $0.limits = .with {
        $0.timeoutMs = Int32(execution.limits.timeoutMilliseconds)
        $0.memoryMb = Int32(execution.limits.memoryMegabytes)
        $0.cpuMillis = Int32(execution.limits.cpuMillis)
        $0.maxOutputBytes = Int32(execution.limits.maxOutputBytes)
      }
      $0.typeCheck = execution.typeCheck
      $0.executionTimeMs = Int32(clamping: execution.executionMilliseconds ?? 0)
      $0.memoryUsedMb = Int32(clamping: execution.memoryMegabytes ?? 0)
      $0.cpuUsagePercent = execution.cpuPercent ?? 0
      $0.securityScore = Int32(clamping: execution.securityScore ?? 100)
      $0.securityIssues = execution.findings.map(Self.message)
      if let reason = execution.reason { $0.terminationReason = Self.reason(reason) }
      if let message = execution.errorMessage {
        $0.error = .with {
          $0.code = execution.reason == .securityBlocked ? "FAILED_PRECONDITION" : "INTERNAL"
          $0.message = message
          if let reason = execution.reason { $0.details = ["reason": reason.rawValue] }
        }
      }
      $0.outputs = execution.outputs.map { file in
        .with {
          $0.name = file.name
          $0.contentType = file.contentType
          $0.sizeBytes = Int64(file.size)
          $0.content = Data(file.content)
        }
      }
      $0.outputsTruncated = execution.outputsTruncated
      $0.createTime = Google_Protobuf_Timestamp(date: execution.createdAt)
      if let started = execution.startedAt { $0.startTime = Google_Protobuf_Timestamp(date: started) }
      if let completed = execution.completedAt { $0.completeTime = Google_Protobuf_Timestamp(date: completed) }
    }
  }

  static func reason(_ reason: Execution.Reason) -> Platform_Codesandbox_V1_TerminationReason {
    switch reason {
    case .exited: .exited
    case .memoryLimit: .memoryLimit
    case .outputLimit: .outputLimit
    case .cpuLimit: .cpuLimit
    case .timeLimit: .timeLimit
    case .signal: .signal
    case .deniedSyscall: .deniedSyscall
    case .compileError: .compileError
    case .securityBlocked: .securityBlocked
    case .cancelled: .cancelled
    case .sandboxError: .sandboxError
    case .interrupted: .interrupted
    }
  }
}
