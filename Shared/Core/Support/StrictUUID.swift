public import Foundation

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
    let utf8 = text.utf8
    guard utf8.count == 36 else { return nil }
    var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    let parsed = withUnsafeMutableBytes(of: &uuid) { bytes in
      var nibbles = 0
      for (offset, byte) in utf8.enumerated() {
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
    guard parsed else { return nil }
    self.init(uuid: uuid)
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
