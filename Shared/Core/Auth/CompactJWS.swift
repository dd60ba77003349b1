/// A JWS in compact serialization (RFC 7515 §7.1), read as strictly as the standards allow
/// before jwt-kit sees it, so that every party that reads a token reads the same one.
///
/// - Each segment is unpadded base64url (RFC 7515 §2) in its one canonical spelling: no `=`, no
///   character outside the alphabet, no set bits after the last whole byte. A token has exactly
///   one text, which is also what the verified-token cache keys on.
/// - Header and payload are UTF-8 JSON objects, parsed by the core's strict parser: no
///   unescaped control characters, no duplicate member names (RFC 7519 §4 lets a recipient
///   reject them, and jwt-kit's decoder and other parsers disagree on which duplicate counts).
struct CompactJWS {
  var header: [String: JSONValue]
  var payload: [String: JSONValue]

  /// Checks the three segments and parses the first two. The signature is only checked for its
  /// spelling here; jwt-kit verifies it.
  /// - Throws: `TokenError.malformed` unless `token` is three canonical base64url segments of
  ///   which the first two are JSON objects.
  init(_ token: String) throws(TokenError) {
    let segments = token.utf8.split(separator: UInt8(ascii: "."), maxSplits: 3, omittingEmptySubsequences: false)
    guard segments.count == 3,
      let header = Self.base64URLDecoded(segments[0]).flatMap(Self.jsonObject),
      let payload = Self.base64URLDecoded(segments[1]).flatMap(Self.jsonObject),
      Self.base64URLDecoded(segments[2]) != nil
    else { throw .malformed }
    self.header = header
    self.payload = payload
  }

  /// The bytes of unpadded, canonical base64url text; nil for anything else.
  static func base64URLDecoded(_ text: some Collection<UInt8>) -> [UInt8]? {
    // A lone sextet cannot hold a byte.
    guard text.count % 4 != 1 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.count * 3 / 4)
    var pending: UInt32 = 0
    var pendingBits = 0
    for character in text {
      guard let sextet = Self.sextet(character) else { return nil }
      pending = pending << 6 | UInt32(sextet)
      pendingBits += 6
      if pendingBits >= 8 {
        pendingBits -= 8
        bytes.append(UInt8(truncatingIfNeeded: pending >> UInt32(pendingBits)))
        pending &= (1 << UInt32(pendingBits)) - 1
      }
    }
    // The 2 or 4 bits left after the last byte are zero in the canonical spelling; other values
    // decode to the same bytes and would give one token several texts.
    guard pending == 0 else { return nil }
    return bytes
  }

  private static func sextet(_ character: UInt8) -> UInt8? {
    switch character {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
    case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a") + 26
    case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0") + 52
    case UInt8(ascii: "-"): 62
    case UInt8(ascii: "_"): 63
    default: nil
    }
  }

  /// The members of the JSON object `bytes` hold (RFC 8259: UTF-8, no BOM); nil for anything
  /// else.
  private static func jsonObject(_ bytes: [UInt8]) -> [String: JSONValue]? {
    guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
    return (try? JSONValue(jsonText: text))?.objectValue
  }
}
