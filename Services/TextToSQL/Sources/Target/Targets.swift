public import Foundation
public import Logging
public import NIOCore
internal import NIOPosix
public import PlatformCore

/// Makes the target of a registered database, through the egress policy, and keeps PostgreSQL
/// pools for a while: one per database and version (an update makes a new one), closed after
/// `idleTimeout` without use, at most `maxPools` at once (the least recently used goes).
public actor Targets {
  public struct Configuration: Sendable {
    /// `SQL_ALLOWED_HOSTS`, with the platform's own database server protected.
    public var egress: EgressPolicy
    /// The platform's own database role on its own server, never a target's role.
    public var platformRole: (endpoint: [SocketAddress], username: String)?
    /// `SQL_SQLITE_DIR`; empty: SQLite databases are refused.
    public var sqliteDirectory: String
    /// Connections per registered PostgreSQL database.
    public var connectionsPerDatabase: Int
    public var idleTimeout: Duration
    public var maxPools: Int

    public init(
      egress: EgressPolicy, platformRole: (endpoint: [SocketAddress], username: String)?, sqliteDirectory: String,
      connectionsPerDatabase: Int = 4, idleTimeout: Duration = .seconds(300), maxPools: Int = 64
    ) {
      self.egress = egress
      self.platformRole = platformRole
      self.sqliteDirectory = sqliteDirectory
      self.connectionsPerDatabase = connectionsPerDatabase
      self.idleTimeout = idleTimeout
      self.maxPools = maxPools
    }
  }

  public nonisolated let configuration: Configuration
  private let logger: Logger
  private let sqlitePool: NIOThreadPool
  private var pools: [String: (target: PostgresTarget, lastUsed: ContinuousClock.Instant)] = [:]

  public init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
    self.sqlitePool = NIOThreadPool(numberOfThreads: 2)
    self.sqlitePool.start()
  }

  /// The target of `database` (`key` names a saved one's pool; nil for a one-off test).
  func target(kind: RegisteredDatabase.Kind, config: ConnectionConfig, key: String?) async throws(TargetError) -> any TargetDatabase {
    switch kind {
    case .sqlite:
      return try SQLiteTarget(file: config.database, directory: self.configuration.sqliteDirectory, pool: self.sqlitePool)
    case .mysql, .mssql:
      throw .unavailable("\(kind.rawValue) is not supported yet")
    case .postgresql:
      if let key, let pooled = self.pools[key] {
        self.pools[key]?.lastUsed = .now
        return pooled.target
      }
      let address: SocketAddress
      do {
        address = try await self.configuration.egress.resolve(host: config.host, port: config.port)
      } catch {
        throw .refused(error.description)
      }
      if let role = self.configuration.platformRole, role.username == config.username,
        role.endpoint.contains(where: { IPAddress($0) == IPAddress(address) && $0.port == address.port })
      {
        throw .refused("The platform's own database role is never used for a registered database")
      }
      let target = try PostgresTarget(
        address: address, config: config, maxConnections: self.configuration.connectionsPerDatabase, logger: self.logger)
      guard let key else { return target }
      if let existing = self.pools[key] {
        // Another caller made one meanwhile.
        await target.shutdown()
        return existing.target
      }
      self.pools[key] = (target, .now)
      if self.pools.count > self.configuration.maxPools, let oldest = self.pools.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
        self.pools[oldest.key] = nil
        await oldest.value.target.shutdown()
      }
      return target
    }
  }

  /// Closes the pools of `databaseID` (any version): after an update or a delete.
  public func forget(databaseID: UUID) async {
    let prefix = databaseID.uuidString.lowercased() + "/"
    for key in self.pools.keys where key.hasPrefix(prefix) {
      let pool = self.pools.removeValue(forKey: key)
      await pool?.target.shutdown()
    }
  }

  /// Closes pools idle longer than `idleTimeout`; the service calls it every minute.
  public func closeIdle() async {
    let cutoff = ContinuousClock.now - self.configuration.idleTimeout
    for (key, pool) in self.pools where pool.lastUsed < cutoff {
      self.pools[key] = nil
      await pool.target.shutdown()
    }
  }

  public func shutdown() async {
    for pool in self.pools.values { await pool.target.shutdown() }
    self.pools = [:]
    try? await self.sqlitePool.shutdownGracefully()
  }

  static func key(_ database: RegisteredDatabase) -> String {
    "\(database.id.uuidString.lowercased())/\(database.version)"
  }
}
