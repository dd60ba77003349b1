import Foundation
import Logging
import PlatformCore
import PlatformRedis
import PlatformTesting
import PostgresNIO
import Synchronization
import Testing

@Suite("Session checks and the audit recorder")
struct SessionAndAuditTests {
  static let logger = TestPostgres.quietLogger

  @Test("A session is live until revoked; a revocation is seen once the confirmation expires; another sid is ended")
  func sessionCheck() async throws {
    let server = try await RedisTestServer()
    let redis = try RedisFeatureTests.client(server)
    let user = UUID()
    let store = SessionStore(redis: redis)
    try await store.create(Session(userID: user, email: "a@example.com", roles: ["viewer"], permissions: [], sessionID: "s1"))
    let check = SessionCheck(redis: redis, cacheFor: .milliseconds(300), logger: Self.logger)
    #expect(await check.check(userID: user, sessionID: "s1") == .live)
    #expect(await check.check(userID: user, sessionID: "s2") == .ended)
    #expect(try await store.revoke(user))
    #expect(await check.check(userID: user, sessionID: "s1") == .live)  // confirmed a moment ago
    try await Task.sleep(for: .milliseconds(400))
    #expect(await check.check(userID: user, sessionID: "s1") == .ended)
    await redis.close()
  }

  @Test("Redis down: the session check follows its policy, counts each unchecked token and says so in the log once a minute",
    arguments: [SessionOutagePolicy.allow, .deny])
  func sessionOutage(_ policy: SessionOutagePolicy) async throws {
    let server = try await RedisTestServer()
    let redis = try RedisFeatureTests.client(server)
    let lines = CapturedLog()
    let check = SessionCheck(redis: redis, outagePolicy: policy, logger: lines.logger)
    server.kill()
    for _ in 0..<3 {
      #expect(await check.check(userID: UUID(), sessionID: "s") == .unknown(accepted: policy == .allow))
    }
    #expect(check.unverifiedCount == 3)
    let warnings = lines.messages.filter { $0.contains("session cannot be checked") }
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains(policy == .allow ? "Accepting" : "Refusing") == true)
    await redis.close()
  }

  @Test("A flood of events queues at most the capacity, the rest dropped; everything queued is written by finish")
  func recorderBounds() async throws {
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        try await MigrationRunner(client: client, logger: Self.logger).apply(CoreMigrations.all)
        let log = AuditLog(database: Database(client: client), logger: Self.logger)
        let recorder = AuditRecorder(log: log, capacity: 100, logger: Self.logger)
        // Queued before the writer runs: 100 fit, 400 are dropped.
        for index in 0..<500 {
          recorder.record(AuditEvent(subject: "anonymous", resource: "/x/Y", action: "refused", decision: .deny, detail: ["n": "\(index)"]))
        }
        let writer = Task { await recorder.run() }
        recorder.finish()
        await writer.value
        let rows = try await client.query("SELECT count(*), min((detail->>'n')::int), max((detail->>'n')::int) FROM auth_audit_log", logger: Self.logger)
        for try await (count, first, last) in rows.decode((Int, Int, Int).self) {
          #expect(count == 100 && first == 0 && last == 99)
        }
      }
    }
  }

  @Test("An event's fields are cut to the columns' sizes and its detail to a few short fields")
  func eventLimits() async throws {
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        try await MigrationRunner(client: client, logger: Self.logger).apply(CoreMigrations.all)
        let log = AuditLog(database: Database(client: client), logger: Self.logger)
        var detail: [String: String] = [:]
        for index in 0..<50 { detail["field\(index)"] = String(repeating: "é", count: 10_000) }
        try await log.record(
          AuditEvent(
            subject: String(repeating: "s", count: 1000), resource: String(repeating: "r", count: 1000),
            action: String(repeating: "a", count: 1000), decision: .deny, detail: detail))
        let rows = try await client.query(
          "SELECT length(subject_id), length(resource), length(action), octet_length(detail::text) FROM auth_audit_log",
          logger: Self.logger)
        for try await (subject, resource, action, detailBytes) in rows.decode((Int, Int, Int, Int).self) {
          #expect(subject == 64 && resource == 128 && action == 32 && detailBytes <= 2048)
        }
      }
    }
  }
}

/// A logger whose warnings and errors a test can read.
final class CapturedLog: Sendable {
  private let lines = Mutex<[String]>([])
  var messages: [String] { self.lines.withLock { $0 } }

  var logger: Logger {
    var logger = Logger(label: "captured") { _ in Handler(log: self) }
    logger.logLevel = .warning
    return logger
  }

  struct Handler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
      get { self.metadata[key] }
      set { self.metadata[key] = newValue }
    }
    func log(event: LogEvent) {
      self.log.lines.withLock { $0.append(event.message.description) }
    }
  }
}
