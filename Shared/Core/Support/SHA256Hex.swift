internal import Crypto

extension String {
  /// SHA-256 of the text's UTF-8 bytes, as 64 lowercase hex digits.
  public var sha256Hex: String {
    SHA256.hash(data: Array(self.utf8)).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
  }
}

extension Array where Element == UInt8 {
  /// SHA-256 of the bytes, as 64 lowercase hex digits.
  public var sha256Hex: String {
    SHA256.hash(data: self).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
  }
}
