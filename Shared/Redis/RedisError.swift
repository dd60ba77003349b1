/// Why a Redis command failed.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Code: Sendable, Equatable {
    /// No connection could be had: Redis is down, unreachable or refusing us (the client is
    /// backing off before the next attempt).
    case unavailable
    /// The command got no reply within the command timeout; its connection was closed.
    case timeout
    /// The connection closed before the reply came: the command may or may not have run.
    case connectionClosed
    /// The server broke the protocol or exceeded a reply limit; its connection was closed.
    case protocolViolation
    /// The server answered with an error reply (`-ERR …`, `-WRONGTYPE …`, `-NOSCRIPT …`).
    case server
    /// The reply was not of the kind the command promises.
    case unexpectedReply
    /// The client was shut down.
    case closed
  }

  public var code: Code
  /// What happened, for logs; never contains a password or a command's arguments.
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// The first word of a server error: `ERR`, `WRONGTYPE`, `NOSCRIPT`, `NOAUTH`, …
  public var serverErrorPrefix: Substring? {
    guard self.code == .server else { return nil }
    return self.message.prefix { $0 != " " }
  }

  public var description: String { "Redis \(self.code): \(self.message)" }
}
