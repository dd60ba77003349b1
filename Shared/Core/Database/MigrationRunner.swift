internal import Logging
public import PostgresNIO

/// Applies a service's migrations at start-up: under a PostgreSQL advisory lock (so replicas
/// starting together apply each migration once), each migration in its own transaction with its
/// row in `schema_migrations`, checking that applied migrations are unchanged.
public struct MigrationRunner: Sendable {
  /// The advisory lock key held while migrating (any constant, the same in every service).
  static let lockKey: Int64 = 0x706C_6174_6D69_6772  // "platmigr"

  private let client: PostgresClient
  private let logger: Logger

  public init(client: PostgresClient, logger: Logger) {
    self.client = client
    self.logger = logger
  }

  /// Applies the migrations not yet applied, in version order.
  /// - Returns: the versions applied by this call.
  /// - Throws: `MigrationError.changedAfterApplied` when an applied migration's checksum
  ///   differs; `MigrationError.failed` when a migration's SQL fails (nothing of it stays).
  @discardableResult
  public func apply(_ migrations: [Migration]) async throws -> [Int] {
    try await self.client.withConnection { connection in
      try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: self.logger)
      do {
        let applied = try await self.apply(migrations, on: connection)
        try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: self.logger)
        return applied
      } catch {
        // If this fails too, the lock goes with the session.
        _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: self.logger)
        throw error
      }
    }
  }

  private func apply(_ migrations: [Migration], on connection: PostgresConnection) async throws -> [Int] {
    try await connection.query(
      """
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        checksum TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )
      """, logger: self.logger)
    var recorded: [Int: (name: String, checksum: String)] = [:]
    for try await (version, name, checksum) in try await connection.query(
      "SELECT version, name, checksum FROM schema_migrations", logger: self.logger
    ).decode((Int, String, String).self) {
      recorded[version] = (name, checksum)
    }
    let known = Set(migrations.map(\.version))
    for version in recorded.keys.sorted() where !known.contains(version) {
      self.logger.warning(
        "The database has a migration this build does not know (a newer build applied it)",
        metadata: ["version": "\(version)"])
    }

    var applied: [Int] = []
    for migration in migrations {
      if let existing = recorded[migration.version] {
        guard existing.checksum == migration.checksum else {
          throw MigrationError.changedAfterApplied(
            version: migration.version, name: migration.name, recorded: existing.checksum, current: migration.checksum)
        }
        continue
      }
      self.logger.info("Applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
      // The migration's statements and its record commit together or not at all.
      var statementNumber = 0
      do {
        try await connection.withTransaction(logger: self.logger) { connection in
          for statement in SQLScript.statements(in: migration.sql) {
            statementNumber += 1
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
          }
          try await connection.query(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
            logger: self.logger)
        }
      } catch {
        throw MigrationError.failed(
          version: migration.version, name: migration.name,
          reason: "statement \(statementNumber): " + DatabaseErrors.describe(error))
      }
      applied.append(migration.version)
    }
    return applied
  }
}
