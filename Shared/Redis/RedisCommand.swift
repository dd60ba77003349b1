public import NIOCore

/// One argument of a command: text, bytes or an integer (sent as its decimal text).
public enum RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
  case string(String)
  case bytes(ByteBuffer)
  case integer(Int64)

  public init(stringLiteral value: String) { self = .string(value) }
  public init(integerLiteral value: Int64) { self = .integer(value) }
}

/// A command as the client sends it: an array of bulk strings, the name first.
public struct RedisCommand: Sendable, Hashable {
  /// The name and the arguments, in order.
  public var arguments: [RedisArgument]

  public init(_ name: String, _ arguments: [RedisArgument]) {
    self.arguments = [.string(name)] + arguments
  }

  public init(_ name: String, _ arguments: RedisArgument...) {
    self.init(name, arguments)
  }

  /// The command's name (`GET`, `EVALSHA`, …), for logs and metrics: never its arguments.
  public var name: String {
    if case .string(let name) = self.arguments.first { return name }
    return "?"
  }

  /// Appends the command in RESP2 to `buffer`.
  func encode(into buffer: inout ByteBuffer) {
    buffer.writeInteger(UInt8(ascii: "*"))
    Self.writeDecimal(self.arguments.count, into: &buffer)
    for argument in self.arguments {
      buffer.writeInteger(UInt8(ascii: "$"))
      switch argument {
      case .string(let text):
        Self.writeDecimal(text.utf8.count, into: &buffer)
        buffer.writeString(text)
      case .bytes(let bytes):
        Self.writeDecimal(bytes.readableBytes, into: &buffer)
        buffer.writeImmutableBuffer(bytes)
      case .integer(let value):
        let text = String(value)
        Self.writeDecimal(text.utf8.count, into: &buffer)
        buffer.writeString(text)
      }
      buffer.writeInteger(UInt16(0x0D0A))
    }
  }

  /// Writes a non-negative count in decimal followed by CRLF, without an intermediate String.
  private static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
    if value < 10 {
      buffer.writeInteger(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
    } else {
      var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                   UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
      withUnsafeMutableBytes(of: &digits) { storage in
        var remaining = value
        var start = storage.count
        while remaining > 0 {
          start -= 1
          storage[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: remaining % 10)
          remaining /= 10
        }
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: storage[start...]))
      }
    }
    buffer.writeInteger(UInt16(0x0D0A))
  }
}
