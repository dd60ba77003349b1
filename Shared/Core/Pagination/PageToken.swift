internal import Foundation

/// Opaque page tokens: a Codable cursor as base64url JSON. A token that does not decode, or
/// was made for a different request, is INVALID_ARGUMENT (`page_token`) at the caller.
public enum PageToken {
  public static func encode(_ cursor: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let data = (try? encoder.encode(cursor)) ?? Data()
    return data.base64EncodedString()
      .replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }

  /// The cursor in `token`, nil when it is not one of ours.
  public static func decode<Cursor: Decodable>(_ token: String, as type: Cursor.Type) -> Cursor? {
    guard token.count <= 2048 else { return nil }
    var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    guard let data = Data(base64Encoded: base64) else { return nil }
    return try? JSONDecoder().decode(Cursor.self, from: data)
  }

  /// A fixed-length stand-in for request text a token must match (a search query): the token
  /// stays short however long the text is.
  public static func fingerprint(_ text: String) -> String {
    text.sha256Hex
  }

  /// The page size to use for a requested `page_size`: 0 means `defaultSize`; larger than
  /// `maximum` is lowered to it.
  /// - Returns: nil when the request is negative.
  public static func pageSize(_ requested: Int32, default defaultSize: Int, maximum: Int) -> Int? {
    if requested < 0 { return nil }
    if requested == 0 { return defaultSize }
    return min(Int(requested), maximum)
  }
}

extension PageToken {
  /// A cursor with the listing's filter: a token is good only for the listing that made it.
  public struct Filtered<Cursor: Codable & Sendable>: Codable, Sendable {
    public var after: Cursor
    public var filter: String
  }

  /// The token continuing after `cursor` in the listing `filter` names (a fingerprint of its
  /// request's filters).
  public static func encode<Cursor: Codable & Sendable>(after cursor: Cursor, filter: String) -> String {
    Self.encode(Filtered(after: cursor, filter: filter))
  }

  /// The cursor of `token`: nil for an empty token, INVALID_ARGUMENT (`page_token`) for one that
  /// is not ours or was made for another listing.
  public static func cursor<Cursor: Codable & Sendable>(_ token: String, filter: String, as type: Cursor.Type) throws(ServiceError) -> Cursor? {
    guard !token.isEmpty else { return nil }
    guard let decoded = Self.decode(token, as: Filtered<Cursor>.self), decoded.filter == filter else {
      throw .invalidArgument(field: "page_token", reason: "is not a token of this listing")
    }
    return decoded.after
  }
}
