import Foundation
import PlatformCore
import PlatformTesting
import PostgresNIO
import Testing

@Suite("Migrations against PostgreSQL")
struct MigrationRunnerTests {
  static let first = Migration(version: 1, name: "widgets", sql: "CREATE TABLE widgets (id INT PRIMARY KEY, name TEXT NOT NULL);")
  static let second = Migration(
    version: 2, name: "widget_colour",
    sql: "ALTER TABLE widgets ADD COLUMN colour TEXT; INSERT INTO widgets VALUES (1, 'a;b', 'red');")

  static func tables(_ client: PostgresClient) async throws -> Set<String> {
    var names = Set<String>()
    for try await (name,) in try await client.query(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", logger: TestPostgres.logger
    ).decode((String,).self) {
      names.insert(name)
    }
    return names
  }

  static func recorded(_ client: PostgresClient) async throws -> [Int: String] {
    var rows: [Int: String] = [:]
    for try await (version, checksum) in try await client.query(
      "SELECT version, checksum FROM schema_migrations", logger: TestPostgres.logger
    ).decode((Int, String).self) {
      rows[version] = checksum
    }
    return rows
  }

  @Test("Pending migrations apply once, in order, recorded with checksums")
  func appliesOnce() async throws {
    try await TestPostgres.withTemporaryDatabase { database async throws in
      try await TestPostgres.withClient(database) { client async throws in
        let runner = MigrationRunner(client: client, logger: TestPostgres.logger)
        #expect(try await runner.apply([Self.first]) == [1])
        #expect(try await runner.apply([Self.first, Self.second]) == [2])
        #expect(try await runner.apply([Self.first, Self.second]) == [])
        #expect(try await Self.recorded(client) == [1: Self.first.checksum, 2: Self.second.checksum])
        #expect(try await Self.tables(client).isSuperset(of: ["widgets", "schema_migrations"]))
      }
    }
  }

  @Test("Waiting for another session's migration lock is bounded and names the holder")
  func lockTimeout() async throws {
    try await TestPostgres.withTemporaryDatabase { database async throws in
      try await TestPostgres.withClient(database) { client async throws in
        try await client.withConnection { holder in
          try await holder.query("SET application_name = 'stuck-replica'", logger: TestPostgres.logger)
          try await holder.query("SELECT pg_advisory_lock(\(Int64(0x706C_6174_6D69_6772)))", logger: TestPostgres.logger)
          let runner = MigrationRunner(client: client, logger: TestPostgres.logger, lockTimeout: .milliseconds(600))
          let start = ContinuousClock.now
          do {
            try await runner.apply([Self.first])
            Issue.record("migrated while another session held the lock")
          } catch let error as MigrationError {
            guard case .lockTimeout(_, let holder) = error else {
              Issue.record("unexpected \(error)")
              return
            }
            #expect(holder.contains("stuck-replica"))
            #expect(error.description.contains("migration lock"))
          }
          #expect(ContinuousClock.now - start < .seconds(3))
          #expect(try await !Self.tables(client).contains("widgets"))
          try await holder.query("SELECT pg_advisory_unlock_all()", logger: TestPostgres.logger)
        }
        // Once the lock is free, start-up goes on.
        #expect(try await MigrationRunner(client: client, logger: TestPostgres.logger, lockTimeout: .seconds(1)).apply([Self.first]) == [1])
      }
    }
  }

  @Test("An applied migration that changed stops start-up with a clear message")
  func changedMigration() async throws {
    try await TestPostgres.withTemporaryDatabase { database async throws in
      try await TestPostgres.withClient(database) { client async throws in
        let runner = MigrationRunner(client: client, logger: TestPostgres.logger)
        try await runner.apply([Self.first])
        let edited = Migration(version: 1, name: "widgets", sql: Self.first.sql + " -- edited")
        do {
          try await runner.apply([edited, Self.second])
          Issue.record("a changed migration was accepted")
        } catch let error as MigrationError {
          guard case .changedAfterApplied(let version, _, let recorded, let current) = error else {
            Issue.record("unexpected \(error)")
            return
          }
          #expect(version == 1 && recorded == Self.first.checksum && current == edited.checksum)
          #expect(error.description.contains("was changed after it was applied"))
        }
        // Nothing after the changed one ran.
        #expect(try await Self.recorded(client).keys.sorted() == [1])
      }
    }
  }

  @Test("A failing migration leaves nothing behind: no table, no record")
  func failingMigration() async throws {
    try await TestPostgres.withTemporaryDatabase { database async throws in
      try await TestPostgres.withClient(database) { client async throws in
        let runner = MigrationRunner(client: client, logger: TestPostgres.logger)
        let broken = Migration(version: 1, name: "broken", sql: "CREATE TABLE half (id INT); SELECT * FROM no_such_table;")
        await #expect(throws: MigrationError.self) { try await runner.apply([broken]) }
        #expect(try await Self.tables(client) == ["schema_migrations"])
        #expect(try await Self.recorded(client).isEmpty)
        // A fixed migration then applies.
        #expect(try await runner.apply([Self.first]) == [1])
      }
    }
  }

  @Test("Replicas starting together apply each migration exactly once (advisory lock)")
  func concurrentRunners() async throws {
    try await TestPostgres.withTemporaryDatabase { database async throws in
      try await TestPostgres.withClient(database) { client async throws in
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
          for _ in 0..<4 {
            group.addTask { try await MigrationRunner(client: client, logger: TestPostgres.logger).apply([Self.first, Self.second]) }
          }
          return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(applied.sorted() == [1, 2])
      }
    }
  }

  @Test("Migration files load in version order; misnamed files are refused")
  func loading() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try "SELECT 2;".write(to: directory.appendingPathComponent("0002_second.sql"), atomically: true, encoding: .utf8)
    try "SELECT 1;".write(to: directory.appendingPathComponent("0001_first.sql"), atomically: true, encoding: .utf8)
    try "notes".write(to: directory.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
    let migrations = try Migration.load(directory: directory)
    #expect(migrations.map(\.version) == [1, 2])
    #expect(migrations.map(\.name) == ["first", "second"])
    try "SELECT 3;".write(to: directory.appendingPathComponent("third.sql"), atomically: true, encoding: .utf8)
    #expect(throws: MigrationError.badFileName("third.sql")) { try Migration.load(directory: directory) }
  }
}
