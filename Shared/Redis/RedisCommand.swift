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

  /// Appends the command in RESP2 to `buffer`, in one pass over memory reserved up front.
  func encode(into buffer: inout ByteBuffer) {
    var capacity = 3 + Self.maxDecimalDigits
    for argument in self.arguments {
      capacity += 5 + Self.maxDecimalDigits
      switch argument {
      case .string(let text): capacity += text.utf8.count
      case .bytes(let bytes): capacity += bytes.readableBytes
      case .integer: capacity += Self.maxDecimalDigits
      }
    }
    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { output in
      var position = 0
      Self.writeHeader(UInt8(ascii: "*"), Int64(self.arguments.count), into: output, at: &position)
      for argument in self.arguments {
        switch argument {
        case .string(let text):
          let utf8 = text.utf8
          Self.writeHeader(UInt8(ascii: "$"), Int64(utf8.count), into: output, at: &position)
          if utf8.withContiguousStorageIfAvailable({ Self.copy(UnsafeRawBufferPointer($0), into: output, at: &position) }) == nil {
            for byte in utf8 {
              output[position] = byte
              position += 1
            }
          }
        case .bytes(let bytes):
          Self.writeHeader(UInt8(ascii: "$"), Int64(bytes.readableBytes), into: output, at: &position)
          bytes.withUnsafeReadableBytes { Self.copy($0, into: output, at: &position) }
        case .integer(let value):
          Self.writeHeader(UInt8(ascii: "$"), Int64(Self.decimalLength(value)), into: output, at: &position)
          Self.writeDecimal(value, into: output, at: &position)
        }
        output[position] = UInt8(ascii: "\r")
        output[position + 1] = UInt8(ascii: "\n")
        position += 2
      }
      return position
    }
  }

  /// "-9223372036854775808" is 20 characters.
  private static let maxDecimalDigits = 20

  private static func copy(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, at position: inout Int) {
    guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
    (output.baseAddress! + position).copyMemory(from: source, byteCount: bytes.count)
    position += bytes.count
  }

  /// `*3\r\n` or `$5\r\n`.
  private static func writeHeader(_ type: UInt8, _ count: Int64, into output: UnsafeMutableRawBufferPointer, at position: inout Int) {
    output[position] = type
    position += 1
    Self.writeDecimal(count, into: output, at: &position)
    output[position] = UInt8(ascii: "\r")
    output[position + 1] = UInt8(ascii: "\n")
    position += 2
  }

  private static func decimalLength(_ value: Int64) -> Int {
    var remaining = value.magnitude
    var length = value < 0 ? 2 : 1
    while remaining >= 10 {
      remaining /= 10
      length += 1
    }
    return length
  }

  private static func writeDecimal(_ value: Int64, into output: UnsafeMutableRawBufferPointer, at position: inout Int) {
    let length = Self.decimalLength(value)
    if value < 0 { output[position] = UInt8(ascii: "-") }
    var remaining = value.magnitude
    var index = position + length - 1
    repeat {
      output[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: remaining % 10)
      remaining /= 10
      index -= 1
    } while remaining > 0
    position += length
  }
}
