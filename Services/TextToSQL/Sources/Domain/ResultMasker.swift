internal import Crypto
internal import Foundation

/// Replaces the values of masked columns in a result (the guard let them be selected only as
/// they are): a result column is masked when the database says it comes from a masked column,
/// or, when it cannot say, when its name is a masked column's.
enum ResultMasker {
  static func mask(_ result: inout ResultRows, rules: [ColumnPolicies.Rule]) -> [String] {
    guard !rules.isEmpty else { return [] }
    var masked: [String] = []
    for (index, column) in result.columns.enumerated() {
      let rule =
        column.origin.flatMap { origin in rules.first { $0.column == origin } }
        ?? (column.origin == nil ? rules.first { $0.column.column == column.name.lowercased() } : nil)
      guard let rule, case .mask(let kind) = rule.effect else { continue }
      masked.append(column.name)
      for row in result.rows.indices {
        result.rows[row][index] = Self.mask(result.rows[row][index], kind: kind)
      }
    }
    return masked
  }

  static func mask(_ value: ResultValue, kind: ColumnPolicies.MaskKind) -> ResultValue {
    if value == .null { return .null }
    let text: String =
      switch value {
      case .null: ""
      case .bool(let flag): flag ? "true" : "false"
      case .number(let number): number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
      case .text(let text): text
      }
    switch kind {
    case .null:
      return .null
    case .hash:
      let digest = SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
      return .text("sha256:" + digest.prefix(16))
    case .partial:
      let characters = Array(text)
      let kept = min(4, characters.count / 3)
      return .text(String(repeating: "*", count: characters.count - kept) + String(characters.suffix(kept)))
    }
  }
}
