public import Logging
public import PlatformRedis

/// Everything a service reads from its environment, in one place (the README's config table).
public struct ServiceConfiguration: Sendable {
  /// Which service this is.
  public var service: PlatformServiceName
  /// Bind address (`HOST`, default 127.0.0.1; containers set 0.0.0.0).
  public var host: String
  /// Port (`PORT`, default the service's own; 0 picks a free one).
  public var port: Int
  /// The admin HTTP port with `/metrics`, `/healthz`, `/readyz` (`ADMIN_PORT`; 0 picks a free
  /// one). nil, the default: the service's port + 1000, or a free one when `port` is 0.
  public var adminPort: Int?
  /// The service's database (`DATABASE_URL`).
  public var database: DatabaseConfiguration
  /// Redis (`REDIS_URL`, default redis://127.0.0.1:6379, and the `REDIS_*` settings).
  public var redis: RedisConfiguration
  /// Calls per caller and class of RPC per minute (`RATE_LIMIT_READ_PER_MINUTE`,
  /// `RATE_LIMIT_WRITE_PER_MINUTE`, `RATE_LIMIT_EXECUTE_PER_MINUTE`, `RATE_LIMIT_PER_MINUTE` for
  /// the other classes; 0, the default, is unlimited).
  public var rateLimits: RateLimits
  /// What the rate limiter does while Redis is down (`RATE_LIMIT_REDIS_DOWN`, allow or deny;
  /// default allow).
  public var rateLimitOutagePolicy: RateLimitOutagePolicy
  /// What the session check does while Redis is down (`SESSION_CHECK_REDIS_DOWN`, allow or
  /// deny; default allow).
  public var sessionOutagePolicy: SessionOutagePolicy
  /// How bearer tokens are verified (`JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE`).
  public var auth: AuthConfiguration
  /// `LOG_LEVEL` (trace … critical, default info).
  public var logLevel: Logger.Level
  /// `LOG_FORMAT` (json or text, default json).
  public var logFormat: LogFormat
  /// How long start-up waits for another replica's migration lock
  /// (`MIGRATION_LOCK_TIMEOUT_SECONDS`, default 60).
  public var migrationLockTimeout: Duration
  /// How long SIGTERM waits for in-flight calls (`SHUTDOWN_GRACE_SECONDS`, default 10).
  public var shutdownGracePeriod: Duration
  /// How deep request documents (JSON, schemas, templates) may nest (`MAX_NESTING_DEPTH`,
  /// default 16, at most 32); see `NestingLimit`.
  public var maxNestingDepth: Int
  /// Where spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`; unset: trace ids only).
  public var tracing: TracingConfiguration
  /// Where the other services are (`AGENT_ADDR`, `PERSONA_ADDR`, …; default 127.0.0.1:<port>).
  public var peers: [PlatformServiceName: String]
  /// The untouched environment, for service-specific settings.
  public var environment: Environment

  public enum LogFormat: String, Sendable, CaseIterable {
    case json
    case text
  }

  /// Local defaults for `service`: loopback, its own port and database, the development secret.
  public static func defaults(for service: PlatformServiceName) -> Self {
    // Reading an empty environment cannot fail.
    try! Self.fromEnvironment(service: service, environment: Environment([:]))
  }

  /// The admin port to bind: `adminPort`, or the service's port + 1000 (a free one when the
  /// service's port is 0 or above 64535).
  public var resolvedAdminPort: Int {
    if let adminPort = self.adminPort { return adminPort }
    return self.port == 0 || self.port > 64535 ? 0 : self.port + 1000
  }

  /// Reads the configuration of `service` from `environment`.
  /// - Throws: `Environment.InvalidValue` naming the first malformed variable.
  public static func fromEnvironment(
    service: PlatformServiceName,
    environment: Environment = .process
  ) throws -> Self {
    var database = try DatabaseConfiguration(
      url: environment.string(
        "DATABASE_URL", default: "postgres://platform:platform@127.0.0.1:5432/\(service.databaseName)"),
      poolSize: environment.int("DATABASE_POOL_SIZE", default: 8, range: 1...1000),
      connectTimeout: environment.seconds("DATABASE_CONNECT_TIMEOUT_SECONDS", default: .seconds(30))
    )
    // A fixed-size pool by default (HikariCP's advice too): no idle timer per statement.
    database.minimumConnections = try environment.int("DATABASE_POOL_MIN", default: database.poolSize, range: 0...database.poolSize)
    var peers: [PlatformServiceName: String] = [:]
    for peer in PlatformServiceName.allCases {
      peers[peer] = environment.string(peer.addressVariable, default: "127.0.0.1:\(peer.defaultPort)")
    }
    let levelText = environment.string("LOG_LEVEL", default: "info").lowercased()
    guard let level = Logger.Level(rawValue: levelText) else {
      throw Environment.InvalidValue(
        variable: "LOG_LEVEL", value: levelText,
        expected: "one of " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
    }
    let host = environment.string("HOST", default: "127.0.0.1")
    let auth = try AuthConfiguration(environment: environment)
    // The development key's private half is in the source: anyone could sign an admin token
    // with it. It is fine only where nobody else can connect.
    if auth.usesDevelopmentKeys && !["127.0.0.1", "::1", "localhost"].contains(host) {
      throw Environment.InvalidValue(
        variable: "JWT_PUBLIC_KEYS", value: "<unset>",
        expected: "keys of your own (scripts/jwt_keys.py generate) when HOST (\(host)) is not loopback: the development key is public")
    }
    var rateLimits = RateLimits(defaultLimit: try environment.int("RATE_LIMIT_PER_MINUTE", default: 0, range: 0...10_000_000))
    for rpcClass in ["read", "write", "execute"] {
      let variable = "RATE_LIMIT_\(rpcClass.uppercased())_PER_MINUTE"
      if environment[variable] != nil {
        rateLimits.limits[rpcClass] = try environment.int(variable, default: 0, range: 0...10_000_000)
      }
    }
    let port = try environment.int("PORT", default: service.defaultPort, range: 0...65535)
    return Self(
      service: service,
      host: host,
      port: port,
      adminPort: try environment["ADMIN_PORT"].map { _ in try environment.int("ADMIN_PORT", default: 0, range: 0...65535) },
      database: database,
      redis: try RedisConfiguration(environment: environment),
      rateLimits: rateLimits,
      rateLimitOutagePolicy: try environment.choice("RATE_LIMIT_REDIS_DOWN", default: RateLimitOutagePolicy.allow),
      sessionOutagePolicy: try environment.choice("SESSION_CHECK_REDIS_DOWN", default: SessionOutagePolicy.allow),
      auth: auth,
      logLevel: level,
      logFormat: try environment.choice("LOG_FORMAT", default: LogFormat.json),
      migrationLockTimeout: try environment.seconds("MIGRATION_LOCK_TIMEOUT_SECONDS", default: .seconds(60)),
      shutdownGracePeriod: try environment.seconds("SHUTDOWN_GRACE_SECONDS", default: .seconds(10)),
      maxNestingDepth: try environment.int(
        "MAX_NESTING_DEPTH", default: NestingLimit.defaultDepth, range: 1...NestingLimit.maximumDepth),
      tracing: try TracingConfiguration(environment: environment),
      peers: peers,
      environment: environment
    )
  }
}
