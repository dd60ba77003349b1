import Foundation
import PlatformCore
import PlatformProtos
import SwiftProtobuf
import Testing

@Suite("Versioned memo and pre-encoded replies")
struct VersionedMemoTests {
  @Test("A value is returned for its exact version only; an older version never replaces a newer one")
  func versions() {
    let memo = VersionedMemo<String, String>(maxEntries: 10, maxBytes: 1000)
    memo.store("v2", version: 2, bytes: 2, for: "a")
    #expect(memo.value(for: "a", version: 2) == "v2")
    #expect(memo.value(for: "a", version: 1) == nil && memo.value(for: "a", version: 3) == nil)
    memo.store("v1", version: 1, bytes: 2, for: "a")
    #expect(memo.value(for: "a", version: 2) == "v2" && memo.value(for: "a", version: 1) == nil)
    memo.store("v3", version: 3, bytes: 5, for: "a")
    #expect(memo.value(for: "a", version: 3) == "v3")
    #expect(memo.usage.entries == 1 && memo.usage.bytes == 5)
  }

  @Test("Entries and bytes stay within their bounds; a value larger than the whole memo is not kept")
  func bounds() {
    let memo = VersionedMemo<Int, Int>(maxEntries: 100, maxBytes: 1000)
    for key in 0..<10_000 {
      memo.store(key, version: 1, bytes: 7, for: key)
      let usage = memo.usage
      #expect(usage.entries <= 100 && usage.bytes <= 1000)
      #expect(memo.value(for: key, version: 1) == key)
    }
    memo.store(-1, version: 1, bytes: 1001, for: -1)
    #expect(memo.value(for: -1, version: 1) == nil)
    let off = VersionedMemo<Int, Int>(maxEntries: 0, maxBytes: 1000)
    off.store(1, version: 1, bytes: 1, for: 1)
    #expect(off.value(for: 1, version: 1) == nil)
  }

  @Test("A pre-encoded message serializes to the same bytes and decodes to the same fields")
  func preEncoded() throws {
    let message = Platform_Persona_V1_Persona.with {
      $0.id = UUID().lowercasedString
      $0.name = "pre-encoded"
      $0.variables = try! Google_Protobuf_Struct(
        jsonString: #"{"type":"object","properties":{"role":{"type":"string","default":"a pirate"}},"required":["role"]}"#)
      $0.usageCount = 42
      $0.rating = 4.5
    }
    let (encoded, size) = try message.preEncoded()
    let original: [UInt8] = try message.serializedBytes()
    let again: [UInt8] = try encoded.serializedBytes()
    #expect(size == original.count)
    #expect(try Platform_Persona_V1_Persona(serializedBytes: again) == message)
    #expect(again.count == original.count)
  }
}
