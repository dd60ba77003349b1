internal import Foundation

/// Where a service's PostgreSQL database is, parsed from a `postgres://` URL.
public struct DatabaseConfiguration: Sendable, CustomStringConvertible {
  public var host: String
  public var port: Int
  public var username: String
  public var password: String?
  public var database: String
  /// Whether TLS is required (`?sslmode=require`); otherwise the connection is plain (loopback
  /// and compose networks).
  public var requireTLS: Bool
  /// Connections in the pool (`DATABASE_POOL_SIZE`).
  public var poolSize: Int
  /// Connections the pool opens at once and keeps however idle (`DATABASE_POOL_MIN`; services
  /// default to the pool's size). The pool arms an idle timer each time one of the others goes
  /// back to it, and cancels it at the next lease: a task started and a task cancelled on the
  /// global executor for every statement. A kept connection has no timer.
  public var minimumConnections = 0
  /// How long start-up keeps retrying an unreachable database before giving up.
  public var connectTimeout: Duration
  /// Run-time parameters every connection starts with, sent in its start-up message (an
  /// extension's own, such as `hnsw.ef_search`, included before the extension is loaded): a
  /// setting the service wants on every query costs no statement.
  public var sessionSettings: [String: String] = [:]

  /// - Parameter url: `postgres://user:password@host:port/database[?sslmode=disable|require]`.
  /// - Throws: `Environment.InvalidValue` for `DATABASE_URL` when the URL is malformed.
  public init(url: String, poolSize: Int = 8, connectTimeout: Duration = .seconds(30)) throws {
    func invalid(_ expected: String) -> Environment.InvalidValue {
      // Never echo the password back.
      Environment.InvalidValue(variable: "DATABASE_URL", value: Self.redacted(url), expected: expected)
    }
    guard let components = URLComponents(string: url),
      let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql"
    else { throw invalid("postgres://user:password@host:port/database") }
    guard let host = components.host, !host.isEmpty else { throw invalid("a host") }
    guard let user = components.user, !user.isEmpty else { throw invalid("a user name") }
    let database = String(components.path.drop(while: { $0 == "/" }))
    guard !database.isEmpty else { throw invalid("a database name after the host") }
    let sslmode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable"
    // prefer/allow would quietly mean plaintext here: say which one is meant.
    guard ["disable", "require"].contains(sslmode) else { throw invalid("sslmode disable or require") }
    self.host = host
    self.port = components.port ?? 5432
    // URLComponents' user, password and path are already percent-decoded.
    self.username = user
    self.password = components.password
    self.database = database
    self.requireTLS = sslmode == "require"
    self.poolSize = poolSize
    self.connectTimeout = connectTimeout
  }

  /// The URL without its password, for logs.
  public var description: String {
    "postgres://\(self.username)@\(self.host):\(self.port)/\(self.database)"
  }

  static func redacted(_ url: String) -> String {
    guard var components = URLComponents(string: url) else { return "<unparseable>" }
    if components.password != nil { components.password = "***" }
    return components.string ?? "<unparseable>"
  }
}
