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
  /// How long start-up waits for another process's migration lock.
  private let lockTimeout: Duration

  /// - Parameter lockTimeout: how long to wait while another process holds the migration lock
  ///   (a replica migrating, or one stuck mid-migration); default 60 s.
  public init(client: PostgresClient, logger: Logger, lockTimeout: Duration = .seconds(60)) {
    self.client = client
    self.logger = logger
    self.lockTimeout = lockTimeout
  }

  /// Applies the migrations not yet applied, in version order.
  /// - Returns: the versions applied by this call.
  /// - Throws: `MigrationError.changedAfterApplied` when an applied migration's checksum
  ///   differs; `MigrationError.failed` when a migration's SQL fails (nothing of it stays).
  @discardableResult
  public func apply(_ migrations: [Migration]) async throws -> [Int] {
    try await self.client.withConnection { connection in
      try await self.lock(on: connection)
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

  /// Takes the migration lock, polling while another session holds it, for at most
  /// `lockTimeout`.
  /// - Throws: `MigrationError.lockTimeout` naming the PostgreSQL backend that holds it.
  private func lock(on connection: PostgresConnection) async throws {
    let clock = ContinuousClock()
    let giveUp = clock.now + self.lockTimeout
    var logged = false
    while true {
      for try await (locked,) in try await connection.query(
        "SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: self.logger
      ).decode((Bool,).self) where locked {
        return
      }
      var holder = "unknown"
      for try await (pid, application) in try await connection.query(
        """
        SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND ((l.classid::bigint << 32) | l.objid::bigint) = \(Self.lockKey)
        """, logger: self.logger
      ).decode((Int32, String).self) {
        holder = application.isEmpty ? "PostgreSQL backend pid \(pid)" : "PostgreSQL backend pid \(pid) (\(application))"
      }
      if clock.now >= giveUp { throw MigrationError.lockTimeout(waited: self.lockTimeout, holder: holder) }
      if !logged {
        self.logger.notice("Waiting for the migration lock", metadata: ["holder": "\(holder)"])
        logged = true
      }
      try await Task.sleep(for: min(.milliseconds(250), max(giveUp - clock.now, .milliseconds(1))))
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
