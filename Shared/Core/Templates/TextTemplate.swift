internal import Mustache

/// A text template: Mustache, logic-less (sections, inverted sections, variables; no partials,
/// no code), rendered as plain text (no HTML escaping: the output is text such as a prompt, not
/// HTML).
///
/// Bounded on both sides: sections may nest only `maxDepth` levels (checked before parsing, so
/// deep nesting cannot overflow the stack), and a render may produce only `maxCharacters` (and
/// do only the work that can produce them), so no template and no variables make it run away.
public struct TextTemplate: Sendable {
  /// Why a template cannot be parsed or rendered.
  public enum Problem: Error, Equatable, Sendable {
    /// The template does not parse; `line` and `column` are 1-based, in `source`.
    case syntax(line: Int, column: Int, reason: String)
    /// Sections nest deeper than `limit` levels.
    case tooDeep(limit: Int)
    /// Rendering would exceed `limit` characters (or the work to produce them).
    case tooLarge(limit: Int)
  }

  /// Output is text; prepended to every template before parsing.
  private static let textMode = "{{% CONTENT_TYPE: TEXT}}"
  private let template: MustacheTemplate
  public let source: String

  /// Parses `source`.
  /// - Parameter maxDepth: how deep sections may nest. swift-mustache parses (and renders) a
  ///   section by recursion, a stack frame of kilobytes per level in a debug build, so depth
  ///   is checked first, by a scan that follows its tokenizer (`sectionDepth`).
  /// - Throws: `Problem.syntax` with the line and column of the problem, or `.tooDeep` when
  ///   sections nest deeper than `maxDepth`.
  public init(_ source: String, maxDepth: Int = NestingLimit.defaultDepth) throws(Problem) {
    self.source = source
    let text = Self.textMode + source
    switch Self.sectionDepth(of: text, limit: maxDepth) {
    case .within: break
    case .tooDeep:
      throw .tooDeep(limit: maxDepth)
    case .nonASCIIDelimiter:
      throw .syntax(line: 1, column: 1, reason: "set-delimiter tags must use ASCII delimiters")
    }
    do {
      self.template = try MustacheTemplate(string: text)
    } catch let error as MustacheTemplate.ParserError {
      let line = error.context.lineNumber
      let column = line == 1 ? max(1, error.context.columnNumber - Self.textMode.count) : error.context.columnNumber
      throw .syntax(line: line, column: column, reason: Self.describe(error.error))
    } catch {
      throw .syntax(line: 1, column: 1, reason: "\(error)")
    }
  }

  /// Renders the template with `variables`.
  /// - Parameter maxCharacters: the output cap, in Unicode scalars.
  /// - Throws: `Problem.tooLarge` when the output (or the work to produce it, for sections
  ///   repeated over long lists) would exceed the cap. Nothing is truncated.
  public func render(_ variables: [String: JSONValue], maxCharacters: Int) throws(Problem) -> String {
    let budget = RenderBudget(limit: 8 * max(maxCharacters, 1024) + self.source.utf8.count, costPerPass: self.source.utf8.count + 1)
    let text = self.template.render(RenderObject(members: variables, budget: budget))
    guard !budget.exhausted, text.unicodeScalars.count <= maxCharacters else {
      throw .tooLarge(limit: maxCharacters)
    }
    return text
  }

  /// What `sectionDepth` found. Package-wide so that a service's wrapper can forward the scan
  /// to its own tests.
  package enum DepthScan: Equatable, Sendable {
    case within
    case tooDeep
    case nonASCIIDelimiter
  }

  /// Whether sections in `text` nest deeper than `limit`, found the way swift-mustache's parser
  /// finds tags: character by character, a tag starts at the current start delimiter and its
  /// sigil is the character right after it; `#`, `^`, `$` and `<` open a section, `/` closes
  /// one; set-delimiter tags change the delimiters until the end of the enclosing section.
  /// Where the two could part (a malformed tag), this scan keeps counting, so it can only
  /// count more levels than the parser would reach, never fewer. Delimiters are held to ASCII
  /// so that matching them cannot depend on how characters compose.
  package static func sectionDepth(of text: String, limit: Int) -> DepthScan {
    let characters = Array(text)
    var start: [Character] = ["{", "{"]
    var end: [Character] = ["}", "}"]
    // The delimiters in force where each open section began, restored when it closes.
    var enclosing: [(start: [Character], end: [Character])] = []
    var position = 0

    func matches(_ delimiter: [Character], at index: Int) -> Bool {
      index + delimiter.count <= characters.count && characters[index..<index + delimiter.count].elementsEqual(delimiter)
    }
    /// The index after the next `end` delimiter at or after `index` (the end of the text if none).
    func afterEnd(from index: Int) -> Int {
      var index = index
      while index < characters.count {
        if matches(end, at: index) { return index + end.count }
        index += 1
      }
      return characters.count
    }

    while position < characters.count {
      guard matches(start, at: position) else {
        position += 1
        continue
      }
      let sigilIndex = position + start.count
      guard sigilIndex < characters.count else { break }
      switch characters[sigilIndex] {
      case "#", "^", "$", "<":
        enclosing.append((start, end))
        if enclosing.count > limit { return .tooDeep }
        position = afterEnd(from: sigilIndex + 1)
      case "/":
        // The closing tag ends with the section's own delimiters; the outer ones apply after it.
        position = afterEnd(from: sigilIndex + 1)
        if let outer = enclosing.popLast() { (start, end) = outer }
      case "=":
        // `{{=<% %>=}}`: as swift-mustache reads it (whitespace, the start delimiter up to
        // whitespace, whitespace, the end delimiter up to `=` or whitespace, `=`, then the old
        // end delimiter).
        var index = sigilIndex + 1
        func skipWhitespace() { while index < characters.count, characters[index].isWhitespace { index += 1 } }
        skipWhitespace()
        let newStartBegin = index
        while index < characters.count, !characters[index].isWhitespace { index += 1 }
        let newStart = Array(characters[newStartBegin..<index])
        skipWhitespace()
        let newEndBegin = index
        while index < characters.count, characters[index] != "=", !characters[index].isWhitespace { index += 1 }
        let newEnd = Array(characters[newEndBegin..<index])
        skipWhitespace()
        if index < characters.count, characters[index] == "=", matches(end, at: index + 1), !newStart.isEmpty, !newEnd.isEmpty {
          guard (newStart + newEnd).allSatisfy(\.isASCII) else { return .nonASCIIDelimiter }
          position = index + 1 + end.count
          (start, end) = (newStart, newEnd)
        } else {
          position = afterEnd(from: sigilIndex + 1)
        }
      default:
        position = afterEnd(from: sigilIndex)
      }
    }
    return .within
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

/// Work allowed for one render, so that no template and no variables can make it run away: every
/// pass through a section over a list costs what the template's own text can add in one pass,
/// and every string a tag outputs costs its length. Once spent, lists end and strings render
/// empty, and `render` refuses the result.
private final class RenderBudget {
  let limit: Int
  let costPerPass: Int
  private(set) var spent = 0
  private(set) var exhausted = false

  init(limit: Int, costPerPass: Int) {
    self.limit = limit
    self.costPerPass = costPerPass
  }

  /// Charges `cost`; false once the budget is gone.
  func charge(_ cost: Int) -> Bool {
    self.spent += cost
    if self.spent > self.limit { self.exhausted = true }
    return !self.exhausted
  }

  /// The render context's form of a JSON value: objects and lists under this budget, strings
  /// charged as they are output. Objects and lists offer no transforms (`sorted(list)` renders
  /// nothing); strings and numbers keep theirs (`uppercased(name)`).
  func value(_ value: JSONValue) -> Any? {
    switch value {
    case .null: nil
    case .bool(let bool): bool
    case .number(let number): number.rounded() == number && abs(number) < 1e15 ? Int(number) : number
    case .string(let string): RenderText(text: string, budget: self)
    case .array(let values): RenderList(values: values, budget: self)
    case .object(let members): RenderObject(members: members, budget: self)
    }
  }
}

private struct RenderObject: MustacheParent {
  let members: [String: JSONValue]
  let budget: RenderBudget

  func child(named name: String) -> Any? {
    self.members[name].flatMap(self.budget.value)
  }
}

/// A list has no named children: without this, Mustache would find its stored properties by
/// reflection and iterate the raw values outside the budget.
private struct RenderList: MustacheSequence, MustacheParent {
  let values: [JSONValue]
  let budget: RenderBudget

  func child(named name: String) -> Any? { nil }

  func makeIterator() -> Iterator {
    Iterator(values: self.values.makeIterator(), budget: self.budget)
  }

  struct Iterator: IteratorProtocol {
    var values: IndexingIterator<[JSONValue]>
    let budget: RenderBudget

    mutating func next() -> Any? {
      guard let value = self.values.next(), self.budget.charge(self.budget.costPerPass) else { return nil }
      // A null element still takes its pass through the section.
      return self.budget.value(value) ?? Optional<Any>.none as Any
    }
  }
}

/// A string has no named children either (see `RenderList`).
private struct RenderText: MustacheCustomRenderable, MustacheTransformable, MustacheParent {
  let text: String
  let budget: RenderBudget

  func child(named name: String) -> Any? { nil }

  var renderText: String {
    self.budget.charge(self.text.utf8.count) ? self.text : ""
  }

  var isNull: Bool { false }

  func transform(_ name: String) -> Any? {
    switch self.text.transform(name) {
    case let string as any StringProtocol: RenderText(text: String(string), budget: self.budget)
    case let other: other
    }
  }
}
