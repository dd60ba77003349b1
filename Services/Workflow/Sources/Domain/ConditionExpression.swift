public import PlatformCore

/// A condition of a workflow (a condition node, an edge's condition): a small typed expression,
/// parsed once when the workflow is validated and evaluated many times. It never runs code.
///
/// Workflow authors are not trusted, so every recursion of the parser has a depth limit, the
/// source has a length limit, the tree's height is capped (so evaluating, comparing and freeing
/// it recurse a bounded number of times), evaluation does work bounded by the tree's size (there
/// are no loops) and the values it builds are capped, and every error says what is wrong.
///
/// Grammar, lowest precedence first:
///
///     or          := and (("||" | "or") and)*
///     and         := not (("&&" | "and") not)*
///     not         := ("!" | "not") not | comparison
///     comparison  := additive (compare-op additive)?      -- non-associative: a < b < c is an error
///     compare-op  := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "contains" | "starts_with" | "ends_with"
///     additive    := multiplicative (("+" | "-") multiplicative)*
///     multiplicative := unary (("*" | "/" | "%") unary)*
///     unary       := "-" unary | primary
///     primary     := number | string | "true" | "false" | "null"
///                  | "[" (or ("," or)*)? "]" | "(" or ")"
///                  | function "(" or ")" | path
///     path        := identifier ("." identifier | "[" digits "]")*     -- at most 32 segments
///     identifier  := [A-Za-z_] ([A-Za-z0-9_] | "-"+ [A-Za-z0-9_])*
///
/// - `not`/`!` binds more loosely than a comparison, as in Python: `!a == b` is `!(a == b)`, and a
///   `!` cannot be an operand of a comparison without parentheses (`a == (!b)`).
/// - Identifiers may hold hyphens, since node ids do (`nodes.node-1.output`): `a-b` with no spaces
///   is ONE name. To subtract, put spaces around the minus (`a - b`); a hyphen that is not
///   followed by a letter, digit or underscore ends the name, so `a- b` and `a -b` subtract too.
/// - The keywords `and or not in contains starts_with ends_with true false null` cannot start a
///   path but may be later segments (`x.in`). The functions are `len`, `lower`, `upper`,
///   `number` and `string`, each taking one argument.
/// - Numbers are written as in JSON (`1`, `2.5`, `1e3`; no leading zeros); strings in single or
///   double quotes with the escapes `\\` `\'` `\"` `\n` `\t`.
/// - The whole source may be wrapped in `{{ … }}`; whitespace is spaces, tabs and line breaks.
///
/// Evaluation is typed and never coerces: see ``evaluate(_:)``.
public struct ConditionExpression: Sendable, Equatable {
  /// The text the expression was parsed from, as given (with any `{{ }}` wrapping).
  public let source: String

  /// Every variable path the expression reads, in order of appearance, without duplicates, e.g.
  /// `[["nodes", "a", "output", "score"], ["input", "name"]]`. An index segment (`items[2]`)
  /// appears as its decimal text (`["items", "2"]`). Paths behind a short circuit are included.
  public let references: [[String]]

  /// The parsed tree.
  let tree: Node

  /// The most levels of nesting any caller may allow: a larger `maxDepth` is lowered to this, so
  /// that no configuration can let the parser's recursion overflow a thread's stack.
  static let depthCeiling = 32
  /// The tallest tree accepted (a literal or a path is 1; each operator, list or call adds 1 to
  /// its tallest operand, so one chain `a + b + …` holds at most 128 operands). Chains are parsed
  /// by a loop, but evaluating, comparing and freeing the tree recurse once per level of it.
  static let maximumHeight = 128
  /// The most segments in one path.
  static let maximumPathSegments = 32
  /// The longest string `+` may build, in UTF-8 bytes.
  static let maximumStringBytes = 65_536
  /// The longest array `+` may build.
  static let maximumArrayCount = 10_000

  /// Parses an expression.
  /// - Parameters:
  ///   - source: the expression's text, optionally wrapped in `{{ … }}`.
  ///   - maxDepth: how many levels of nesting are allowed; each parenthesis, unary operator
  ///     (`!`, `not`, unary `-`), list literal or function call opens a level. At most
  ///     32 (a larger value is lowered to 32).
  ///   - maxLength: the longest source accepted, in UTF-8 bytes.
  /// - Throws: `ParseError` with the 0-based UTF-8 byte offset into `source` where the problem
  ///   is, and a reason.
  public init(parsing source: String, maxDepth: Int = 16, maxLength: Int = 4096) throws(ConditionExpression.ParseError) {
    let length = source.utf8.count
    guard length <= maxLength else {
      throw ParseError(
        offset: max(maxLength, 0),
        reason: "the expression is \(length) bytes long, more than the limit of \(maxLength) bytes")
    }
    let bytes = Array(source.utf8)
    let (start, end) = try Self.unwrap(bytes)
    var parser = try Parser(
      bytes: bytes, start: start, end: end, maxDepth: min(max(maxDepth, 0), Self.depthCeiling))
    self.tree = try parser.parseWhole(regionStart: start)
    self.references = parser.references
    self.source = source
  }

  /// Evaluates the expression.
  ///
  /// - `==` and `!=` compare JSON values deeply; values of different types are unequal
  ///   (`1 == '1'` is false) and numbers compare as `Double`.
  /// - `<` `<=` `>` `>=` order two numbers or two strings (strings by Unicode scalar value,
  ///   after canonical normalization, which is Swift's `String` order and agrees with `==`);
  ///   any other pair is an error.
  /// - `&&` `||` `!` need booleans and short-circuit: the right side is not evaluated when the
  ///   left one decides.
  /// - `+` adds numbers, concatenates strings (at most 65,536 UTF-8 bytes) or arrays (at most
  ///   10,000 elements); `-` `*` `/` `%` need numbers (`%` takes the sign of the dividend).
  ///   Dividing by zero and a result that is not finite are errors.
  /// - `x in y`: `x` is an element of the array `y` (deep equality), a key of the object `y`,
  ///   or a substring of the string `y` (`x` must then be a string). `y contains x` is the same.
  ///   `s starts_with t` and `s ends_with t` need two strings.
  /// - `len(x)`: a string's length in characters, an array's count, an object's key count.
  ///   `lower(s)`, `upper(s)`: strings only. `number(x)`: a string holding a JSON number
  ///   (surrounding whitespace allowed) or a number. `string(x)`: a number (a whole number
  ///   prints without ".0"), a boolean, null (`"null"`) or a string.
  ///
  /// - Parameter lookup: resolves a path, as in ``references``, to its value; nil when absent,
  ///   which reads as null.
  /// - Throws: `EvaluationError` for a type mismatch, a division by zero, a non-finite number or
  ///   a result over its cap.
  public func evaluate(_ lookup: (_ path: [String]) -> JSONValue?) throws(ConditionExpression.EvaluationError) -> JSONValue {
    try self.tree.evaluate(lookup)
  }

  /// Evaluates the expression as a condition: its value must be a boolean.
  /// - Throws: `EvaluationError` as ``evaluate(_:)`` does, or when the value is not a boolean
  ///   ("the condition is a number, not a boolean").
  public func isTrue(_ lookup: (_ path: [String]) -> JSONValue?) throws(ConditionExpression.EvaluationError) -> Bool {
    let value = try self.evaluate(lookup)
    guard case .bool(let result) = value else {
      throw EvaluationError(reason: "the condition is \(Self.describe(value)), not a boolean")
    }
    return result
  }

  /// Two expressions are equal when their sources are.
  public static func == (lhs: ConditionExpression, rhs: ConditionExpression) -> Bool {
    lhs.source == rhs.source
  }

  /// Why a source is not an expression.
  public struct ParseError: Error, Equatable, CustomStringConvertible {
    /// Where the problem is: a 0-based offset in UTF-8 bytes into the source.
    public var offset: Int
    /// What is wrong.
    public var reason: String

    public init(offset: Int, reason: String) {
      self.offset = offset
      self.reason = reason
    }

    public var description: String { "Invalid expression at byte \(self.offset): \(self.reason)" }
  }

  /// Why an expression could not be evaluated.
  public struct EvaluationError: Error, Equatable, CustomStringConvertible {
    /// What went wrong.
    public var reason: String

    public init(reason: String) {
      self.reason = reason
    }

    public var description: String { "Cannot evaluate the expression: \(self.reason)" }
  }
}

// MARK: - The tree

extension ConditionExpression {
  /// A parsed expression. Its height is at most `ConditionExpression.maximumHeight`.
  indirect enum Node: Sendable, Equatable {
    case literal(JSONValue)
    case path([String])
    case list([Node])
    case not(Node)
    case negate(Node)
    case binary(BinaryOperator, Node, Node)
    /// Every function takes exactly one argument.
    case call(Function, Node)
  }

  /// A binary operator; the raw value is how error messages spell it.
  enum BinaryOperator: String, Sendable {
    case or, and
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case `in`, contains, startsWith = "starts_with", endsWith = "ends_with"
    case add = "+", subtract = "-", multiply = "*", divide = "/", remainder = "%"
  }

  enum Function: String, Sendable {
    case len, lower, upper, number, string
  }
}

// MARK: - Evaluation

extension ConditionExpression.Node {
  /// One call per level of the tree (whose height is capped). The work of each operator is done
  /// by non-recursive helpers, which keeps this frame small: it is the one that repeats.
  func evaluate(_ lookup: (_ path: [String]) -> JSONValue?) throws(ConditionExpression.EvaluationError) -> JSONValue {
    switch self {
    case .literal(let value):
      return value
    case .path(let path):
      return lookup(path) ?? .null
    case .list(let items):
      return try ConditionExpression.list(items, lookup)
    case .not(let operand):
      return try ConditionExpression.not(operand.evaluate(lookup))
    case .negate(let operand):
      return try ConditionExpression.negate(operand.evaluate(lookup))
    case .binary(let op, let left, let right):
      let leftValue = try left.evaluate(lookup)
      if let decided = try ConditionExpression.shortCircuit(op, leftValue) { return decided }
      return try ConditionExpression.apply(op, leftValue, right.evaluate(lookup))
    case .call(let function, let argument):
      return try ConditionExpression.call(function, argument.evaluate(lookup))
    }
  }
}

extension ConditionExpression {
  /// A value's type with its article, for messages: "null", "a boolean", "a number", "a string",
  /// "an array", "an object".
  static func describe(_ value: JSONValue) -> String {
    switch value {
    case .null: "null"
    case .bool: "a boolean"
    case .number: "a number"
    case .string: "a string"
    case .array: "an array"
    case .object: "an object"
    }
  }

  private static func boolean(_ value: JSONValue, operandOf spelling: String) throws(EvaluationError) -> Bool {
    guard case .bool(let flag) = value else {
      throw EvaluationError(
        reason: "'\(spelling)' needs \(spelling == "not" ? "a boolean" : "booleans"), not \(describe(value))")
    }
    return flag
  }

  private static func list(
    _ items: [Node], _ lookup: (_ path: [String]) -> JSONValue?
  ) throws(EvaluationError) -> JSONValue {
    var values: [JSONValue] = []
    values.reserveCapacity(items.count)
    for item in items {
      values.append(try item.evaluate(lookup))
    }
    return .array(values)
  }

  private static func not(_ operand: JSONValue) throws(EvaluationError) -> JSONValue {
    .bool(!(try boolean(operand, operandOf: "not")))
  }

  private static func negate(_ operand: JSONValue) throws(EvaluationError) -> JSONValue {
    guard case .number(let number) = operand else {
      throw EvaluationError(reason: "unary '-' needs a number, not \(describe(operand))")
    }
    return .number(-number)
  }

  /// The value of `and`/`or` when its left operand decides it, nil when the right one must be
  /// evaluated (and for every other operator).
  private static func shortCircuit(_ op: BinaryOperator, _ left: JSONValue) throws(EvaluationError) -> JSONValue? {
    switch op {
    case .and: try boolean(left, operandOf: "and") ? nil : .bool(false)
    case .or: try boolean(left, operandOf: "or") ? .bool(true) : nil
    default: nil
    }
  }

  /// Applies an operator to its evaluated operands. For `and`/`or` the left operand did not
  /// decide (see `shortCircuit`), so the right one is the value.
  private static func apply(
    _ op: BinaryOperator, _ left: JSONValue, _ right: JSONValue
  ) throws(EvaluationError) -> JSONValue {
    switch op {
    case .and, .or:
      return .bool(try boolean(right, operandOf: op.rawValue))
    case .equal:
      return .bool(left == right)
    case .notEqual:
      return .bool(left != right)
    case .less, .lessOrEqual, .greater, .greaterOrEqual:
      switch (left, right) {
      case (.number(let a), .number(let b)): return .bool(order(a, b, op))
      case (.string(let a), .string(let b)): return .bool(order(a, b, op))
      default: throw EvaluationError(reason: "cannot compare \(describe(left)) with \(describe(right))")
      }
    case .in:
      return .bool(try isMember(left, of: right, spelling: "in", containerSide: "right"))
    case .contains:
      return .bool(try isMember(right, of: left, spelling: "contains", containerSide: "left"))
    case .startsWith, .endsWith:
      guard case .string(let text) = left, case .string(let affix) = right else {
        throw EvaluationError(
          reason: "'\(op.rawValue)' needs two strings, not \(describe(left)) and \(describe(right))")
      }
      return .bool(op == .startsWith ? text.hasPrefix(affix) : text.hasSuffix(affix))
    case .add:
      switch (left, right) {
      case (.number(let a), .number(let b)):
        return try finite(a + b, op)
      case (.string(let a), .string(let b)):
        guard a.utf8.count + b.utf8.count <= maximumStringBytes else {
          throw EvaluationError(reason: "'+' would make a string longer than \(maximumStringBytes) bytes")
        }
        return .string(a + b)
      case (.array(let a), .array(let b)):
        guard a.count + b.count <= maximumArrayCount else {
          throw EvaluationError(reason: "'+' would make an array of more than \(maximumArrayCount) elements")
        }
        return .array(a + b)
      default:
        throw EvaluationError(
          reason: "'+' needs two numbers, two strings or two arrays, not \(describe(left)) and \(describe(right))")
      }
    case .subtract, .multiply, .divide, .remainder:
      guard case .number(let a) = left, case .number(let b) = right else {
        throw EvaluationError(
          reason: "'\(op.rawValue)' needs two numbers, not \(describe(left)) and \(describe(right))")
      }
      switch op {
      case .subtract:
        return try finite(a - b, op)
      case .multiply:
        return try finite(a * b, op)
      case .divide:
        guard b != 0 else { throw EvaluationError(reason: "division by zero") }
        return try finite(a / b, op)
      default:
        guard b != 0 else { throw EvaluationError(reason: "modulo by zero") }
        return try finite(a.truncatingRemainder(dividingBy: b), op)
      }
    }
  }

  private static func order<Value: Comparable>(_ a: Value, _ b: Value, _ op: BinaryOperator) -> Bool {
    switch op {
    case .less: a < b
    case .lessOrEqual: a <= b
    case .greater: a > b
    default: a >= b
    }
  }

  private static func finite(_ number: Double, _ op: BinaryOperator) throws(EvaluationError) -> JSONValue {
    guard number.isFinite else {
      throw EvaluationError(reason: "the result of '\(op.rawValue)' is not a finite number")
    }
    return .number(number)
  }

  /// `element in container`: an array's element, an object's key or a string's substring.
  private static func isMember(
    _ element: JSONValue, of container: JSONValue, spelling: String, containerSide: String
  ) throws(EvaluationError) -> Bool {
    switch container {
    case .array(let values):
      return values.contains(element)
    case .object(let members):
      guard case .string(let key) = element else {
        throw EvaluationError(
          reason: "'\(spelling)' looks for a key of an object, which must be a string, not \(describe(element))")
      }
      return members[key] != nil
    case .string(let text):
      guard case .string(let part) = element else {
        throw EvaluationError(
          reason: "'\(spelling)' looks for a substring of a string, which must be a string, not \(describe(element))")
      }
      return part.isEmpty || text.contains(part)
    default:
      throw EvaluationError(
        reason:
          "'\(spelling)' needs an array, an object or a string on its \(containerSide), not \(describe(container))")
    }
  }

  private static func call(_ function: Function, _ argument: JSONValue) throws(EvaluationError) -> JSONValue {
    switch function {
    case .len:
      switch argument {
      case .string(let text): return .number(Double(text.count))
      case .array(let values): return .number(Double(values.count))
      case .object(let members): return .number(Double(members.count))
      default: throw EvaluationError(reason: "len() needs a string, an array or an object, not \(describe(argument))")
      }
    case .lower, .upper:
      guard case .string(let text) = argument else {
        throw EvaluationError(reason: "\(function.rawValue)() needs a string, not \(describe(argument))")
      }
      return .string(function == .lower ? text.lowercased() : text.uppercased())
    case .number:
      switch argument {
      case .number: return argument
      case .string(let text): return .number(try number(from: text))
      default: throw EvaluationError(reason: "number() needs a string or a number, not \(describe(argument))")
      }
    case .string:
      switch argument {
      case .string: return argument
      case .number(let number): return .string(text(of: number))
      case .bool(let flag): return .string(flag ? "true" : "false")
      case .null: return .string("null")
      default:
        throw EvaluationError(reason: "string() needs a number, a boolean, null or a string, not \(describe(argument))")
      }
    }
  }

  /// A JSON number (with an optional '-') read from text; whitespace around it is ignored.
  private static func number(from text: String) throws(EvaluationError) -> Double {
    let bytes = Array(text.utf8)
    var start = 0
    var end = bytes.count
    while start < end, Lexer.isWhitespace(bytes[start]) { start += 1 }
    while end > start, Lexer.isWhitespace(bytes[end - 1]) { end -= 1 }
    var digits = start
    if digits < end, bytes[digits] == UInt8(ascii: "-") { digits += 1 }
    guard digits < end, Lexer.isDigit(bytes[digits]),
      case .number(let stop) = Lexer.scanNumber(bytes, from: digits, to: end), stop == end,
      let value = Double(String(decoding: bytes[start..<end], as: UTF8.self)), value.isFinite
    else {
      throw EvaluationError(reason: "number() cannot read \(quoted(text)) as a number")
    }
    return value
  }

  /// A number as text: a whole number within ±2^53 without a fraction ("3", not "3.0").
  private static func text(of number: Double) -> String {
    if number.rounded() == number, abs(number) < 9_007_199_254_740_992 {
      return String(Int(number))
    }
    return "\(number)"
  }

  /// A string in single quotes for a message, cut at 32 characters.
  static func quoted(_ text: String) -> String {
    text.count > 32 ? "'\(text.prefix(32))…'" : "'\(text)'"
  }
}

// MARK: - Lexing

/// A token of the source, with the byte offset where it starts.
private struct Token {
  enum Symbol: String {
    case leftParen = "(", rightParen = ")", leftBracket = "[", rightBracket = "]", comma = ",", dot = "."
    case plus = "+", minus = "-", star = "*", slash = "/", percent = "%", bang = "!"
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case and = "&&", or = "||"
  }

  enum Kind {
    /// A number literal's value and its text (an index segment is passed on as its text).
    case number(Double, text: String)
    case string(String)
    /// An identifier or keyword.
    case word(String)
    case symbol(Symbol)
    case end
  }

  var kind: Kind
  var offset: Int

  func isSymbol(_ symbol: Symbol) -> Bool {
    if case .symbol(let found) = self.kind { return found == symbol }
    return false
  }

  func isWord(_ word: String) -> Bool {
    if case .word(let found) = self.kind { return found == word }
    return false
  }

  /// What the token is, for messages: "number 2", "string 'a'", "name 'x'", "keyword 'and'",
  /// "')'", "end of the expression".
  var description: String {
    switch self.kind {
    case .number(_, let text): "number \(text.count > 32 ? String(text.prefix(32)) + "…" : text)"
    case .string(let text): "string \(ConditionExpression.quoted(text))"
    case .word(let word): Lexer.keywords.contains(word) ? "keyword '\(word)'" : "name \(ConditionExpression.quoted(word))"
    case .symbol(let symbol): "'\(symbol.rawValue)'"
    case .end: "end of the expression"
    }
  }
}

/// The byte-level rules shared by the parser and `number()`.
private enum Lexer {
  static let keywords: Set<String> = [
    "and", "or", "not", "in", "contains", "starts_with", "ends_with", "true", "false", "null",
  ]

  static func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
  }

  static func isDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
  }

  static func isIdentifierStart(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
      || byte == UInt8(ascii: "_")
  }

  static func isIdentifierPart(_ byte: UInt8) -> Bool {
    isIdentifierStart(byte) || isDigit(byte)
  }

  enum NumberScan {
    case number(end: Int)
    case invalid(offset: Int, reason: String)
  }

  /// Scans an unsigned JSON number starting at `start` (which holds a digit).
  static func scanNumber(_ bytes: [UInt8], from start: Int, to end: Int) -> NumberScan {
    var index = start
    if bytes[index] == UInt8(ascii: "0") {
      index += 1
      if index < end, isDigit(bytes[index]) {
        return .invalid(offset: start, reason: "a number cannot have a leading zero")
      }
    } else {
      while index < end, isDigit(bytes[index]) { index += 1 }
    }
    if index < end, bytes[index] == UInt8(ascii: ".") {
      index += 1
      guard index < end, isDigit(bytes[index]) else {
        return .invalid(offset: index, reason: "a number needs a digit after its decimal point")
      }
      while index < end, isDigit(bytes[index]) { index += 1 }
    }
    if index < end, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
      index += 1
      if index < end, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
      guard index < end, isDigit(bytes[index]) else {
        return .invalid(offset: index, reason: "a number needs digits in its exponent")
      }
      while index < end, isDigit(bytes[index]) { index += 1 }
    }
    return .number(end: index)
  }
}

extension ConditionExpression {
  /// The region to parse: the whole source, or what is inside `{{ … }}` when the source (less
  /// surrounding whitespace) is wrapped in it.
  fileprivate static func unwrap(_ bytes: [UInt8]) throws(ParseError) -> (start: Int, end: Int) {
    var lower = 0
    var upper = bytes.count
    while lower < upper, Lexer.isWhitespace(bytes[lower]) { lower += 1 }
    while upper > lower, Lexer.isWhitespace(bytes[upper - 1]) { upper -= 1 }
    let brace = UInt8(ascii: "{")
    let closingBrace = UInt8(ascii: "}")
    guard upper - lower >= 2, bytes[lower] == brace, bytes[lower + 1] == brace else {
      return (0, bytes.count)
    }
    guard upper - lower >= 4, bytes[upper - 1] == closingBrace, bytes[upper - 2] == closingBrace else {
      throw ParseError(offset: lower, reason: "'{{' is not closed by '}}' at the end of the expression")
    }
    return (lower + 2, upper - 2)
  }
}

// MARK: - Parsing

/// The parser: recursive descent over the nesting constructs (parentheses, lists, calls) and
/// operator precedence over the operators, on the source's UTF-8 bytes, lexing one token ahead.
///
/// Recursion happens only where a parenthesis, list or call opens, and `enter(at:)` counts the
/// level before recursing; prefix operators are counted when pushed. So a source of 100,000 `(`
/// or 100,000 `!` fails at the first level too many, and the stack holds at most four frames
/// per allowed level. Operators are kept on an explicit stack (see `parseExpression`), so a
/// long chain `a + b + c + …` does not recurse at all; the height of the tree it builds is
/// checked by `make(_:height:at:)`.
private struct Parser {
  typealias Node = ConditionExpression.Node
  typealias ParseError = ConditionExpression.ParseError
  typealias BinaryOperator = ConditionExpression.BinaryOperator

  /// A subtree with its height.
  struct Parsed {
    var node: Node
    var height: Int
  }

  /// How tightly each operator binds; higher binds tighter. All binary operators associate to
  /// the left, except comparisons, which do not chain.
  enum Precedence {
    static let or = 1
    static let and = 2
    static let not = 3
    static let comparison = 4
    static let additive = 5
    static let multiplicative = 6
    static let negate = 7
  }

  /// An operator on the stack, waiting for its operands.
  struct PendingOperator {
    enum Kind {
      case binary(BinaryOperator)
      case not
      case negate
    }

    var kind: Kind
    var precedence: Int
    var offset: Int
  }

  private let bytes: [UInt8]
  private let end: Int
  private let maxDepth: Int
  private var position: Int
  private var token: Token
  private var depth = 0
  private(set) var references: [[String]] = []
  private var seenReferences: Set<[String]> = []

  init(bytes: [UInt8], start: Int, end: Int, maxDepth: Int) throws(ParseError) {
    self.bytes = bytes
    self.end = end
    self.maxDepth = maxDepth
    self.position = start
    self.token = Token(kind: .end, offset: start)
    try self.advance()
  }

  /// Parses the region as one expression, with nothing after it.
  mutating func parseWhole(regionStart: Int) throws(ParseError) -> Node {
    if case .end = self.token.kind {
      throw ParseError(offset: regionStart, reason: "empty expression")
    }
    let parsed = try self.parseExpression()
    guard case .end = self.token.kind else {
      throw self.unexpected("after a complete expression")
    }
    return parsed.node
  }

  // MARK: Operators

  /// An expression: operands and operators, arranged by precedence with an operator stack (the
  /// shunting-yard algorithm). Prefix operators open a level of nesting until they are applied.
  ///
  /// `not`/`!` binds more loosely than comparisons and arithmetic, so it may start an operand of
  /// `and`/`or`/`not` only: `1 == !x` is an error (write `1 == (!x)`), `!a == b` is `!(a == b)`.
  private mutating func parseExpression() throws(ParseError) -> Parsed {
    var operands: [Parsed] = []
    var operators: [PendingOperator] = []
    while true {
      // An operand: any prefix operators, then a primary.
      while true {
        let offset = self.token.offset
        if self.token.isSymbol(.bang) || self.token.isWord("not") {
          if let pending = operators.last, pending.precedence > Precedence.not {
            throw self.unexpected("where a value was expected (put a 'not' that follows an operator in parentheses)")
          }
          try self.enter(at: offset)
          operators.append(PendingOperator(kind: .not, precedence: Precedence.not, offset: offset))
        } else if self.token.isSymbol(.minus) {
          try self.enter(at: offset)
          operators.append(PendingOperator(kind: .negate, precedence: Precedence.negate, offset: offset))
        } else {
          break
        }
        try self.advance()
      }
      operands.append(try self.parsePrimary())

      // A binary operator, or the end of this expression.
      guard let (op, precedence) = self.binaryOperator() else { break }
      try self.reduce(&operands, &operators, downTo: precedence, before: op)
      operators.append(PendingOperator(kind: .binary(op), precedence: precedence, offset: self.token.offset))
      try self.advance()
    }
    try self.reduce(&operands, &operators, downTo: 0, before: nil)
    guard operands.count == 1, let result = operands.first else {
      throw ParseError(offset: self.token.offset, reason: "internal error: unbalanced operands")
    }
    return result
  }

  /// Applies the pending operators that bind at least as tightly as `precedence` (all of them
  /// for 0), innermost first.
  private mutating func reduce(
    _ operands: inout [Parsed], _ operators: inout [PendingOperator], downTo precedence: Int,
    before incoming: BinaryOperator?
  ) throws(ParseError) {
    while let pending = operators.last, pending.precedence >= precedence {
      if let incoming, precedence == Precedence.comparison, pending.precedence == Precedence.comparison,
        case .binary(let previous) = pending.kind
      {
        throw ParseError(
          offset: self.token.offset,
          reason:
            "comparisons do not chain: '\(incoming.rawValue)' after '\(previous.rawValue)' (use 'and' or parentheses)")
      }
      operators.removeLast()
      guard let right = operands.popLast() else {
        throw ParseError(offset: pending.offset, reason: "internal error: missing operand")
      }
      switch pending.kind {
      case .binary(let op):
        guard let left = operands.popLast() else {
          throw ParseError(offset: pending.offset, reason: "internal error: missing operand")
        }
        operands.append(
          try self.make(
            .binary(op, left.node, right.node), height: max(left.height, right.height) + 1, at: pending.offset))
      case .not:
        operands.append(try self.make(.not(right.node), height: right.height + 1, at: pending.offset))
        self.depth -= 1
      case .negate:
        operands.append(try self.make(.negate(right.node), height: right.height + 1, at: pending.offset))
        self.depth -= 1
      }
    }
  }

  /// The binary operator at the current token, with its precedence.
  private func binaryOperator() -> (BinaryOperator, Int)? {
    switch self.token.kind {
    case .symbol(.or), .word("or"): (.or, Precedence.or)
    case .symbol(.and), .word("and"): (.and, Precedence.and)
    case .symbol(.equal): (.equal, Precedence.comparison)
    case .symbol(.notEqual): (.notEqual, Precedence.comparison)
    case .symbol(.less): (.less, Precedence.comparison)
    case .symbol(.lessOrEqual): (.lessOrEqual, Precedence.comparison)
    case .symbol(.greater): (.greater, Precedence.comparison)
    case .symbol(.greaterOrEqual): (.greaterOrEqual, Precedence.comparison)
    case .word("in"): (.in, Precedence.comparison)
    case .word("contains"): (.contains, Precedence.comparison)
    case .word("starts_with"): (.startsWith, Precedence.comparison)
    case .word("ends_with"): (.endsWith, Precedence.comparison)
    case .symbol(.plus): (.add, Precedence.additive)
    case .symbol(.minus): (.subtract, Precedence.additive)
    case .symbol(.star): (.multiply, Precedence.multiplicative)
    case .symbol(.slash): (.divide, Precedence.multiplicative)
    case .symbol(.percent): (.remainder, Precedence.multiplicative)
    default: nil
    }
  }

  // MARK: Primaries

  /// A literal, a path, a call, a list or a parenthesised expression.
  private mutating func parsePrimary() throws(ParseError) -> Parsed {
    let literal: JSONValue
    switch self.token.kind {
    case .number(let value, _): literal = .number(value)
    case .string(let text): literal = .string(text)
    case .word("true"): literal = .bool(true)
    case .word("false"): literal = .bool(false)
    case .word("null"): literal = .null
    case .word(let word): return try self.parseName(word)
    case .symbol(.leftParen): return try self.parseParenthesized()
    case .symbol(.leftBracket): return try self.parseList()
    default: throw self.unexpected("where a value was expected")
    }
    try self.advance()
    return Parsed(node: .literal(literal), height: 1)
  }

  /// A parenthesised expression; the current token is its `(`.
  private mutating func parseParenthesized() throws(ParseError) -> Parsed {
    let open = self.token.offset
    try self.enter(at: open)
    try self.advance()
    let inner = try self.parseExpression()
    guard self.token.isSymbol(.rightParen) else {
      throw self.unexpected("where ')' was expected to close the '(' at byte \(open)")
    }
    try self.advance()
    self.depth -= 1
    return inner
  }

  /// A list literal; the current token is its `[`.
  private mutating func parseList() throws(ParseError) -> Parsed {
    let open = self.token.offset
    try self.enter(at: open)
    try self.advance()
    var items: [Node] = []
    var height = 0
    if !self.token.isSymbol(.rightBracket) {
      while true {
        let item = try self.parseExpression()
        items.append(item.node)
        height = max(height, item.height)
        if self.token.isSymbol(.comma) {
          try self.advance()
        } else if self.token.isSymbol(.rightBracket) {
          break
        } else {
          throw self.unexpected("where ',' or ']' was expected in the list opened at byte \(open)")
        }
      }
    }
    try self.advance()
    self.depth -= 1
    return try self.make(.list(items), height: height + 1, at: open)
  }

  /// A path or a call; the current token is the name that starts it.
  private mutating func parseName(_ name: String) throws(ParseError) -> Parsed {
    let offset = self.token.offset
    guard !Lexer.keywords.contains(name) else {
      throw self.unexpected("where a value was expected")
    }
    try self.advance()
    if self.token.isSymbol(.leftParen) {
      return try self.parseCall(named: name, at: offset)
    }
    return try self.parsePath(first: name)
  }

  /// A function call; the current token is the `(` after its name.
  private mutating func parseCall(named name: String, at offset: Int) throws(ParseError) -> Parsed {
    guard let function = ConditionExpression.Function(rawValue: name) else {
      throw ParseError(
        offset: offset, reason: "unknown function '\(name)' (the functions are len, lower, upper, number and string)")
    }
    try self.enter(at: offset)
    try self.advance()
    var arguments: [Parsed] = []
    if !self.token.isSymbol(.rightParen) {
      while true {
        arguments.append(try self.parseExpression())
        if self.token.isSymbol(.comma) {
          try self.advance()
        } else if self.token.isSymbol(.rightParen) {
          break
        } else {
          throw self.unexpected("where ',' or ')' was expected in the call to \(name)()")
        }
      }
    }
    guard arguments.count == 1, let argument = arguments.first else {
      throw ParseError(offset: offset, reason: "\(name)() takes one argument, not \(arguments.count)")
    }
    try self.advance()
    self.depth -= 1
    return try self.make(.call(function, argument.node), height: argument.height + 1, at: offset)
  }

  /// A path; its first segment has been read and the current token is what follows it.
  private mutating func parsePath(first: String) throws(ParseError) -> Parsed {
    var segments = [first]
    while self.token.isSymbol(.dot) || self.token.isSymbol(.leftBracket) {
      guard segments.count < ConditionExpression.maximumPathSegments else {
        throw ParseError(
          offset: self.token.offset, reason: "a path has more than \(ConditionExpression.maximumPathSegments) segments")
      }
      if self.token.isSymbol(.dot) {
        try self.advance()
        guard case .word(let name) = self.token.kind else {
          throw self.unexpected("where a name was expected after '.'")
        }
        segments.append(name)
        try self.advance()
      } else {
        try self.advance()
        guard case .number(_, let text) = self.token.kind, text.utf8.allSatisfy(Lexer.isDigit) else {
          throw self.unexpected("where an index was expected (a whole number, as in items[2])")
        }
        try self.advance()
        guard self.token.isSymbol(.rightBracket) else {
          throw self.unexpected("where ']' was expected after the index")
        }
        segments.append(text)
        try self.advance()
      }
    }
    if self.seenReferences.insert(segments).inserted {
      self.references.append(segments)
    }
    return Parsed(node: .path(segments), height: 1)
  }

  /// An error at the current token: "unexpected ')' where a value was expected".
  private func unexpected(_ context: String) -> ParseError {
    ParseError(offset: self.token.offset, reason: "unexpected \(self.token.description) \(context)")
  }

  // MARK: Limits

  /// Opens a level of nesting, or fails when that would pass `maxDepth`.
  private mutating func enter(at offset: Int) throws(ParseError) {
    guard self.depth < self.maxDepth else {
      throw ParseError(offset: offset, reason: "nests deeper than \(self.maxDepth) levels")
    }
    self.depth += 1
  }

  private func make(_ node: Node, height: Int, at offset: Int) throws(ParseError) -> Parsed {
    guard height <= ConditionExpression.maximumHeight else {
      throw ParseError(offset: offset, reason: "is more than \(ConditionExpression.maximumHeight) operations deep")
    }
    return Parsed(node: node, height: height)
  }

  // MARK: Lexing

  /// Reads the next token into `token`.
  private mutating func advance() throws(ParseError) {
    while self.position < self.end, Lexer.isWhitespace(self.bytes[self.position]) {
      self.position += 1
    }
    let start = self.position
    guard start < self.end else {
      self.token = Token(kind: .end, offset: self.end)
      return
    }
    let byte = self.bytes[start]
    if Lexer.isDigit(byte) {
      self.token = try self.lexNumber(at: start)
    } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
      self.token = try self.lexString(at: start, quote: byte)
    } else if Lexer.isIdentifierStart(byte) {
      self.token = self.lexWord(at: start)
    } else {
      self.token = try self.lexSymbol(at: start)
    }
  }

  private mutating func lexNumber(at start: Int) throws(ParseError) -> Token {
    switch Lexer.scanNumber(self.bytes, from: start, to: self.end) {
    case .invalid(let offset, let reason):
      throw ParseError(offset: offset, reason: reason)
    case .number(let stop):
      let text = String(decoding: self.bytes[start..<stop], as: UTF8.self)
      guard let value = Double(text), value.isFinite else {
        throw ParseError(offset: start, reason: "the number is too large")
      }
      self.position = stop
      return Token(kind: .number(value, text: text), offset: start)
    }
  }

  private mutating func lexString(at start: Int, quote: UInt8) throws(ParseError) -> Token {
    let backslash = UInt8(ascii: "\\")
    var content: [UInt8] = []
    var index = start + 1
    while true {
      guard index < self.end else {
        throw ParseError(offset: start, reason: "unterminated string: no closing \(Character(UnicodeScalar(quote)))")
      }
      let byte = self.bytes[index]
      if byte == quote {
        index += 1
        break
      }
      guard byte == backslash else {
        content.append(byte)
        index += 1
        continue
      }
      guard index + 1 < self.end else {
        throw ParseError(offset: start, reason: "unterminated string: no closing \(Character(UnicodeScalar(quote)))")
      }
      switch self.bytes[index + 1] {
      case backslash, UInt8(ascii: "'"), UInt8(ascii: "\""): content.append(self.bytes[index + 1])
      case UInt8(ascii: "n"): content.append(0x0A)
      case UInt8(ascii: "t"): content.append(0x09)
      default:
        throw ParseError(
          offset: index,
          reason:
            "unknown escape: \(self.character(at: index + 1)) after a backslash (the escapes are \\\\ \\' \\\" \\n and \\t)"
        )
      }
      index += 2
    }
    self.position = index
    return Token(kind: .string(String(decoding: content, as: UTF8.self)), offset: start)
  }

  private mutating func lexWord(at start: Int) -> Token {
    var index = start + 1
    while index < self.end {
      if Lexer.isIdentifierPart(self.bytes[index]) {
        index += 1
        continue
      }
      // A run of hyphens belongs to the name only when a letter, digit or underscore follows it.
      var hyphens = index
      while hyphens < self.end, self.bytes[hyphens] == UInt8(ascii: "-") { hyphens += 1 }
      guard hyphens > index, hyphens < self.end, Lexer.isIdentifierPart(self.bytes[hyphens]) else { break }
      index = hyphens + 1
    }
    self.position = index
    return Token(kind: .word(String(decoding: self.bytes[start..<index], as: UTF8.self)), offset: start)
  }

  private mutating func lexSymbol(at start: Int) throws(ParseError) -> Token {
    let byte = self.bytes[start]
    let next: UInt8? = start + 1 < self.end ? self.bytes[start + 1] : nil
    let equals = UInt8(ascii: "=")
    let symbol: Token.Symbol
    var length = 1
    switch byte {
    case UInt8(ascii: "("): symbol = .leftParen
    case UInt8(ascii: ")"): symbol = .rightParen
    case UInt8(ascii: "["): symbol = .leftBracket
    case UInt8(ascii: "]"): symbol = .rightBracket
    case UInt8(ascii: ","): symbol = .comma
    case UInt8(ascii: "."): symbol = .dot
    case UInt8(ascii: "+"): symbol = .plus
    case UInt8(ascii: "-"): symbol = .minus
    case UInt8(ascii: "*"): symbol = .star
    case UInt8(ascii: "/"): symbol = .slash
    case UInt8(ascii: "%"): symbol = .percent
    case UInt8(ascii: "!"):
      if next == equals {
        symbol = .notEqual
        length = 2
      } else {
        symbol = .bang
      }
    case UInt8(ascii: "<"):
      if next == equals {
        symbol = .lessOrEqual
        length = 2
      } else {
        symbol = .less
      }
    case UInt8(ascii: ">"):
      if next == equals {
        symbol = .greaterOrEqual
        length = 2
      } else {
        symbol = .greater
      }
    case equals:
      guard next == equals else {
        throw ParseError(offset: start, reason: "unexpected '=' (write '==' to compare)")
      }
      symbol = .equal
      length = 2
    case UInt8(ascii: "&"):
      guard next == UInt8(ascii: "&") else {
        throw ParseError(offset: start, reason: "unexpected '&' (write '&&' or 'and')")
      }
      symbol = .and
      length = 2
    case UInt8(ascii: "|"):
      guard next == UInt8(ascii: "|") else {
        throw ParseError(offset: start, reason: "unexpected '|' (write '||' or 'or')")
      }
      symbol = .or
      length = 2
    default:
      throw ParseError(offset: start, reason: "unexpected character \(self.character(at: start))")
    }
    self.position = start + length
    return Token(kind: .symbol(symbol), offset: start)
  }

  /// The character starting at a byte offset, for messages: `'@'`, or `U+0007` for a control
  /// character.
  private func character(at offset: Int) -> String {
    var iterator = self.bytes[offset..<self.end].makeIterator()
    var decoder = UTF8()
    guard case .scalarValue(let scalar) = decoder.decode(&iterator) else { return "(invalid UTF-8)" }
    if scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value < 0xA0) {
      let hex = String(scalar.value, radix: 16, uppercase: true)
      return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
    return "'\(Character(scalar))'"
  }
}
