public import Foundation
public import Logging
internal import NIOConcurrencyHelpers
public import NIOCore
internal import PlatformCore
public import PlatformRedis

/// Running code: checked, analysed, recorded before it starts, run in the sandbox, recorded when
/// it ends. The one place that turns a sandbox outcome into an execution's status.
public struct Executions: Sendable {
  let store: ExecutionStore
  let sandbox: Sandbox
  let analyzer: PythonAnalyzer?
  /// The runs of this instance; CancelExecution reaches the one running a run through Redis.
  let running: RunningTasks
  /// "host:port": which instance runs a row (code_executions.container_id "host:port/slot-n").
  let instance: String
  let logger: Logger

  public init(
    store: ExecutionStore, sandbox: Sandbox, analyzer: PythonAnalyzer?, redis: RedisClient?, instance: String, logger: Logger
  ) {
    self.store = store
    self.sandbox = sandbox
    self.analyzer = analyzer
    self.running = RunningTasks(redis: redis, channel: Self.cancelChannel, logger: logger)
    self.instance = instance
    self.logger = logger
  }

  public struct Request: Sendable {
    public var language: Language
    public var code: String
    public var stdin: [UInt8]
    public var limits: Execution.Limits
    public var agentID: UUID?
    public var requestID: UUID?
    public var files: [(name: String, content: [UInt8])]
    public var typeCheck: Bool
    public var blockOnCritical: Bool

    public static let maxCodeBytes = 256 * 1024
    public static let maxStdinBytes = 1 << 20
    public static let maxFiles = 20
    /// Input files together: the request stays under the 4 MiB message limit.
    public static let maxFileBytes = 2 << 20

    /// - Throws: `ExecutionError.invalidArgument` naming the field.
    public init(
      language: Language, code: String, stdin: [UInt8], limits: Execution.Limits, agentID: UUID?, requestID: UUID?,
      files: [(name: String, content: [UInt8])], typeCheck: Bool, blockOnCritical: Bool
    ) throws(ExecutionError) {
      try Self.checkCode(code)
      guard stdin.count <= Self.maxStdinBytes else { throw .invalidArgument(field: "stdin", reason: "is larger than 1 MiB") }
      guard files.count <= Self.maxFiles, files.reduce(0, { $0 + $1.content.count }) <= Self.maxFileBytes else {
        throw .invalidArgument(field: "files", reason: "at most \(Self.maxFiles) files and 2 MiB together")
      }
      var names = Set<String>()
      for file in files {
        guard Self.validFileName(file.name) else {
          throw .invalidArgument(field: "files", reason: "\(file.name.prefix(64).debugDescription) is not a file name (1–128 bytes, no '/', no leading '.')")
        }
        guard file.name != language.fileName, file.name != "outputs", names.insert(file.name).inserted else {
          throw .invalidArgument(field: "files", reason: "\(file.name.debugDescription) is the program's, or given twice")
        }
      }
      guard !typeCheck || language == .typescript else { throw .invalidArgument(field: "type_check", reason: "is for TypeScript only") }
      self.language = language
      self.code = code
      self.stdin = stdin
      self.limits = limits
      self.agentID = agentID
      self.requestID = requestID
      self.files = files
      self.typeCheck = typeCheck
      self.blockOnCritical = blockOnCritical
    }

    /// - Throws: `ExecutionError.invalidArgument` naming `code` unless it is 1 byte to 256 KiB.
    public static func checkCode(_ code: String) throws(ExecutionError) {
      guard !code.isEmpty, code.utf8.count <= Self.maxCodeBytes else {
        throw .invalidArgument(field: "code", reason: "must be 1 byte to 256 KiB")
      }
    }

    static func validFileName(_ name: String) -> Bool {
      let bytes = Array(name.utf8)
      return !bytes.isEmpty && bytes.count <= 128 && bytes[0] != UInt8(ascii: ".")
        && !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 < 0x20 || $0 == 0x7f })
    }
  }

  public enum Event: Sendable {
    case started(Execution)
    /// stdout (1) or stderr (2), with the chunk's offset in its stream.
    case output(stream: Int, data: ByteBuffer, offset: Int)
  }

  /// Runs the request and returns the finished execution.
  public func execute(_ request: Request, caller: UUID, onEvent: @escaping @Sendable (Event) async -> Void = { _ in }) async throws -> Execution {
    let report = await self.analysis(request.code, language: request.language)
    var execution = Execution(
      id: UUID(), userID: caller, agentID: request.agentID, language: request.language, code: request.code, status: .pending,
      slot: "\(self.instance)/queued", limits: request.limits, typeCheck: request.typeCheck, securityScore: report.score,
      findings: report.findings, createdAt: Date())
    let inserted = try await self.store.insert(execution, requestID: request.requestID, stdinBytes: request.stdin.count)
    guard inserted.created else { return try await self.waitForFinish(inserted.execution) }
    execution = inserted.execution
    await onEvent(.started(execution))

    if request.blockOnCritical && report.hasCritical {
      execution.status = .failed
      execution.reason = .securityBlocked
      execution.errorMessage = "Not run: " + report.findings.filter { $0.severity == .critical }.map(\.message).joined(separator: "; ")
      return try await self.record(execution)
    }

    let run = SandboxRun(
      user: caller, files: request.files + [(request.language.fileName, Array(request.code.utf8))], stdin: request.stdin,
      stages: request.language.stages(typeCheck: request.typeCheck), environment: request.language.environment,
      timeout: .milliseconds(request.limits.timeoutMilliseconds), memoryBytes: request.limits.memoryMegabytes << 20,
      cpuMillis: request.limits.cpuMillis,
      cpuSeconds: Int((Double(request.limits.timeoutMilliseconds) / 1000 * Double(request.limits.cpuMillis) / 1000).rounded(.up)) + 1,
      maxOutputBytes: request.limits.maxOutputBytes)
    let offsets = NIOLockedValueBox([0, 0])
    let sandbox = self.sandbox, store = self.store, id = execution.id, instance = self.instance
    let outcome: SandboxOutcome
    do {
      outcome = try await self.running.run(id) {
        try await sandbox.run(
          run,
          onStart: { slot in try? await store.markRunning(id, slot: "\(instance)/slot-\(slot)") },
          onOutput: { stream, chunk in
            let offset = offsets.withLockedValue { offsets -> Int in
              defer { offsets[stream - 1] += chunk.readableBytes }
              return offsets[stream - 1]
            }
            await onEvent(.output(stream: stream, data: chunk, offset: offset))
          })
      }
    } catch SandboxError.poolFull, SandboxError.userLimit {
      // Never started: the row goes, so a retry with the same request id runs.
      try? await Task { try await self.store.delete(id) }.value
      throw ExecutionError.busy(
        "The sandbox is busy (every slot and queue place taken, or this user's limit reached); retry shortly")
    } catch let error as CancellationError {
      execution.status = .cancelled
      execution.reason = .cancelled
      let recorded = try await self.record(execution)
      // The caller's own call was cancelled: so is its answer. CancelExecution stopped it: the
      // caller gets the cancelled execution.
      if Task.isCancelled { throw error }
      return recorded
    }
    Self.apply(outcome, to: &execution)
    return try await self.record(execution)
  }

  /// The static findings: Python's through its own parser in the analyser's sandbox, when it
  /// answers; otherwise (and for JavaScript and TypeScript) from the tokens.
  public func analysis(_ code: String, language: Language) async -> SecurityReport {
    if language == .python, let analyzer = self.analyzer, let answer = await analyzer.analyze(code) {
      switch answer {
      case .findings(let findings):
        return SecurityReport(findings: findings)
      case .unparsable(let message, let line):
        return SecurityReport(findings: [SecurityFinding(rule: "syntax-error", severity: .low, message: message, line: line, column: 0)])
      }
    }
    return SecurityAnalysis.analyze(code, language: language)
  }

  /// Stops a run of the caller's; the finished execution.
  public func cancel(_ id: UUID, caller: UUID) async throws -> Execution {
    guard let current = try await self.store.execution(id, userID: caller) else { throw ExecutionError.notFound }
    if current.status.isFinished { return current }
    // Here, or on the instance running it.
    await self.running.cancel(id)
    let deadline = ContinuousClock.now + .seconds(2)
    var latest = current
    while !latest.status.isFinished && ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(50))
      latest = try await self.execution(id, caller: caller)
    }
    return latest
  }

  /// The Redis channel of cancellations: an execution id per message.
  public static let cancelChannel = "code-sandbox:cancel"

  /// Follows the cancellations other instances publish, until cancelled.
  public func followCancellations() async {
    await self.running.follow()
  }

  public func execution(_ id: UUID, caller: UUID) async throws -> Execution {
    guard let execution = try await self.store.execution(id, userID: caller) else { throw ExecutionError.notFound }
    return execution
  }

  /// Writes the finished run even when the call was cancelled (a cancelled task's queries fail)
  /// and returns it as stored: with its times and output files. A row something else finished
  /// first (the stale sweep) is read back as it is.
  private func record(_ execution: Execution) async throws -> Execution {
    let store = self.store
    if let stored = try await Task(operation: { try await store.finish(execution) }).value { return stored }
    return try await self.execution(execution.id, caller: execution.userID)
  }

  /// A page of the caller's executions, newest first (ExecutionStore.list).
  public func list(
    caller: UUID, language: Language?, status: Execution.Status?, agentID: UUID?, after cursor: (Date, UUID)?, limit: Int
  ) async throws -> (executions: [Execution], more: Bool, total: Int) {
    try await self.store.list(userID: caller, language: language, status: status, agentID: agentID, after: cursor, limit: limit)
  }

  /// A retried request: the first run's execution once it has finished.
  private func waitForFinish(_ first: Execution) async throws -> Execution {
    let deadline = ContinuousClock.now + .milliseconds(first.limits.timeoutMilliseconds) + .seconds(90)
    var current = first
    while !current.status.isFinished && ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(100))
      current = try await self.execution(first.id, caller: first.userID)
    }
    return current
  }

  /// What each run-time event costs the security score (README).
  static func runtimeCost(_ reason: Execution.Reason) -> Int {
    switch reason {
    case .deniedSyscall: 40
    case .memoryLimit, .cpuLimit, .timeLimit: 10
    case .outputLimit, .signal: 5
    default: 0
    }
  }

  /// The sandbox's outcome as the execution's status, reason, output and metrics.
  static func apply(_ outcome: SandboxOutcome, to execution: inout Execution) {
    let limit = execution.limits.maxOutputBytes
    (execution.stdout, execution.stdoutTruncated) = Self.text(outcome.stdout, limit: limit, truncated: outcome.stdoutTruncated)
    (execution.stderr, execution.stderrTruncated) = Self.text(outcome.stderr, limit: limit, truncated: outcome.stderrTruncated)
    execution.slot = "\(execution.slot?.split(separator: "/").first ?? "")/slot-\(outcome.slot)"
    execution.executionMilliseconds = Int(outcome.elapsed.components.seconds * 1000 + outcome.elapsed.components.attoseconds / 1_000_000_000_000_000)
    execution.memoryMegabytes = outcome.peakMemoryBytes.map { ($0 + (1 << 20) - 1) >> 20 }
    if let cpu = outcome.cpuNanoseconds {
      let wall = max(1, Double(outcome.elapsed.components.seconds) * 1e9 + Double(outcome.elapsed.components.attoseconds) / 1e9)
      execution.cpuPercent = (Double(cpu) / wall * 10000).rounded() / 100
    }
    execution.outputs = outcome.outputs.map { file in
      Execution.OutputFile(name: file.name, contentType: ContentType.of(name: file.name, content: file.content), size: file.content.count, content: file.content)
    }
    execution.outputsTruncated = outcome.outputsTruncated
    switch outcome.ending {
    case .exited(let code, let signal):
      execution.exitCode = Int(code)
      execution.signal = signal == 0 ? nil : Int(signal)
      switch signal {
      case 0:
        execution.status = code == 0 ? .completed : .failed
        execution.reason = .exited
      case SIGXCPU:
        execution.status = .failed
        execution.reason = .cpuLimit
      case SIGSYS:
        execution.status = .failed
        execution.reason = .deniedSyscall
        execution.errorMessage = "The program made a system call the sandbox forbids"
      default:
        execution.status = .failed
        execution.reason = .signal
      }
    case .stageFailed(_, let code):
      execution.status = .failed
      execution.reason = .compileError
      execution.exitCode = Int(code)
    case .timedOut:
      execution.status = .timeout
      execution.reason = outcome.computingAtTimeout ? .cpuLimit : .timeLimit
    case .cancelled:
      execution.status = .cancelled
      execution.reason = .cancelled
    case .outputLimit:
      execution.status = .failed
      execution.reason = .outputLimit
    case .memoryLimit:
      execution.status = .failed
      execution.reason = .memoryLimit
      execution.exitCode = 137
      execution.signal = Int(SIGKILL)
    case .sandboxFailed(let message):
      execution.status = .failed
      execution.reason = .sandboxError
      execution.errorMessage = message
    }
    if let reason = execution.reason, let score = execution.securityScore {
      execution.securityScore = max(0, score - Self.runtimeCost(reason))
    }
  }

  /// Output bytes as text (invalid UTF-8 replaced), cut to `limit` bytes at a character boundary.
  static func text(_ bytes: [UInt8], limit: Int, truncated: Bool) -> (String, Bool) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard text.utf8.count > limit else { return (text, truncated) }
    let encoded = Array(text.utf8)
    var end = limit
    while end > 0 && encoded[end] & 0xC0 == 0x80 { end -= 1 }  // not inside a character
    return (String(decoding: encoded[..<end], as: UTF8.self), true)
  }
}

/// An output file's media type: from its first bytes, else its extension.
enum ContentType {
  static func of(name: String, content: [UInt8]) -> String {
    if content.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "image/png" }
    if content.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
    if content.starts(with: Array("GIF8".utf8)) { return "image/gif" }
    if content.starts(with: Array("%PDF".utf8)) { return "application/pdf" }
    switch (name as NSString).pathExtension.lowercased() {
    case "svg": return "image/svg+xml"
    case "csv": return "text/csv"
    case "json": return "application/json"
    case "txt", "log": return "text/plain"
    case "md": return "text/markdown"
    case "html", "htm": return "text/html"
    default: return "application/octet-stream"
    }
  }
}
