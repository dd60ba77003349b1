public import Foundation
internal import Crypto

extension UUID {
  /// Parses the canonical text form of a UUID and nothing else: exactly 36 ASCII characters,
  /// 8-4-4-4-12 hex digits (either case) separated by dashes.
  ///
  /// Every id that arrives in a request or a token goes through here. Foundation's
  /// `UUID(uuidString:)` reads a C string on Linux, so `<uuid>\u{0}anything` parsed as that
  /// uuid: one id had any number of spellings, and whatever followed the NUL went unseen.
  ///
  /// - Parameter text: the text to parse.
  /// - Returns: nil unless `text` is exactly one canonical UUID.
  public init?(strict text: some StringProtocol) {
    var text = String(text)
    guard let uuid = text.withUTF8(Self.parseStrict) else { return nil }
    self.init(uuid: uuid)
  }

  /// The parser on the text's bytes: no generic code at run time (through `enumerated()` over a
  /// generic `StringProtocol` it was 9% of a persona Get's CPU, in type metadata lookups).
  private static func parseStrict(_ utf8: UnsafeBufferPointer<UInt8>) -> uuid_t? {
    guard utf8.count == 36 else { return nil }
    var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    let parsed = withUnsafeMutableBytes(of: &uuid) { bytes in
      var nibbles = 0
      for offset in 0..<36 {
        let byte = utf8[offset]
        if offset == 8 || offset == 13 || offset == 18 || offset == 23 {
          guard byte == UInt8(ascii: "-") else { return false }
          continue
        }
        guard let digit = Self.hexDigit(byte) else { return false }
        bytes[nibbles >> 1] |= nibbles & 1 == 0 ? digit << 4 : digit
        nibbles += 1
      }
      return true
    }
    return parsed ? uuid : nil
  }

  /// The canonical text form in lowercase, as ids appear in replies, keys and tokens. (Foundation's
  /// `uuidString` formats through `sprintf` on Linux, and `.lowercased()` copies it once more.)
  public var lowercasedString: String {
    String(unsafeUninitializedCapacity: 36) { text in
      let digits: StaticString = "0123456789abcdef"
      var position = 0
      withUnsafeBytes(of: self.uuid) { bytes in
        for (index, byte) in bytes.enumerated() {
          if index == 4 || index == 6 || index == 8 || index == 10 {
            text[position] = UInt8(ascii: "-")
            position += 1
          }
          text[position] = digits.utf8Start[Int(byte >> 4)]
          text[position + 1] = digits.utf8Start[Int(byte & 0xF)]
          position += 2
        }
      }
      return 36
    }
  }

  private static func hexDigit(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }
}

extension UUID {
  /// The UUID `key` always gives: the first 16 bytes of its SHA-256 with the version 5 and
  /// variant bits set. For ids derived from another (a retry's request id, a fire time's run), so
  /// that doing the same thing twice names the same row.
  public init(derivedFrom key: String) {
    var bytes = Array(SHA256.hash(data: Data(key.utf8)).prefix(16))
    bytes[6] = (bytes[6] & 0x0F) | 0x50
    bytes[8] = (bytes[8] & 0x3F) | 0x80
    self.init(
      uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12],
        bytes[13], bytes[14], bytes[15]))
  }
}
