import Foundation
import PlatformCore
import PlatformTesting
import SwiftProtobuf
import Testing

@testable import GRPCRuntime

@Suite("Input limits: nesting, bytes, response size")
struct InputLimitTests {
  /// `depth` nested arrays around a number.
  static func nestedJSON(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
  }

  @Test("JSON text nests up to the limit, on the smallest handler stack; one more level or 100,000 is an error")
  func jsonDepth() throws {
    for limit in [NestingLimit.defaultDepth, NestingLimit.maximumDepth] {
      let results = onThread {
        [limit, limit + 1, 100_000].map { depth in
          Result { () throws(JSONParseError) in try JSONValue(jsonText: Self.nestedJSON(depth), maxDepth: limit) }
        }
      }
      #expect(try results[0].get().depth == limit)
      for result in results.dropFirst() {
        #expect { try result.get() } throws: { error in
          (error as? JSONParseError)?.reason == "nested deeper than \(limit) levels"
        }
      }
    }
    // Objects count as arrays do.
    let objects = String(repeating: #"{"a":"#, count: 33) + "1" + String(repeating: "}", count: 33)
    #expect(throws: JSONParseError.self) { try JSONValue(jsonText: objects, maxDepth: 32) }
  }

  @Test("A request document is refused for depth, bytes, NaN or NUL, naming why")
  func documentProblems() throws {
    let deep = try JSONValue(jsonText: Self.nestedJSON(5))
    #expect(deep.problem(maxDepth: 5, maxBytes: 100) == nil)
    #expect(deep.problem(maxDepth: 4, maxBytes: 100) == "nested deeper than 4 levels")
    // Bytes, not characters: 1,000 four-byte characters are 4,000 bytes.
    let wide = JSONValue.string(String(repeating: "😀", count: 1000))
    #expect(wide.problem(maxDepth: 1, maxBytes: 4002) == nil)
    #expect(wide.problem(maxDepth: 1, maxBytes: 4001) == "larger than 4001 bytes as JSON")
    #expect(JSONValue.array([.number(.nan)]).problem(maxDepth: 2, maxBytes: 100) != nil)
    #expect(JSONValue.object(["a\u{0}": .null]).problem(maxDepth: 2, maxBytes: 100) != nil)
  }

  @Test("Truncation counts UTF-8 bytes and never splits a character")
  func truncation() {
    #expect("hello".truncated(toUTF8Bytes: 5) == "hello")
    #expect("hello world".truncated(toUTF8Bytes: 8) == "hello…")
    let flags = String(repeating: "🇫🇷", count: 10)  // 8 bytes each
    let cut = flags.truncated(toUTF8Bytes: 20)
    #expect(cut.utf8.count <= 20)
    #expect(cut == "🇫🇷🇫🇷…")
  }

  @Test("A page holds the items that fit the byte budget, at least one")
  func pageBudget() {
    #expect(ResponseBudget.fittingCount([10, 10, 10], budget: 25) { $0 } == 2)
    #expect(ResponseBudget.fittingCount([10, 10, 10], budget: 30) { $0 } == 3)
    #expect(ResponseBudget.fittingCount([100, 10], budget: 25) { $0 } == 1)
    #expect(ResponseBudget.fittingCount([Int](), budget: 25) { $0 } == 0)
    // The next page continues after the last row that fit, or after the last row when the
    // store has more; the last page has nothing to continue after.
    #expect(ResponseBudget.page([10, 11, 12], more: false, budget: 25) { $0 }.continueAfter == 11)
    #expect(ResponseBudget.page([10, 11, 12], more: true, budget: 100) { $0 }.continueAfter == 12)
    #expect(ResponseBudget.page([10, 11, 12], more: false, budget: 100) { $0 }.continueAfter == nil)
    #expect(ResponseBudget.page([Int](), more: false, budget: 100) { $0 }.continueAfter == nil)
  }

  @Test("The size bound of a Struct is never below its encoded size", arguments: 0..<20)
  func structSizeBound(seed: Int) throws {
    var generator = SeededGenerator(seed: UInt64(seed))
    let document = Self.randomDocument(depth: 4, using: &generator)
    let encoded = try document.protobufStruct.serializedBytes() as [UInt8]
    #expect(document.protobufStructSize >= encoded.count)
    #expect(document.protobufStructSize <= 3 * encoded.count + 8, "a bound, not a wild over-estimate")
    let value = try document.protobufValue.serializedBytes() as [UInt8]
    #expect(document.protobufValueSize >= value.count)
  }

  static func randomDocument(depth: Int, using generator: inout SeededGenerator) -> JSONValue {
    var members: [String: JSONValue] = [:]
    for index in 0..<Int.random(in: 1...6, using: &generator) {
      let key = "k\(index)" + String(repeating: "é", count: Int.random(in: 0...200, using: &generator))
      switch Int.random(in: 0...5, using: &generator) {
      case 0: members[key] = .null
      case 1: members[key] = .bool(true)
      case 2: members[key] = .number(Double(Int.random(in: -1000...1000, using: &generator)))
      case 3: members[key] = .string(String(repeating: "x", count: Int.random(in: 0...300, using: &generator)))
      case 4: members[key] = .array((0..<Int.random(in: 0...20, using: &generator)).map { .number(Double($0)) })
      default: members[key] = depth > 0 ? Self.randomDocument(depth: depth - 1, using: &generator) : .string("leaf")
      }
    }
    return .object(members)
  }

  /// A `google.protobuf.Value` that is `levels` messages deep, itself included (list values
  /// in values), encoded by hand: swift-protobuf's encoder recurses as its decoder does, and a
  /// test must be able to send what no well-behaved encoder would build.
  static func nestedValue(levels: Int) -> [UInt8] {
    var body: [UInt8] = []
    // Level 0 is the Value itself; then a ListValue at odd levels and a Value at even ones.
    for level in stride(from: levels - 2, through: 0, by: -1) {
      let tag: UInt8 = level % 2 == 0 ? 0x32 : 0x0A  // Value.list_value (6) : ListValue.values (1)
      var length = body.count
      var prefix: [UInt8] = [tag]
      repeat {
        prefix.append(UInt8(length & 0x7F) | (length > 0x7F ? 0x80 : 0))
        length >>= 7
      } while length > 0
      body = prefix + body
    }
    return body
  }

  @Test("Protobuf messages nest up to the runtime's limit; deeper is INVALID_ARGUMENT on a server, INTERNAL on a client")
  func messageDepth() throws {
    let limit = NestingLimit.messageDepth(forNesting: NestingLimit.maximumDepth)
    let codec = MessageCodec(
      receiveEncoding: .identity, compressSent: false, maxReceiveMessageSize: 4 << 20, maxMessageDepth: limit, receivesRequests: true)
    var client = codec
    client.receivesRequests = false
    let results = onThread {
      [limit, limit + 1, 100_000].map { levels in
        Result { () throws(RPCError) in
          try codec.decode(ReceivedMessage(compressed: false, payload: Self.nestedValue(levels: levels)), as: Google_Protobuf_Value.self)
        }
      }
    }
    #expect(throws: Never.self) { try results[0].get() }
    for result in results.dropFirst() {
      #expect { try result.get() } throws: { error in
        (error as? RPCError)?.code == .invalidArgument && (error as? RPCError)?.message.contains("deeper than \(limit) levels") == true
      }
    }
    #expect { try client.decode(ReceivedMessage(compressed: false, payload: Self.nestedValue(levels: limit + 1)), as: Google_Protobuf_Value.self) }
      throws: { ($0 as? RPCError)?.code == .internal }
  }
}

/// A small deterministic generator (SplitMix64) so random documents repeat run to run.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { self.state = seed }
  mutating func next() -> UInt64 {
    self.state &+= 0x9E37_79B9_7F4A_7C15
    var z = self.state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
