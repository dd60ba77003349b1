public import Foundation
public import GRPCRuntime
public import Logging
public import PlatformCore
internal import PlatformRedis
public import PostgresNIO

/// Where tests find PostgreSQL: `TEST_DATABASE_URL` names a database of a role that may create
/// databases (default: the local services' `postgres://platform:platform@127.0.0.1:5432/postgres`).
public enum TestPostgres {
  public static var adminURL: String {
    Environment.process.string("TEST_DATABASE_URL", default: "postgres://platform:platform@127.0.0.1:5432/postgres")
  }

  /// Logs critical messages only: for tests that cause outages on purpose.
  public static let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
  }()

  /// Logs warnings and errors only.
  public static let logger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
  }()

  /// Creates a database with a unique name, hands its configuration to `body`, then drops it.
  public static func withTemporaryDatabase<Result>(
    _ body: (DatabaseConfiguration) async throws -> Result
  ) async throws -> Result {
    let admin = try DatabaseConfiguration(url: Self.adminURL, poolSize: 1)
    let name = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
    _ = try await Self.withClient(admin) { client in
      try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: Self.logger)
    }
    var configuration = admin
    configuration.database = String(name)
    configuration.poolSize = 4
    do {
      let result = try await body(configuration)
      try await Self.drop(name, admin: admin)
      return result
    } catch {
      try? await Self.drop(name, admin: admin)
      throw error
    }
  }

  private static func drop(_ name: some StringProtocol, admin: DatabaseConfiguration) async throws {
    _ = try await Self.withClient(admin) { client in
      try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: Self.logger)
    }
  }

  /// Runs `body` with a running client of `configuration`.
  public static func withClient<Result>(
    _ configuration: DatabaseConfiguration, _ body: (PostgresClient) async throws -> Result
  ) async throws -> Result {
    let client = PostgresClient(configuration: configuration, logger: Self.logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await client.run() }
      defer { group.cancelAll() }
      return try await body(client)
    }
  }
}

/// A platform service running in-process on a free loopback port against its own fresh
/// database, with a client for it and a token mint: what integration tests talk to.
public struct PlatformTestService: Sendable {
  /// The port the service listens on.
  public let port: Int
  /// The admin port (`/metrics`, `/healthz`, `/readyz`).
  public let adminPort: Int
  /// A client connected to the service.
  public let client: RPCClient
  /// The service's database, for checking what a call changed (or did not).
  public let database: PostgresClient
  /// The auth settings the service verifies tokens with.
  public let auth: AuthConfiguration
  private let issuer: TokenIssuer

  /// The key test services verify tokens with (a new one per test process).
  public static let testAuth = AuthConfiguration(signingKey: .generate(id: "test-key"))

  /// Starts `definition` on a fresh database, runs `body`, then stops the service and drops the
  /// database.
  public static func run<Result: Sendable>(
    _ definition: some PlatformServiceDefinition,
    configure: (inout ServiceConfiguration) -> Void = { _ in },
    _ body: (PlatformTestService) async throws -> Result
  ) async throws -> Result {
    try await Self.runReplicas(definition, count: 1, configure: configure) { try await body($0[0]) }
  }

  /// Starts `count` replicas of `definition` sharing one fresh database (and Redis, as
  /// configured), runs `body` with a client for each, then stops them and drops the database.
  public static func runReplicas<Result: Sendable>(
    _ definition: some PlatformServiceDefinition,
    count: Int,
    configure: (inout ServiceConfiguration) -> Void = { _ in },
    _ body: ([PlatformTestService]) async throws -> Result
  ) async throws -> Result {
    try await TestPostgres.withTemporaryDatabase { database in
      var configuration = ServiceConfiguration.defaults(for: definition.name)
      configuration.port = 0
      configuration.adminPort = 0
      configuration.database = database
      configuration.redis = try RedisConfiguration(url: Self.redisURL)
      configuration.auth = Self.testAuth
      configuration.shutdownGracePeriod = .seconds(1)
      configure(&configuration)
      let servers = (0..<count).map { _ in
        PlatformServer(definition: definition, configuration: configuration, logger: TestPostgres.logger)
      }
      return try await withThrowingTaskGroup(of: Void.self) { group in
        for server in servers { group.addTask { try await server.run() } }
        defer { group.cancelAll() }
        var clients: [(port: Int, adminPort: Int, client: RPCClient)] = []
        for server in servers {
          let port = try await server.listeningPort
          clients.append((port, try await server.adminPort, try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]))))
        }
        let issuer = try await TokenIssuer(configuration: configuration.auth)
        return try await TestPostgres.withClient(database) { databaseClient in
          let services = clients.map {
            PlatformTestService(
              port: $0.port, adminPort: $0.adminPort, client: $0.client, database: databaseClient, auth: configuration.auth,
              issuer: issuer)
          }
          do {
            let result = try await body(services)
            for (_, _, client) in clients { await client.close() }
            return result
          } catch {
            for (_, _, client) in clients { await client.close() }
            throw error
          }
        }
      }
    }
  }

  /// Where test services find Redis: `TEST_REDIS_URL` (default the local services'
  /// redis://127.0.0.1:6379). Without a Redis there, services still pass their tests: caches
  /// fall through to PostgreSQL.
  public static var redisURL: String {
    Environment.process.string("TEST_REDIS_URL", default: "redis://127.0.0.1:6379")
  }

  /// A valid token for `user` with `roles` and extra `permissions`.
  public func token(
    for user: UUID, roles: [Role] = [.developer], permissions: [Permission] = [], lifetime: Duration = .seconds(300)
  ) async throws -> String {
    try await self.issuer.issue(userID: user, roles: roles, permissions: permissions, lifetime: lifetime)
  }

  /// Call options carrying `token` as a bearer token.
  public func options(token: String) -> CallOptions {
    var metadata = Metadata()
    metadata.addString("Bearer \(token)", forKey: "authorization")
    return CallOptions(timeout: .seconds(10), metadata: metadata)
  }

  /// Call options for `user` with `roles`.
  public func options(for user: UUID, roles: [Role] = [.developer], permissions: [Permission] = []) async throws -> CallOptions {
    self.options(token: try await self.token(for: user, roles: roles, permissions: permissions))
  }
}
