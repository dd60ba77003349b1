public import NIOCore

/// One RESP2 reply: what a Redis server answers to a command.
public enum RESPValue: Sendable, Equatable {
  /// `+OK`: a short status line.
  case simpleString(String)
  /// `-ERR …`: an error reply; `RedisClient.send` throws it as `RedisError.server`.
  case error(String)
  /// `:42`.
  case integer(Int64)
  /// `$5 hello`; nil is the null bulk string (`$-1`), a missing key.
  case bulkString(ByteBuffer?)
  /// `*2 …`; nil is the null array (`*-1`), for example a transaction that did not run.
  case array([RESPValue]?)

  /// The value as text: simple and bulk strings (UTF-8), integers in decimal; nil otherwise.
  public var string: String? {
    switch self {
    case .simpleString(let text): return text
    case .bulkString(let bytes?): return String(buffer: bytes)
    case .integer(let value): return String(value)
    default: return nil
    }
  }

  /// The value as an integer: integers, and strings that are decimal integers.
  public var integer: Int64? {
    switch self {
    case .integer(let value): return value
    case .bulkString(let bytes?): return Int64(String(buffer: bytes))
    case .simpleString(let text): return Int64(text)
    default: return nil
    }
  }

  /// The bytes of a bulk string; nil for a null bulk string or any other kind of reply.
  public var bytes: ByteBuffer? {
    if case .bulkString(let bytes) = self { return bytes }
    return nil
  }

  /// The elements of an array; nil for a null array or any other kind of reply.
  public var elements: [RESPValue]? {
    if case .array(let elements) = self { return elements }
    return nil
  }

  /// Whether this is the null bulk string or the null array.
  public var isNull: Bool {
    switch self {
    case .bulkString(nil), .array(nil): return true
    default: return false
    }
  }
}
