internal import Foundation

/// The variables a template refers to, found by scanning its tags (default `{{ }}` delimiters,
/// following set-delimiter tags), for the template_syntax validator.
public struct TemplateVariables: Sendable, Hashable {
  /// One `{{name}}`, `{{#name}}` or `{{^name}}` reference.
  public struct Reference: Sendable, Hashable {
    /// The first segment of the (dotted) name.
    public var root: String
    /// The full name, such as `user.name`.
    public var name: String
    public var line: Int
    /// The roots of the sections the reference sits in, outermost first.
    public var enclosingSections: [String]
  }

  public var references: [Reference] = []
  /// Partial tags (`{{> name}}`): there is no partial library, so they render nothing.
  public var partials: [String] = []

  public init(scanning source: String) {
    var open = "{{"
    var close = "}}"
    var sections: [String] = []
    var rest = Substring(source)
    var line = 1
    while let start = rest.range(of: open) {
      line += rest[..<start.lowerBound].count(where: \.isNewline)
      var afterOpen = rest[start.upperBound...]
      var closing = close
      if afterOpen.first == "{" && open == "{{" {
        afterOpen = afterOpen.dropFirst()
        closing = "}" + close
      }
      guard let end = afterOpen.range(of: closing) else { break }
      let tag = afterOpen[..<end.lowerBound].trimmingWhitespace()
      line += afterOpen[..<end.lowerBound].count(where: \.isNewline)
      rest = afterOpen[end.upperBound...]

      let sigil = tag.first
      let body = sigil.map { "#^/!>&=%$<".contains($0) } == true ? tag.dropFirst().trimmingWhitespace() : tag
      switch sigil {
      case "!", "%":
        continue
      case "=":
        let delimiters = body.dropLast().split(separator: " ", omittingEmptySubsequences: true)
        if delimiters.count == 2 {
          open = String(delimiters[0])
          close = String(delimiters[1])
        }
        continue
      case ">":
        self.partials.append(String(body))
        continue
      case "/":
        if !sections.isEmpty { sections.removeLast() }
        continue
      default:
        break
      }
      let name = Self.variableName(body)
      guard name != "." && !name.isEmpty else {
        if sigil == "#" || sigil == "^" || sigil == "$" || sigil == "<" { sections.append(name) }
        continue
      }
      let root = String(name.split(separator: ".").first ?? Substring(name))
      self.references.append(Reference(root: root, name: name, line: line, enclosingSections: sections))
      if sigil == "#" || sigil == "^" || sigil == "$" || sigil == "<" { sections.append(root) }
    }
  }

  /// The name inside a tag, without a transform (`uppercased(name)` → `name`).
  private static func variableName(_ body: Substring) -> String {
    if let open = body.firstIndex(of: "("), let close = body.lastIndex(of: ")"), open < close {
      return String(body[body.index(after: open)..<close]).trimmingCharacters()
    }
    return String(body)
  }
}

extension Substring {
  fileprivate func trimmingWhitespace() -> Substring {
    var trimmed = self
    while trimmed.first?.isWhitespace == true { trimmed = trimmed.dropFirst() }
    while trimmed.last?.isWhitespace == true { trimmed = trimmed.dropLast() }
    return trimmed
  }
}

extension String {
  fileprivate func trimmingCharacters() -> String {
    String(Substring(self).trimmingWhitespace())
  }
}
