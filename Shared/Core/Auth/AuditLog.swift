public import Foundation
public import Logging
internal import PostgresNIO

/// One entry of `auth_audit_log`.
public struct AuditEvent: Sendable, Equatable {
  public enum Decision: String, Sendable {
    case allow, deny, mask
  }

  /// A user id, an API key id, or (for a login with an unknown email) a hash of what was tried.
  public var subject: String
  /// What was acted on: an RPC path, `auth`, `user:<id>`, `api_key:<id>`.
  public var resource: String
  /// `login`, `login_failed`, `refresh`, `refresh_reuse`, `logout`, `register`, `refused`, ...
  public var action: String
  public var decision: Decision
  /// Why, in a few short fields (a refusal's reason, the peer).
  public var detail: [String: String]
  public var traceID: String

  public init(
    subject: String, resource: String, action: String, decision: Decision, detail: [String: String] = [:],
    traceID: String? = nil
  ) {
    self.subject = String(subject.prefix(64))
    self.resource = String(resource.prefix(128))
    self.action = String(action.prefix(32))
    self.decision = decision
    self.detail = detail
    self.traceID = traceID ?? TraceContext.current?.traceID ?? "-"
  }
}

/// Writes `auth_audit_log` rows in the service's own database.
public struct AuditLog: Sendable {
  private let database: Database
  private let logger: Logger

  /// Each detail value is cut to this many bytes, and the detail to this many fields.
  static let maxDetailValueBytes = 256
  static let maxDetailFields = 6

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  /// Records `event` in its own statement.
  public func record(_ event: AuditEvent) async throws {
    try await self.insert(event) { query in try await self.database.query(query, logger: self.logger) }
  }

  /// Records `event` inside the caller's transaction (it commits or rolls back with it).
  public func record(_ event: AuditEvent, on connection: DatabaseConnection) async throws {
    try await self.insert(event) { query in try await connection.query(query, logger: self.logger) }
  }

  private func insert(_ event: AuditEvent, _ run: (PostgresQuery) async throws -> [PostgresRow]) async throws {
    var detail: [String: JSONValue] = [:]
    for (name, value) in event.detail.sorted(by: { $0.key < $1.key }).prefix(Self.maxDetailFields) {
      detail[String(name.prefix(32))] = .string(value.truncated(toUTF8Bytes: Self.maxDetailValueBytes))
    }
    let detailText = JSONValue.object(detail).jsonText
    _ = try await run(
      """
      INSERT INTO auth_audit_log (trace_id, subject_id, resource, action, decision, detail)
      VALUES (\(event.traceID), \(event.subject), \(event.resource), \(event.action), \(event.decision.rawValue), \(detailText)::jsonb)
      """)
  }
}
