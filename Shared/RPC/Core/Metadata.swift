/// gRPC custom metadata: an ordered multimap of lower-case keys to ASCII or binary values.
///
/// Keys ending in `-bin` carry binary values, sent base64-encoded; all other values are
/// printable ASCII. Reserved keys (pseudo-headers, `grpc-*` protocol headers, `content-type`,
/// `te`) are never part of a call's metadata.
/// A metadata value: ASCII text, or bytes for `-bin` keys.
public enum MetadataValue: Sendable, Hashable {
  case string(String)
  case binary([UInt8])
}

public struct Metadata: Sendable, Hashable, ExpressibleByDictionaryLiteral, Sequence {
  public struct Entry: Sendable, Hashable {
    public var key: String
    public var value: MetadataValue
  }

  private var entries: [Entry]

  public init() {
    self.entries = []
  }

  public init(dictionaryLiteral elements: (String, String)...) {
    self.entries = []
    for (key, value) in elements { self.addString(value, forKey: key) }
  }

  public var isEmpty: Bool { self.entries.isEmpty }
  public var count: Int { self.entries.count }

  public func makeIterator() -> IndexingIterator<[Entry]> {
    self.entries.makeIterator()
  }

  /// Appends an ASCII value. The key is lower-cased.
  public mutating func addString(_ value: String, forKey key: String) {
    self.entries.append(Entry(key: Self.lowercased(key), value: .string(value)))
  }

  /// Appends a binary value; the key must end in `-bin`. The key is lower-cased.
  public mutating func addBinary(_ value: [UInt8], forKey key: String) {
    self.entries.append(Entry(key: Self.lowercased(key), value: .binary(value)))
  }

  /// Replaces every value of `key` with one ASCII value.
  public mutating func replaceOrAddString(_ value: String, forKey key: String) {
    self.removeAll(forKey: key)
    self.addString(value, forKey: key)
  }

  public mutating func removeAll(forKey key: String) {
    let key = Self.lowercased(key)
    self.entries.removeAll { $0.key == key }
  }

  /// The first ASCII value of `key`.
  public func firstString(forKey key: String) -> String? {
    for entry in self.entries where entry.key == key {
      if case .string(let value) = entry.value { return value }
    }
    return nil
  }

  /// Every binary value of `key`.
  public func binaryValues(forKey key: String) -> [[UInt8]] {
    self.entries.compactMap { entry in
      guard entry.key == key, case .binary(let value) = entry.value else { return nil }
      return value
    }
  }

  public mutating func append(contentsOf other: Metadata) {
    self.entries.append(contentsOf: other.entries)
  }

  /// Whether `key` may be sent as custom metadata.
  static func isValidCustomKey(_ key: String) -> Bool {
    guard !key.isEmpty, !Self.isReserved(key) else { return false }
    return key.utf8.allSatisfy { byte in
      (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
        || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
    }
  }

  /// Whether `key` is a pseudo-header or a header the protocol owns. Compares bytes, and only
  /// with the names of `key`'s length: every header of every call passes through here.
  static func isReserved(_ key: String) -> Bool {
    let utf8 = key.utf8
    guard let first = utf8.first else { return false }
    if first == UInt8(ascii: ":") { return true }
    switch utf8.count {
    case 2: return key == "te"
    case 4: return key == "host"
    case 7: return key == "upgrade"
    case 10: return key == "connection" || key == "keep-alive"
    case 11: return key == "grpc-status"
    case 12: return key == "content-type" || key == "grpc-message" || key == "grpc-timeout"
    case 13: return key == "grpc-encoding"
    case 16: return key == "proxy-connection"
    case 17: return key == "transfer-encoding"
    case 20: return key == "grpc-accept-encoding"
    case 23: return key == "grpc-status-details-bin"
    default: return false
    }
  }

  /// Whether `key` names a binary header (`-bin`), compared as bytes.
  static func isBinaryKey(_ key: String) -> Bool {
    key.utf8.withContiguousStorageIfAvailable { bytes in
      bytes.count >= 4 && bytes[bytes.count - 4] == UInt8(ascii: "-") && bytes[bytes.count - 3] == UInt8(ascii: "b")
        && bytes[bytes.count - 2] == UInt8(ascii: "i") && bytes[bytes.count - 1] == UInt8(ascii: "n")
    } ?? key.utf8.suffix(4).elementsEqual("-bin".utf8)
  }

  /// `key` in lower case; the same string (no copy) when it already is, as keys nearly always are.
  static func lowercased(_ key: String) -> String {
    key.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") } ? key.lowercased() : key
  }

  /// Decodes one received header into an entry, or nil when the value is not valid for its key.
  static func decodedEntry(key: String, value: Substring) -> Entry? {
    if Self.isBinaryKey(key) {
      guard let bytes = Base64.decode(value) else { return nil }
      return Entry(key: key, value: .binary(bytes))
    }
    return Entry(key: key, value: .string(String(value)))
  }

  mutating func append(_ entry: Entry) {
    self.entries.append(entry)
  }

  /// The wire form of each entry: the value, base64-encoded (unpadded) for binary ones.
  func forEachWireHeader(_ body: (String, String) -> Void) {
    for entry in self.entries where Self.isValidCustomKey(entry.key) {
      switch entry.value {
      case .string(let value):
        body(entry.key, value)
      case .binary(let bytes):
        body(entry.key, Base64.encode(bytes))
      }
    }
  }
}
