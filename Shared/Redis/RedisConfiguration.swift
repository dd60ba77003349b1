internal import Foundation
public import NIOSSL

/// Where Redis is and how the client treats it.
public struct RedisConfiguration: Sendable {
  public var host: String
  public var port: Int
  /// The ACL user (`AUTH user password`); nil with a password means the default user.
  public var username: String?
  public var password: String?
  /// The logical database (`SELECT n`), 0 by default.
  public var database: Int
  /// TLS (`rediss://`); nil for plain TCP.
  public var tls: TLSConfiguration?
  /// Connections in the pool; each carries many commands at once (pipelining). Default 2.
  public var poolSize: Int = 2
  /// How long a command may wait for its reply before it fails and its connection is closed.
  /// Default 1 s.
  public var commandTimeout: Duration = .seconds(1)
  /// How long opening a connection (TCP, TLS, AUTH, SELECT) may take. Default 1 s.
  public var connectTimeout: Duration = .seconds(1)
  /// The largest reply accepted, every byte counted; a larger one closes the connection.
  /// Default 16 MiB.
  public var maxReplyBytes: Int = 16 * 1024 * 1024
  /// How deep arrays in a reply may nest. Default 32.
  public var maxReplyDepth: Int = 32
  /// Reconnect backoff: the first wait, doubling up to the maximum, with ±20% jitter.
  public var reconnectBackoff: (initial: Duration, maximum: Duration) = (.milliseconds(100), .seconds(5))

  /// A malformed `redis://` URL; the description never repeats the password.
  public struct InvalidURL: Error, CustomStringConvertible {
    public var url: String
    public var expected: String
    public var description: String { "\(self.url) is invalid: expected \(self.expected)" }
  }

  public init(host: String = "127.0.0.1", port: Int = 6379) {
    self.host = host
    self.port = port
    self.database = 0
  }

  /// - Parameter url: `redis://[[user]:password@]host[:port][/database]`, or `rediss://…` for
  ///   TLS (verified against the system's roots unless `tls` is replaced).
  /// - Throws: `InvalidURL`.
  public init(url: String) throws {
    func invalid(_ expected: String) -> InvalidURL {
      InvalidURL(url: Self.redacted(url), expected: expected)
    }
    guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
      scheme == "redis" || scheme == "rediss"
    else { throw invalid("redis://[[user]:password@]host[:port][/database] or rediss://…") }
    guard let host = components.host, !host.isEmpty else { throw invalid("a host") }
    if let port = components.port, !(1...65535).contains(port) { throw invalid("a port in 1...65535") }
    let path = components.path.drop(while: { $0 == "/" })
    var database = 0
    if !path.isEmpty {
      guard path.allSatisfy(\.isASCII), path.allSatisfy(\.isNumber), let number = Int(path), number <= 1_000_000 else {
        throw invalid("a database number after the host")
      }
      database = number
    }
    guard components.queryItems == nil || components.queryItems?.isEmpty == true else {
      throw invalid("no query parameters")
    }
    self.init(host: host, port: components.port ?? 6379)
    // URLComponents' user and password are percent-decoded.
    if let user = components.user, !user.isEmpty { self.username = user }
    if let password = components.password, !password.isEmpty { self.password = password }
    if self.username != nil && self.password == nil { throw invalid("a password with the user name") }
    self.database = database
    if scheme == "rediss" { self.tls = .makeClientConfiguration() }
  }

  /// The address without credentials, for logs.
  public var description: String {
    "\(self.tls == nil ? "redis" : "rediss")://\(self.host):\(self.port)/\(self.database)"
  }

  /// `url` with its password replaced, for error messages.
  public static func redacted(_ url: String) -> String {
    guard var components = URLComponents(string: url) else { return "<unparseable>" }
    if components.password != nil { components.password = "***" }
    return components.string ?? "<unparseable>"
  }
}
