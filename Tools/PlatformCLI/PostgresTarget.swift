internal import ArgumentParser
internal import Foundation

/// A PostgreSQL database as `sql register --postgres` and `admin db-report` take it:
/// `postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=disable|require|verify-full]`.
struct PostgresTarget {
  enum SSLMode: String, CaseIterable {
    /// Plaintext.
    case disable
    /// Encrypted, the certificate not verified.
    case require
    /// Encrypted, the certificate and host name verified.
    case verifyFull = "verify-full"
  }

  var host: String
  /// Default 5432.
  var port = 5432
  var username: String
  var password: String?
  var database: String
  /// nil when not given: each user of the target has its default.
  var sslMode: SSLMode?

  init(host: String, port: Int = 5432, username: String, password: String?, database: String, sslMode: SSLMode? = nil) {
    self.host = host
    self.port = port
    self.username = username
    self.password = password
    self.database = database
    self.sslMode = sslMode
  }

  /// Parses a postgres:// (or postgresql://) URL. The user, password and database come
  /// percent-decoded (`%40` is `@`).
  ///
  /// - Throws: `ValidationError` when it is not such a URL or its sslmode is not one of
  ///   `SSLMode`.
  init(url: String) throws {
    guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
      let host = components.host, !host.isEmpty
    else { throw ValidationError("not a postgres://USER:PASSWORD@HOST:PORT/DB URL") }
    var sslMode: SSLMode?
    if let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value {
      guard let known = SSLMode(rawValue: mode) else {
        let modes = SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
        throw ValidationError("sslmode '\(mode)' is not one of \(modes)")
      }
      sslMode = known
    }
    self.init(
      host: host, port: components.port ?? 5432, username: components.user ?? "", password: components.password,
      database: String(components.path.dropFirst()), sslMode: sslMode)
  }
}
