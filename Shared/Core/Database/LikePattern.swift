internal import Foundation

/// LIKE / ILIKE patterns built from user text, with backslash (PostgreSQL's default) as the escape
/// character: the text's `%`, `_` and `\` match only themselves.
public enum LikePattern {
  /// The pattern matching any value that contains `text`.
  public static func containing(_ text: String) -> String {
    "%" + Self.literal(text) + "%"
  }

  /// The pattern matching any value that starts with `text`.
  public static func startingWith(_ text: String) -> String {
    Self.literal(text) + "%"
  }

  /// `text` as a pattern that matches only itself.
  private static func literal(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
      .replacingOccurrences(of: "_", with: "\\_")
  }
}
