internal import GRPCRuntime
public import Logging
public import PostgresNIO

extension PostgresClient {
  /// A pooled client for the configured database. Its `run()` must be running while it is used.
  ///
  /// Its connections live on the gRPC runtime's event loops: a handler runs on its connection's
  /// loop, so a query whose database connection shares that loop needs no thread hop there and
  /// back, and the process keeps one thread per CPU instead of two.
  public convenience init(configuration: DatabaseConfiguration, logger: Logger) {
    var config = PostgresClient.Configuration(
      host: configuration.host,
      port: configuration.port,
      username: configuration.username,
      password: configuration.password,
      database: configuration.database,
      tls: configuration.requireTLS ? .require(.makeClientConfiguration()) : .disable
    )
    config.options.maximumConnections = configuration.poolSize
    config.options.minimumConnections = min(configuration.minimumConnections, configuration.poolSize)
    config.options.connectTimeout = .seconds(5)
    // No keep-alive query on idle connections: the pool arms its timer each time a connection
    // goes back to it and cancels it at the next lease (with the idle timer of connections above
    // the minimum, up to two tasks on the global executor for every statement: together 40% of a
    // knowledge search's service CPU). A connection the server closes (restart, idle kill) leaves
    // the pool when its socket closes, as it would anyway.
    config.options.keepAliveBehavior = nil
    config.options.additionalStartupParameters = configuration.sessionSettings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    self.init(configuration: config, eventLoopGroup: RuntimeEventLoops.shared, backgroundLogger: logger)
  }

  /// Waits until the database answers, retrying with backoff for up to `timeout` (containers
  /// start in any order).
  /// - Throws: `DatabaseUnavailable` when it never answered.
  public func waitUntilReachable(
    _ configuration: DatabaseConfiguration, timeout: Duration, logger: Logger
  ) async throws {
    let clock = ContinuousClock()
    let giveUp = clock.now + timeout
    var delay = Duration.milliseconds(200)
    while true {
      do {
        try await self.ping(timeout: min(.seconds(3), giveUp - clock.now), logger: logger)
        return
      } catch {
        let reason = DatabaseErrors.describe(error)
        if clock.now + delay >= giveUp {
          throw DatabaseUnavailable(description: "PostgreSQL at \(configuration) did not answer within \(timeout): \(reason)")
        }
        logger.warning("Waiting for PostgreSQL", metadata: ["database": "\(configuration)", "reason": "\(reason)"])
        try await Task.sleep(for: delay)
        delay = min(delay * 2, .seconds(3))
      }
    }
  }
}

extension PostgresClient {
  /// Runs `SELECT 1`, failing if it takes longer than `timeout` (a lease waits while the pool
  /// keeps reconnecting, so an unreachable database would otherwise hang the caller).
  public func ping(timeout: Duration, logger: Logger) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await self.query("SELECT 1", logger: logger) }
      group.addTask {
        try await Task.sleep(for: timeout)
        throw DatabaseUnavailable(description: "no answer within \(timeout)")
      }
      defer { group.cancelAll() }
      try await group.next()
    }
  }
}

/// The database could not be reached at start-up.
public struct DatabaseUnavailable: Error, CustomStringConvertible {
  public var description: String
}

/// Turns PostgreSQL errors into statuses without leaking SQL: a connection problem is
/// UNAVAILABLE, a cancelled statement DEADLINE_EXCEEDED, anything else INTERNAL.
public enum DatabaseErrors {
  /// The error a transaction's closure (or its BEGIN/COMMIT) threw, for any other error itself.
  public static func underlying(_ error: any Error) -> any Error {
    guard let error = error as? PostgresTransactionError else { return error }
    return error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError ?? error
  }

  /// The SQLSTATE of a server error, such as `23505`.
  public static func sqlState(of error: any Error) -> String? {
    (underlying(error) as? PSQLError)?.serverInfo?[.sqlState]
  }

  /// A one-line description for logs (server message and SQLSTATE; never bind values).
  public static func describe(_ error: any Error) -> String {
    guard let error = underlying(error) as? PSQLError else { return String(describing: underlying(error)) }
    if let info = error.serverInfo {
      return "\(info[.sqlState] ?? "?"): \(info[.message] ?? "server error")"
    }
    return "\(error.code)"
  }

  /// Whether postgres-nio gave up the query because its task was cancelled (the caller went
  /// away or its deadline passed): a cancellation, not a failure.
  public static func isCancellation(_ error: any Error) -> Bool {
    (underlying(error) as? PSQLError)?.code == .queryCancelled
  }

  /// Whether the error means the database could not be reached (rather than refused a query).
  public static func isUnavailable(_ error: any Error) -> Bool {
    guard let error = underlying(error) as? PSQLError else { return false }
    switch error.code {
    case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown,
      .sslUnsupported, .failedToAddSSLHandler:
      return true
    case .server:
      // 57P01..57P03: admin shutdown, crash shutdown, cannot connect now; 53300: too many connections.
      let state = error.serverInfo?[.sqlState] ?? ""
      return state.hasPrefix("57P") || state == "53300" || state.hasPrefix("08")
    default:
      return false
    }
  }
}
