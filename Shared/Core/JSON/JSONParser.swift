/// Why JSON text could not be parsed: what was wrong, and at which UTF-8 byte offset.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
  public var offset: Int
  public var reason: String

  public var description: String { "Invalid JSON at byte \(self.offset): \(self.reason)" }
}

/// A strict RFC 8259 parser straight from UTF-8 bytes to `JSONValue`.
///
/// JSONB columns are read on every request that returns a row; Foundation's `JSONDecoder`
/// through `Codable` spent more CPU on one small schema than the rest of the request did.
/// Nesting deeper than `maxDepth` is an error rather than a deep recursion (`NestingLimit`).
/// A name that occurs twice in one object is an error too: RFC 8259 leaves its meaning open and
/// parsers disagree (first wins, last wins), so such a document could mean two things.
struct JSONParser {
  private let bytes: UnsafeBufferPointer<UInt8>
  private let maxDepth: Int
  private var position = 0
  private var depth = 0

  private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
    self.bytes = bytes
    self.maxDepth = maxDepth
  }

  static func parse(_ text: String, maxDepth: Int) throws(JSONParseError) -> JSONValue {
    var text = text
    text.makeContiguousUTF8()
    let result: Result<JSONValue, JSONParseError> = text.utf8.withContiguousStorageIfAvailable { bytes in
      var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
      return Result { () throws(JSONParseError) -> JSONValue in try parser.document() }
    }!
    return try result.get()
  }

  private mutating func document() throws(JSONParseError) -> JSONValue {
    let value = try self.value()
    self.skipWhitespace()
    guard self.position == self.bytes.count else { throw self.error("unexpected content after the value") }
    return value
  }

  private mutating func value() throws(JSONParseError) -> JSONValue {
    self.skipWhitespace()
    guard let byte = self.peek() else { throw self.error("unexpected end of input, a value was expected") }
    switch byte {
    case UInt8(ascii: "{"): return try self.nested { parser throws(JSONParseError) in try parser.object() }
    case UInt8(ascii: "["): return try self.nested { parser throws(JSONParseError) in try parser.array() }
    case UInt8(ascii: "\""): return .string(try self.string())
    case UInt8(ascii: "t"): try self.literal("true"); return .bool(true)
    case UInt8(ascii: "f"): try self.literal("false"); return .bool(false)
    case UInt8(ascii: "n"): try self.literal("null"); return .null
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try self.number())
    default: throw self.error("unexpected character \(Self.describe(byte))")
    }
  }

  private mutating func nested(_ body: (inout JSONParser) throws(JSONParseError) -> JSONValue) throws(JSONParseError) -> JSONValue {
    guard self.depth < self.maxDepth else { throw self.error("nested deeper than \(self.maxDepth) levels") }
    self.depth += 1
    defer { self.depth -= 1 }
    return try body(&self)
  }

  private mutating func object() throws(JSONParseError) -> JSONValue {
    self.position += 1  // {
    var members: [String: JSONValue] = [:]
    self.skipWhitespace()
    if self.peek() == UInt8(ascii: "}") {
      self.position += 1
      return .object(members)
    }
    while true {
      self.skipWhitespace()
      guard self.peek() == UInt8(ascii: "\"") else { throw self.error("an object key (a string) was expected") }
      let keyOffset = self.position
      let key = try self.string()
      self.skipWhitespace()
      guard self.peek() == UInt8(ascii: ":") else { throw self.error("':' was expected after an object key") }
      self.position += 1
      guard members.updateValue(try self.value(), forKey: key) == nil else {
        throw JSONParseError(offset: keyOffset, reason: "duplicate object key")
      }
      self.skipWhitespace()
      switch self.peek() {
      case UInt8(ascii: ","): self.position += 1
      case UInt8(ascii: "}"): self.position += 1; return .object(members)
      default: throw self.error("',' or '}' was expected in an object")
      }
    }
  }

  private mutating func array() throws(JSONParseError) -> JSONValue {
    self.position += 1  // [
    var values: [JSONValue] = []
    self.skipWhitespace()
    if self.peek() == UInt8(ascii: "]") {
      self.position += 1
      return .array(values)
    }
    while true {
      values.append(try self.value())
      self.skipWhitespace()
      switch self.peek() {
      case UInt8(ascii: ","): self.position += 1
      case UInt8(ascii: "]"): self.position += 1; return .array(values)
      default: throw self.error("',' or ']' was expected in an array")
      }
    }
  }

  /// A string, the opening quote at `position`. Runs without escapes are copied as they are
  /// (the input is a Swift string, so already valid UTF-8).
  private mutating func string() throws(JSONParseError) -> String {
    self.position += 1  // "
    var result = ""
    var runStart = self.position
    while true {
      guard let byte = self.peek() else { throw self.error("unterminated string") }
      switch byte {
      case UInt8(ascii: "\""):
        result += self.text(runStart..<self.position)
        self.position += 1
        return result
      case UInt8(ascii: "\\"):
        result += self.text(runStart..<self.position)
        self.position += 1
        result.unicodeScalars.append(try self.escape())
        runStart = self.position
      case 0..<0x20:
        throw self.error("control character \(Self.describe(byte)) in a string must be escaped")
      default:
        self.position += 1
      }
    }
  }

  /// The character of the escape after a backslash.
  private mutating func escape() throws(JSONParseError) -> Unicode.Scalar {
    guard let byte = self.peek() else { throw self.error("unterminated escape") }
    self.position += 1
    switch byte {
    case UInt8(ascii: "\""): return "\""
    case UInt8(ascii: "\\"): return "\\"
    case UInt8(ascii: "/"): return "/"
    case UInt8(ascii: "b"): return "\u{08}"
    case UInt8(ascii: "f"): return "\u{0C}"
    case UInt8(ascii: "n"): return "\n"
    case UInt8(ascii: "r"): return "\r"
    case UInt8(ascii: "t"): return "\t"
    case UInt8(ascii: "u"):
      let unit = try self.hexUnit()
      switch unit {
      case 0xD800...0xDBFF:
        guard self.peek() == UInt8(ascii: "\\"), self.peek(at: 1) == UInt8(ascii: "u") else {
          throw self.error("a high surrogate must be followed by a \\u low surrogate")
        }
        self.position += 2
        let low = try self.hexUnit()
        guard (0xDC00...0xDFFF).contains(low) else { throw self.error("a high surrogate must be followed by a low surrogate") }
        return Unicode.Scalar(0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00))!
      case 0xDC00...0xDFFF:
        throw self.error("a low surrogate without a high one")
      default:
        return Unicode.Scalar(unit)!
      }
    default:
      self.position -= 1
      throw self.error("unknown escape \\\(Self.describe(byte))")
    }
  }

  private mutating func hexUnit() throws(JSONParseError) -> UInt16 {
    var unit: UInt16 = 0
    for _ in 0..<4 {
      guard let byte = self.peek() else { throw self.error("a \\u escape needs four hex digits") }
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
      default: throw self.error("a \\u escape needs four hex digits")
      }
      unit = unit << 4 | UInt16(digit)
      self.position += 1
    }
    return unit
  }

  /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, which must fit a Double.
  private mutating func number() throws(JSONParseError) -> Double {
    let start = self.position
    if self.peek() == UInt8(ascii: "-") { self.position += 1 }
    if self.peek() == UInt8(ascii: "0") {
      self.position += 1
    } else {
      guard self.skipDigits() > 0 else { throw self.error("a digit was expected") }
    }
    if self.peek() == UInt8(ascii: ".") {
      self.position += 1
      guard self.skipDigits() > 0 else { throw self.error("a digit was expected after '.'") }
    }
    if self.peek() == UInt8(ascii: "e") || self.peek() == UInt8(ascii: "E") {
      self.position += 1
      if self.peek() == UInt8(ascii: "+") || self.peek() == UInt8(ascii: "-") { self.position += 1 }
      guard self.skipDigits() > 0 else { throw self.error("a digit was expected in the exponent") }
    }
    guard let number = Double(self.text(start..<self.position)), number.isFinite else {
      throw JSONParseError(offset: start, reason: "the number does not fit a double")
    }
    return number
  }

  private mutating func skipDigits() -> Int {
    let start = self.position
    while let byte = self.peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { self.position += 1 }
    return self.position - start
  }

  private mutating func literal(_ word: StaticString) throws(JSONParseError) {
    let count = word.utf8CodeUnitCount
    guard self.bytes.count - self.position >= count,
      UnsafeBufferPointer(rebasing: self.bytes[self.position..<self.position + count])
        .elementsEqual(UnsafeBufferPointer(start: word.utf8Start, count: count))
    else { throw self.error("unexpected characters, \(word) was expected") }
    self.position += count
  }

  private mutating func skipWhitespace() {
    while let byte = self.peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { self.position += 1 }
  }

  private func peek(at offset: Int = 0) -> UInt8? {
    self.position + offset < self.bytes.count ? self.bytes[self.position + offset] : nil
  }

  private func text(_ range: Range<Int>) -> String {
    String(decoding: UnsafeBufferPointer(rebasing: self.bytes[range]), as: UTF8.self)
  }

  private func error(_ reason: String) -> JSONParseError {
    JSONParseError(offset: self.position, reason: reason)
  }

  private static func describe(_ byte: UInt8) -> String {
    (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "0x" + String(byte, radix: 16, uppercase: true)
  }
}
