internal import Mustache
public import PlatformCore

/// A persona's template: Mustache, logic-less (sections, inverted sections, variables; no
/// partials, no code), rendered as plain text (no HTML escaping: the output is a prompt).
public struct PersonaTemplate: Sendable {
  /// Output is text; prepended to every template before parsing.
  private static let textMode = "{{% CONTENT_TYPE: TEXT}}"
  private let template: MustacheTemplate
  public let source: String

  /// Parses `source`.
  /// - Throws: `PersonaError.templateSyntax` with the line and column of the problem.
  public init(_ source: String) throws(PersonaError) {
    self.source = source
    do {
      self.template = try MustacheTemplate(string: Self.textMode + source)
    } catch let error as MustacheTemplate.ParserError {
      let line = error.context.lineNumber
      let column = line == 1 ? max(1, error.context.columnNumber - Self.textMode.count) : error.context.columnNumber
      throw .templateSyntax(line: line, column: column, reason: Self.describe(error.error))
    } catch {
      throw .templateSyntax(line: 1, column: 1, reason: "\(error)")
    }
  }

  /// Renders the template with `variables`.
  /// - Parameter maxCharacters: the output cap, in Unicode scalars.
  /// - Throws: `PersonaError.renderTooLarge` when the output (or the work to produce it, for
  ///   sections repeated over long lists) would exceed the cap. Nothing is truncated.
  public func render(_ variables: [String: JSONValue], maxCharacters: Int) throws(PersonaError) -> String {
    let longestString = variables.values.map(Self.longestString(in:)).max() ?? 0
    let budget = RenderBudget(
      limit: 8 * max(maxCharacters, 1024) + self.source.utf8.count,
      costPerIteration: self.source.utf8.count + longestString + 1)
    let context = variables.mapValues { Self.mustacheValue($0, budget: budget) as Any }
    let text = self.template.render(context)
    guard !budget.exhausted, text.unicodeScalars.count <= maxCharacters else {
      throw .renderTooLarge(limit: maxCharacters)
    }
    return text
  }

  private static func mustacheValue(_ value: JSONValue, budget: RenderBudget) -> Any? {
    switch value {
    case .null: return nil
    case .bool(let bool): return bool
    case .number(let number):
      return number.rounded() == number && abs(number) < 1e15 ? Int(number) : number
    case .string(let string): return string
    case .array(let values): return BudgetedSequence(values: values.map { mustacheValue($0, budget: budget) as Any }, budget: budget)
    case .object(let members): return members.compactMapValues { mustacheValue($0, budget: budget) }
    }
  }

  private static func longestString(in value: JSONValue) -> Int {
    switch value {
    case .string(let string): string.utf8.count
    case .array(let values): values.map(longestString(in:)).max() ?? 0
    case .object(let members): members.values.map(longestString(in:)).max() ?? 0
    default: 24
    }
  }

  private static func describe(_ error: any Error) -> String {
    switch error as? MustacheTemplate.Error {
    case .sectionCloseNameIncorrect: "a section is closed with a different name than it was opened with"
    case .unfinishedName: "a tag is not closed (missing `}}`)"
    case .expectedSectionEnd: "a section is never closed (missing `{{/name}}`)"
    case .invalidSetDelimiter: "malformed set-delimiter tag"
    case .invalidConfigVariableSyntax, .unrecognisedConfigVariable: "malformed `{{% }}` tag"
    case .transformAppliedToInheritanceSection, .illegalTokenInsideInheritSection, .textInsideInheritSection:
      "template inheritance is not supported"
    case .none: "\(error)"
    }
  }
}

/// Work allowed for one render: each pass through a section over a list costs roughly what
/// that pass can output, so nested sections over long lists cannot run away.
private final class RenderBudget {
  let limit: Int
  let costPerIteration: Int
  private(set) var spent = 0
  private(set) var exhausted = false

  init(limit: Int, costPerIteration: Int) {
    self.limit = limit
    self.costPerIteration = costPerIteration
  }

  /// Charges one iteration; false once the budget is gone.
  func charge() -> Bool {
    self.spent += self.costPerIteration
    if self.spent > self.limit { self.exhausted = true }
    return !self.exhausted
  }
}

/// A list in the render context whose iteration stops when the budget runs out.
private struct BudgetedSequence: MustacheSequence {
  let values: [Any]
  let budget: RenderBudget

  func makeIterator() -> Iterator {
    Iterator(values: self.values.makeIterator(), budget: self.budget)
  }

  struct Iterator: IteratorProtocol {
    var values: IndexingIterator<[Any]>
    let budget: RenderBudget

    mutating func next() -> Any? {
      guard let value = self.values.next(), self.budget.charge() else { return nil }
      return value
    }
  }
}
