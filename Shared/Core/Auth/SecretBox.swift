internal import Crypto
internal import Foundation

/// Seals secrets stored in a service's database (registered databases' credentials, callback
/// secrets) with AES-256-GCM, each bound to its row by associated data: a sealed value copied
/// to another row (another user's id) or with a flipped bit fails to open.
///
/// The keys come from one variable (`SQL_ENCRYPTION_KEY`, …): `[id:]base64` entries separated by
/// commas, each 32 bytes. The first seals; every one opens what it sealed, so a key rotates by
/// putting the new one first and keeping the old one until every row is re-sealed. A key
/// without an id is named by the first 8 hex digits of its SHA-256.
public struct SecretBox: Sendable {
  public struct Key: Sendable {
    public let id: String
    let key: SymmetricKey
  }

  public let keys: [Key]

  public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The row names a key this service does not have.
    case unknownKey(String)
    /// Tampered, truncated, or sealed for another row.
    case unauthentic

    public var description: String {
      switch self {
      case .unknownKey(let id): "The stored secret was sealed with key \(id), which is not configured"
      case .unauthentic: "The stored secret does not open: it was changed, or it belongs to another row"
      }
    }
  }

  /// - Throws: `Environment.InvalidValue` naming `variable` when an entry is not 32 bytes of
  ///   base64 or two entries share an id.
  public init(parsing text: String, variable: String) throws {
    var keys: [Key] = []
    for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
      let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
      let encoded = parts.count == 2 ? parts[1] : parts[0]
      guard let bytes = Data(base64Encoded: encoded), bytes.count == 32 else {
        throw Environment.InvalidValue(variable: variable, value: "(hidden)", expected: "[id:]base64 of 32 bytes, comma-separated")
      }
      let id = parts.count == 2 ? parts[0] : SHA256.hash(data: bytes).prefix(4).map { String(format: "%02x", $0) }.joined()
      guard !id.isEmpty, id.utf8.count <= 64, !keys.contains(where: { $0.id == id }) else {
        throw Environment.InvalidValue(variable: variable, value: id, expected: "distinct key ids of 1–64 characters")
      }
      keys.append(Key(id: id, key: SymmetricKey(data: bytes)))
    }
    guard !keys.isEmpty else { throw Environment.InvalidValue(variable: variable, value: "", expected: "at least one key") }
    self.keys = keys
  }

  /// `plaintext` sealed with the current key for the row `context` names: the key's id and the
  /// box (nonce, ciphertext and tag) in base64.
  public func seal(_ plaintext: [UInt8], context: String) throws -> (keyID: String, sealed: String) {
    let current = self.keys[0]
    let box = try AES.GCM.seal(plaintext, using: current.key, authenticating: Array(context.utf8))
    guard let combined = box.combined else { throw Failure.unauthentic }
    return (current.id, combined.base64EncodedString())
  }

  /// Opens what `seal` returned for the same `context`.
  /// - Throws: `Failure`.
  public func open(_ sealed: String, keyID: String, context: String) throws(Failure) -> [UInt8] {
    guard let key = self.keys.first(where: { $0.id == keyID }) else { throw .unknownKey(keyID) }
    guard let data = Data(base64Encoded: sealed), let box = try? AES.GCM.SealedBox(combined: data),
      let plaintext = try? AES.GCM.open(box, using: key.key, authenticating: Array(context.utf8))
    else { throw .unauthentic }
    return Array(plaintext)
  }

  /// Whether `keyID` is not the current key (the row should be re-sealed).
  public func isStale(_ keyID: String) -> Bool {
    keyID != self.keys[0].id
  }
}
