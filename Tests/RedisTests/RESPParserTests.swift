import NIOCore
import Testing

@testable import PlatformRedis

@Suite("RESP parser")
struct RESPParserTests {
  let parser = RESPParser(maxReplyBytes: 1024, maxDepth: 4)

  func parseAll(_ text: String) throws -> [RESPValue] {
    var parser = self.parser
    var buffer = ByteBuffer(string: text)
    var values: [RESPValue] = []
    while let value = try parser.parse(&buffer) { values.append(value) }
    #expect(buffer.readableBytes == 0, "bytes left over")
    return values
  }

  @Test("every RESP2 type, nulls and nested arrays")
  func types() throws {
    let values = try self.parseAll(
      "+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\r\no\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n*1\r\n:1\r\n$1\r\nx\r\n")
    #expect(
      values == [
        .simpleString("OK"), .error("ERR wrong"), .integer(-42), .bulkString(ByteBuffer(string: "he\r\no")),
        .bulkString(ByteBuffer()), .bulkString(nil), .array(nil), .array([]),
        .array([.array([.integer(1)]), .bulkString(ByteBuffer(string: "x"))]),
      ])
  }

  @Test("a reply split at every byte reads the same as in one piece")
  func fragmented() throws {
    let text = "*3\r\n$3\r\nfoo\r\n*2\r\n:7\r\n+A\r\n$-1\r\n"
    let whole = try self.parseAll(text)
    var parser = self.parser
    var buffer = ByteBuffer()
    var values: [RESPValue] = []
    for byte in text.utf8 {
      buffer.writeInteger(byte)
      while let value = try parser.parse(&buffer) { values.append(value) }
    }
    #expect(values == whole)
    #expect(values.count == 1)
  }

  @Test("a large reply arriving in small reads is parsed once, not again from its start on every read")
  func incremental() throws {
    var parser = RESPParser(maxReplyBytes: 1 << 24, maxDepth: 4)
    let elements = 100_000
    let text = "*\(elements)\r\n" + String(repeating: "$1\r\nx\r\n", count: elements) + "+after\r\n"
    let bytes = Array(text.utf8)
    var buffer = ByteBuffer()
    var values: [RESPValue] = []
    let clock = ContinuousClock()
    let start = clock.now
    for chunk in stride(from: 0, to: bytes.count, by: 100) {
      buffer.writeBytes(bytes[chunk..<min(chunk + 100, bytes.count)])
      while let value = try parser.parse(&buffer) { values.append(value) }
    }
    // Re-parsing from the start on each of the 7,000 reads would take minutes.
    #expect(clock.now - start < .seconds(20))
    #expect(values.count == 2)
    #expect(values.first?.elements?.count == elements)
    #expect(values.last == .simpleString("after"))
  }

  @Test(
    "malformed replies are protocol errors",
    arguments: [
      "?x\r\n",  // unknown type
      ":12a\r\n", ":\r\n", ":+1\r\n", ":99999999999999999999\r\n",  // integers
      "$-2\r\n", "$abc\r\n", "$3\r\nabcd\r\n",  // bulk length / terminator
      "*-5\r\n", "+O\rK\r\n",  // array length, bare CR
      "%1\r\n", ">2\r\n", "_\r\n",  // RESP3 types: we speak RESP2
    ])
  func malformed(_ text: String) {
    var parser = self.parser
    var buffer = ByteBuffer(string: text)
    #expect(throws: RESPProtocolError.self) { _ = try parser.parse(&buffer) }
  }

  @Test("a bulk string or array over the byte limit is refused from its header, before its bytes arrive")
  func byteLimit() throws {
    var parser = self.parser
    var fits = ByteBuffer(string: "$1000\r\n" + String(repeating: "a", count: 1000) + "\r\n")
    #expect(try parser.parse(&fits)?.bytes?.readableBytes == 1000)
    for header in ["$1025\r\n", "$999999999999\r\n", "*342\r\n", "*2147483647\r\n"] {
      var parser = self.parser
      var buffer = ByteBuffer(string: header)
      #expect(throws: RESPProtocolError.self, "\(header)") { _ = try parser.parse(&buffer) }
    }
    // Many small elements that add up to more than the limit.
    var many = ByteBuffer(string: "*300\r\n" + String(repeating: ":1\r\n", count: 300))
    #expect(throws: RESPProtocolError.self) { _ = try parser.parse(&many) }
  }

  @Test("a line with no end is refused once it is longer than any valid line")
  func endlessLine() throws {
    var parser = self.parser
    var buffer = ByteBuffer(string: "+" + String(repeating: "a", count: 1000))
    #expect(try parser.parse(&buffer) == nil)  // may still end
    buffer.writeString(String(repeating: "a", count: 100))
    #expect(throws: RESPProtocolError.self) { _ = try parser.parse(&buffer) }
  }

  @Test("nesting at the limit reads, one more level or 100,000 levels are refused without recursion")
  func depth() throws {
    let atLimit = String(repeating: "*1\r\n", count: 4) + ":1\r\n"
    #expect(try self.parseAll(atLimit).count == 1)
    var parser = self.parser
    var over = ByteBuffer(string: String(repeating: "*1\r\n", count: 5) + ":1\r\n")
    #expect(throws: RESPProtocolError.self) { _ = try parser.parse(&over) }
    var deep = RESPParser(maxReplyBytes: 1 << 30, maxDepth: 4)
    var hostile = ByteBuffer(string: String(repeating: "*1\r\n", count: 100_000) + ":1\r\n")
    #expect(throws: RESPProtocolError.self) { _ = try deep.parse(&hostile) }
  }

  @Test("commands encode as arrays of bulk strings, binary-safe")
  func encoding() {
    var buffer = ByteBuffer()
    RedisCommand("SET", "k\r\n", .bytes(ByteBuffer(bytes: [0, 255])), .integer(-12)).encode(into: &buffer)
    let expected: [UInt8] = Array("*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n".utf8) + [0, 255] + Array("\r\n$3\r\n-12\r\n".utf8)
    #expect(Array(buffer.readableBytesView) == expected)
    var long = ByteBuffer()
    RedisCommand("ECHO", .string(String(repeating: "z", count: 1234))).encode(into: &long)
    #expect(String(buffer: long).hasPrefix("*2\r\n$4\r\nECHO\r\n$1234\r\nzzz"))
  }
}

@Suite("Redis configuration")
struct RedisConfigurationTests {
  @Test("URLs: user, password, database, TLS")
  func urls() throws {
    let plain = try RedisConfiguration(url: "redis://127.0.0.1")
    #expect(plain.host == "127.0.0.1" && plain.port == 6379 && plain.database == 0 && plain.password == nil)
    #expect(plain.tls == nil)
    let full = try RedisConfiguration(url: "rediss://alice:p%40ss@cache.internal:6380/3")
    #expect(full.username == "alice" && full.password == "p@ss" && full.database == 3 && full.port == 6380)
    #expect(full.tls != nil)
    let passwordOnly = try RedisConfiguration(url: "redis://:secret@localhost/0")
    #expect(passwordOnly.username == nil && passwordOnly.password == "secret")
    #expect(!full.description.contains("p@ss"))
  }

  @Test(
    "malformed URLs are refused without echoing the password",
    arguments: [
      "http://h", "redis://", "redis://h/x", "redis://h/-1", "redis://h:0", "redis://u:pw@h/1?x=1", "redis://alice@h",
      "redis://u:hunter2@h/01x",
    ])
  func invalid(_ url: String) {
    #expect(throws: RedisConfiguration.InvalidURL.self) { try RedisConfiguration(url: url) }
    do {
      _ = try RedisConfiguration(url: url)
    } catch {
      #expect(!"\(error)".contains("hunter2"))
    }
  }
}
