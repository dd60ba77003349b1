public import CoreMetrics
internal import Foundation
public import Logging
internal import PostgresNIO
internal import Synchronization

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
  /// The policy that decided (a service's own `auth_policy` row), if any.
  public var policyID: Int64?
  /// Fields a mask decision masked (at most 64, each at most 128 bytes).
  public var maskedFields: [String]

  public init(
    subject: String, resource: String, action: String, decision: Decision, detail: [String: String] = [:],
    traceID: String? = nil, policyID: Int64? = nil, maskedFields: [String] = []
  ) {
    self.subject = String(subject.prefix(64))
    self.resource = String(resource.prefix(128))
    self.action = String(action.prefix(32))
    self.decision = decision
    self.detail = detail
    self.traceID = traceID ?? TraceContext.current?.traceID ?? "-"
    self.policyID = policyID
    self.maskedFields = maskedFields.prefix(64).map { $0.truncated(toUTF8Bytes: 128) }
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

  /// Records `event`, logging (not throwing) a failure: for events about something already
  /// done, which a failed audit write must not undo.
  public func recordOrLog(_ event: AuditEvent) async {
    do {
      try await self.record(event)
    } catch {
      self.logger.error("An audit event was not recorded", metadata: ["action": "\(event.action)", "error": "\(error)"])
    }
  }

  /// Records `event` inside the caller's transaction (it commits or rolls back with it).
  public func record(_ event: AuditEvent, on connection: DatabaseConnection) async throws {
    try await self.insert(event) { query in try await connection.query(query, logger: self.logger) }
  }

  /// Records `events` in one statement.
  public func record(_ events: [AuditEvent]) async throws {
    guard !events.isEmpty else { return }
    _ = try await self.database.query(
      """
      INSERT INTO auth_audit_log (trace_id, subject_id, resource, action, decision, detail, auth_policy_id, masked_fields)
      SELECT t, s, r, a, d, x::jsonb, nullif(p, '')::bigint, m::jsonb FROM unnest(
        \(events.map(\.traceID)), \(events.map(\.subject)), \(events.map(\.resource)), \(events.map(\.action)),
        \(events.map(\.decision.rawValue)), \(events.map(Self.detailText)), \(events.map { $0.policyID.map(String.init) ?? "" }), \(events.map(Self.maskedText))
      ) AS e(t, s, r, a, d, x, p, m)
      """, logger: self.logger)
  }

  private func insert(_ event: AuditEvent, _ run: (PostgresQuery) async throws -> [PostgresRow]) async throws {
    _ = try await run(
      """
      INSERT INTO auth_audit_log (trace_id, subject_id, resource, action, decision, detail, auth_policy_id, masked_fields)
      VALUES (\(event.traceID), \(event.subject), \(event.resource), \(event.action), \(event.decision.rawValue),
        \(Self.detailText(event))::jsonb, \(event.policyID), \(Self.maskedText(event))::jsonb)
      """)
  }

  private static func maskedText(_ event: AuditEvent) -> String {
    JSONValue.array(event.maskedFields.map { .string($0) }).jsonText
  }

  private static func detailText(_ event: AuditEvent) -> String {
    var detail: [String: JSONValue] = [:]
    for (name, value) in event.detail.sorted(by: { $0.key < $1.key }).prefix(Self.maxDetailFields) {
      detail[String(name.prefix(32))] = .string(value.truncated(toUTF8Bytes: Self.maxDetailValueBytes))
    }
    return JSONValue.object(detail).jsonText
  }
}

/// Records audit events off the call path: a bounded queue that one task drains into
/// `auth_audit_log`, many rows per statement. A flood of refused calls queues at most `capacity`
/// events; beyond that they are dropped and counted (`audit_events_dropped_total`), and no call
/// ever waits for the database to write its refusal.
public final class AuditRecorder: Sendable {
  private let log: AuditLog
  private let capacity: Int
  private let queue = Mutex<[AuditEvent]>([])
  /// Wakes the writer; holds at most one pending wake-up.
  private let wakeUps: AsyncStream<Void>
  private let wake: AsyncStream<Void>.Continuation
  private let dropped: Counter
  private let logger: Logger
  static let batchSize = 200

  public init(log: AuditLog, capacity: Int = 2000, logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory) {
    self.log = log
    self.capacity = capacity
    (self.wakeUps, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    self.dropped = Counter(label: "audit_events_dropped_total", factory: metrics)
    self.logger = logger
  }

  /// Queues `event`; never waits.
  public func record(_ event: AuditEvent) {
    let queued = self.queue.withLock { queue in
      guard queue.count < self.capacity else { return false }
      queue.append(event)
      return true
    }
    if queued { self.wake.yield() } else { self.dropped.increment() }
  }

  /// Writes queued events until `finish()`, then the rest.
  public func run() async {
    for await _ in self.wakeUps { await self.writeQueued() }
    await self.writeQueued()
  }

  private func writeQueued() async {
    let events = self.queue.withLock { queue in
      defer { queue.removeAll(keepingCapacity: true) }
      return queue
    }
    var start = 0
    while start < events.count {
      let batch = Array(events[start..<min(start + Self.batchSize, events.count)])
      start += batch.count
      do {
        try await self.log.record(batch)
      } catch {
        self.logger.error("Audit events were not recorded", metadata: ["count": "\(batch.count)", "error": "\(error)"])
      }
    }
  }

  /// Ends `run()` once the queued events are written.
  public func finish() {
    self.wake.finish()
  }
}
