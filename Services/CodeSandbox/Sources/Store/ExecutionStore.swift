public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of code_executions and code_outputs in code_db.
public struct ExecutionStore: Sendable {
  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  /// In listings the code is cut to this many bytes and the output text left out.
  static let listingCodeBytes = 1024

  private static func columns(full: Bool) -> String {
    let code = full ? "code" : "substring(code for \(Self.listingCodeBytes))"
    let output = full ? "coalesce(stdout, ''), coalesce(stderr, '')" : "'', ''"
    return """
      id, user_id, agent_id, language, \(code), status, container_id, \(output), exit_code, signal, stdout_truncated,
      stderr_truncated, limits::text, type_check, execution_time_ms, memory_used_mb, cpu_usage_percent::float8, security_score,
      security_issues::text, termination_reason, error_message, outputs_truncated, created_at, started_at, completed_at
      """
  }

  private static func execution(_ row: PostgresRow) throws -> Execution {
    let columns = try row.decode(
      (UUID, UUID, UUID?, String, String, String, String?, String, String, Int?, Int?, Bool,
       Bool, String, Bool, Int?, Int?, Double?, Int?, String, String?, String?, Bool, Date, Date?, Date?).self)
    let limits = (try? JSONDecoder().decode(Execution.Limits.self, from: Data(columns.13.utf8))) ?? .defaults
    return Execution(
      id: columns.0, userID: columns.1, agentID: columns.2, language: Language(rawValue: columns.3) ?? .python, code: columns.4,
      status: Execution.Status(rawValue: columns.5) ?? .failed, slot: columns.6, stdout: columns.7, stderr: columns.8,
      exitCode: columns.9, signal: columns.10, stdoutTruncated: columns.11, stderrTruncated: columns.12, limits: limits,
      typeCheck: columns.14, executionMilliseconds: columns.15, memoryMegabytes: columns.16, cpuPercent: columns.17,
      securityScore: columns.18, findings: Self.findings(json: columns.19), reason: columns.20.flatMap(Execution.Reason.init(rawValue:)),
      errorMessage: columns.21, outputsTruncated: columns.22, createdAt: columns.23, startedAt: columns.24, completedAt: columns.25)
  }

  static func json(_ findings: [SecurityFinding]) -> String {
    JSONValue.array(
      findings.map { finding in
        .object([
          "rule": .string(finding.rule), "severity": .number(Double(finding.severity.rawValue)), "message": .string(finding.message),
          "line": .number(Double(finding.line)), "column": .number(Double(finding.column)),
        ])
      }
    ).jsonText
  }

  static func findings(json: String) -> [SecurityFinding] {
    guard case .array(let items)? = try? JSONValue(jsonText: json) else { return [] }
    return items.compactMap { item in
      guard case .object(let fields) = item, let rule = fields["rule"]?.stringValue,
        case .number(let severity)? = fields["severity"], let level = SecurityFinding.Severity(rawValue: Int(severity))
      else { return nil }
      func int(_ key: String) -> Int { if case .number(let n)? = fields[key] { return Int(n) } else { return 0 } }
      return SecurityFinding(rule: rule, severity: level, message: fields["message"]?.stringValue ?? "", line: int("line"), column: int("column"))
    }
  }

  /// Records a run before it starts (pending). With a request id already used by this user, the
  /// first run's row instead (`created` false).
  public func insert(_ execution: Execution, requestID: UUID?, stdinBytes: Int) async throws -> (execution: Execution, created: Bool) {
    // container_id: the instance ("host:port/queued" until a slot runs it), so a restarted
    // instance knows its own interrupted runs.
    let limits = String(decoding: try JSONEncoder().encode(execution.limits), as: UTF8.self)
    let rows = try await self.database.query(
      """
      INSERT INTO code_executions (id, user_id, agent_id, language, code, status, container_id, limits, type_check, security_score,
        security_issues, stdin_bytes, request_id)
      VALUES (\(execution.id), \(execution.userID), \(execution.agentID), \(execution.language.rawValue), \(execution.code),
        'pending', \(execution.slot), \(limits)::jsonb, \(execution.typeCheck), \(execution.securityScore), \(Self.json(execution.findings))::jsonb,
        \(stdinBytes), \(requestID))
      ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
      RETURNING \(unescaped: Self.columns(full: true))
      """, logger: self.logger)
    if let row = rows.first { return (try Self.execution(row), true) }
    guard let requestID,
      let existing = try await self.database.query(
        "SELECT \(unescaped: Self.columns(full: true)) FROM code_executions WHERE user_id = \(execution.userID) AND request_id = \(requestID)",
        logger: self.logger
      ).first
    else { throw ExecutionError.unavailable("the execution's row could not be written") }
    return (try Self.execution(existing), false)
  }

  /// Removes a run that never started (the sandbox was full).
  public func delete(_ id: UUID) async throws {
    _ = try await self.database.query("DELETE FROM code_executions WHERE id = \(id) AND status = 'pending'", logger: self.logger)
  }

  /// pending → running, in the slot that runs it.
  public func markRunning(_ id: UUID, slot: String) async throws {
    _ = try await self.database.query(
      "UPDATE code_executions SET status = 'running', container_id = \(slot), started_at = now() WHERE id = \(id) AND status = 'pending'",
      logger: self.logger)
  }

  /// Writes a finished run and its output files and returns the row as stored (with the run's
  /// output files); nil when the row had already finished (it is left alone). One statement
  /// when there are no output files.
  public func finish(_ execution: Execution) async throws -> Execution? {
    let update: PostgresQuery = """
      UPDATE code_executions SET status = \(execution.status.rawValue), stdout = \(execution.stdout), stderr = \(execution.stderr),
        exit_code = \(execution.exitCode), signal = \(execution.signal), stdout_truncated = \(execution.stdoutTruncated),
        stderr_truncated = \(execution.stderrTruncated), execution_time_ms = \(execution.executionMilliseconds),
        memory_used_mb = \(execution.memoryMegabytes), cpu_usage_percent = \(execution.cpuPercent.map { min($0, 999.99) }),
        security_score = \(execution.securityScore), termination_reason = \(execution.reason?.rawValue),
        error_message = \(execution.errorMessage.map { String($0.prefix(2000)) }), outputs_truncated = \(execution.outputsTruncated),
        started_at = coalesce(started_at, \(execution.startedAt)), completed_at = now()
      WHERE id = \(execution.id) AND status IN ('pending', 'running')
      RETURNING \(unescaped: Self.columns(full: true))
      """
    guard !execution.outputs.isEmpty else {
      return try await self.database.query(update, logger: self.logger).first.map(Self.execution)
    }
    return try await self.database.withTransaction(logger: self.logger) { connection -> Execution? in
      guard var stored = try await connection.query(update, logger: self.logger).first.map(Self.execution) else { return nil }
      stored.outputs = execution.outputs.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
      for file in execution.outputs {
        _ = try await connection.query(
          """
          INSERT INTO code_outputs (execution_id, name, content_type, size_bytes, content)
          VALUES (\(execution.id), \(file.name), \(file.contentType), \(file.size), \(ByteBuffer(bytes: file.content)))
          ON CONFLICT (execution_id, name) DO NOTHING
          """, logger: self.logger)
      }
      return stored
    }
  }

  /// A user's execution with its output files.
  public func execution(_ id: UUID, userID: UUID) async throws -> Execution? {
    guard
      var execution = try await self.database.query(
        "SELECT \(unescaped: Self.columns(full: true)) FROM code_executions WHERE id = \(id) AND user_id = \(userID)", logger: self.logger
      ).first.map(Self.execution)
    else { return nil }
    execution.outputs = try await self.database.query(
      "SELECT name, content_type, size_bytes, content FROM code_outputs WHERE execution_id = \(id) ORDER BY name COLLATE \"C\"", logger: self.logger
    ).map { row in
      let (name, type, size, content) = try row.decode((String, String, Int, ByteBuffer).self)
      return Execution.OutputFile(name: name, contentType: type, size: size, content: Array(content.readableBytesView))
    }
    return execution
  }

  /// A page of a user's executions, newest first: the code cut short, no output text or files.
  public func list(
    userID: UUID, language: Language?, status: Execution.Status?, agentID: UUID?, after cursor: (Date, UUID)?, limit: Int
  ) async throws -> (executions: [Execution], more: Bool, total: Int) {
    let (after, afterID) = (cursor?.0, cursor?.1)
    let (lang, state) = (language?.rawValue, status?.rawValue)
    let total = try await self.database.query(
      """
      SELECT count(*) FROM code_executions
      WHERE user_id = \(userID) AND (\(lang)::text IS NULL OR language = \(lang))
        AND (\(state)::text IS NULL OR status = \(state)) AND (\(agentID)::uuid IS NULL OR agent_id = \(agentID))
      """, logger: self.logger)
    var page = try await self.database.query(
      """
      SELECT \(unescaped: Self.columns(full: false)) FROM code_executions
      WHERE user_id = \(userID) AND (\(lang)::text IS NULL OR language = \(lang))
        AND (\(state)::text IS NULL OR status = \(state)) AND (\(agentID)::uuid IS NULL OR agent_id = \(agentID))
        AND (\(after)::timestamptz IS NULL OR (created_at, id) < (\(after), \(afterID)))
      ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
      """, logger: self.logger
    ).map(Self.execution)
    let more = page.count > limit
    if more { page.removeLast() }
    return (page, more, try total.first?.decode(Int.self) ?? 0)
  }

  /// Runs that cannot still be going are failed as interrupted: this instance's own at its start
  /// (`instance`: "host:port"), any instance's once older than the longest wait plus the longest
  /// run. A crash leaves nothing running forever. Returns how many.
  public func failStale(instance: String?, olderThan age: Duration) async throws -> Int {
    try await self.database.query(
      """
      UPDATE code_executions SET status = 'failed', termination_reason = 'interrupted', completed_at = now(),
        error_message = 'The service stopped before the run finished'
      WHERE status IN ('pending', 'running')
        AND (created_at < now() - make_interval(secs => \(Double(age.components.seconds))) OR split_part(container_id, '/', 1) = \(instance))
      RETURNING id
      """, logger: self.logger
    ).count
  }
}
