import Foundation
import PlatformCore
import Testing

@Suite("Strict parsing of ids and JSON")
struct StrictParsingTests {
  @Test("A canonical UUID parses in either case, as Foundation reads it")
  func canonicalUUID() throws {
    let id = UUID()
    #expect(UUID(strict: id.uuidString) == id)
    #expect(UUID(strict: id.uuidString.lowercased()) == id)
    let mixed = "0aF1b2C3-d4E5-46a7-8B9c-0D1e2F3a4B5c"
    #expect(UUID(strict: mixed) == UUID(uuidString: mixed))
    #expect(
      UUID(strict: "00000000-0000-0000-0000-000000000000")
        == UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
    #expect(UUID(strict: "ffffffff-ffff-ffff-ffff-ffffffffffff")?.uuidString == "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")
    #expect(UUID(strict: Substring("x" + id.uuidString).dropFirst()) == id)
  }

  @Test("lowercasedString is Foundation's text in lowercase, and parses back")
  func lowercasedText() {
    for _ in 0..<1000 {
      let id = UUID()
      #expect(id.lowercasedString == id.uuidString.lowercased())
      #expect(UUID(strict: id.lowercasedString) == id)
    }
    #expect(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).lowercasedString == "00000000-0000-0000-0000-000000000000")
  }

  @Test(
    "Anything but exactly 36 characters of 8-4-4-4-12 hex digits is not a UUID",
    arguments: [
      "", "6ba7b810-9dad-11d1-80b4-00c04fd430c8\u{0}junk", "6ba7b810-9dad-11d1-80b4-00c04fd430c8\u{0}",
      "6ba7b810-9dad-11d1-80b4-00c04fd430c", "6ba7b810-9dad-11d1-80b4-00c04fd430c80",
      "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
      "6ba7b8109dad11d180b400c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430c8 ",
      " 6ba7b810-9dad-11d1-80b4-00c04fd430c8",
      "6ba7b8109-dad-11d1-80b4-00c04fd430c8", "6ba7b810-9dad-11d1-80b400-c04fd430c8",
      "6ba7b810_9dad_11d1_80b4_00c04fd430c8",
      "6ba7b810-9dad-11d1-80b4-00c04fd430cg", "6ba7b810-9dad-11d1-80b4-00c04fd43\u{FF18}",
      "+ba7b810-9dad-11d1-80b4-00c04fd430c8",
      "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430c8\n",
      "6ba7b810-9dad-11d1-80b4-00c04fd430\u{E9}",
      "------------------------------------",
    ])
  func notUUID(text: String) {
    #expect(UUID(strict: text) == nil)
  }

  @Test(
    "An object naming a member twice is not JSON we accept, at any depth, however the name is spelled",
    arguments: [
      #"{"k":1,"k":2}"#, #"{"k":1,"k":1}"#, #"{"a":{"b":null,"b":null}}"#, #"[{"x":[]},{"y":1,"y":1}]"#,
      #"{"k":1,"\u006b":2}"#, #"{"k":{},"k":[]}"#, #"{"":1,"":2}"#,
    ])
  func duplicateMembers(text: String) {
    #expect(throws: JSONParseError.self) { try JSONValue(jsonText: text) }
  }

  @Test("The same name in different objects is fine, and the error says where the repeat is")
  func distinctObjects() throws {
    #expect(try JSONValue(jsonText: #"{"a":{"k":1},"b":{"k":2},"k":3}"#).objectValue?.count == 3)
    #expect(
      try JSONValue(jsonText: #"[{"k":1},{"k":2}]"#)
        == .array([.object(["k": .number(1)]), .object(["k": .number(2)])]))
    do {
      _ = try JSONValue(jsonText: #"{"k":1, "k":2}"#)
      Issue.record("a duplicate name was accepted")
    } catch {
      #expect(error.offset == 8 && error.reason.contains("duplicate"), "\(error)")
    }
  }
}
