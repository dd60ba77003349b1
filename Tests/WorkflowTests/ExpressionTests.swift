import PlatformCore
import Testing

@testable import Workflow

struct ExpressionTests {
  // MARK: Helpers

  /// Parses and evaluates `source` against `variables` (keyed by path).
  private func evaluate(_ source: String, _ variables: [[String]: JSONValue] = [:]) throws -> JSONValue {
    try ConditionExpression(parsing: source).evaluate { variables[$0] }
  }

  /// Parses and evaluates `source` as a condition.
  private func isTrue(_ source: String, _ variables: [[String]: JSONValue] = [:]) throws -> Bool {
    try ConditionExpression(parsing: source).isTrue { variables[$0] }
  }

  /// The parse error of `source`, nil when it parses.
  private func parseError(_ source: String, maxDepth: Int = 16, maxLength: Int = 4096) -> ConditionExpression.ParseError? {
    do {
      _ = try ConditionExpression(parsing: source, maxDepth: maxDepth, maxLength: maxLength)
      return nil
    } catch {
      return error
    }
  }

  /// The evaluation error of `source` (which must parse), nil when it evaluates.
  private func evaluationError(
    _ source: String, _ variables: [[String]: JSONValue] = [:]
  ) throws -> ConditionExpression.EvaluationError? {
    let expression = try ConditionExpression(parsing: source)
    do {
      _ = try expression.evaluate { variables[$0] }
      return nil
    } catch {
      return error
    }
  }

  // MARK: Operators

  @Test func precedence() throws {
    #expect(try isTrue("1 + 2 * 3 == 7"))
    #expect(try evaluate("(1 + 2) * 3") == .number(9))
    #expect(try evaluate("10 - 4 - 3") == .number(3))
    #expect(try evaluate("2 * 3 % 4") == .number(2))
    #expect(try evaluate("-2 * 3") == .number(-6))
    #expect(try evaluate("- -2") == .number(2))
    #expect(try evaluate("7 % -3") == .number(1))
    // `and` binds tighter than `or`; `not` is looser than a comparison.
    #expect(try isTrue("true || false && false"))
    #expect(try !isTrue("(true || false) && false"))
    #expect(try isTrue("!1 == 2"))
    #expect(try isTrue("not 1 > 2 and 2 > 1"))
    #expect(try isTrue("-2 * -3 == 6 and - 1 - 1 == -2"))
    // A `not` cannot be an operand of a comparison or of arithmetic without parentheses.
    #expect(parseError("true == !false")?.offset == 8)
    #expect(parseError("- !x")?.offset == 2)
    #expect(try isTrue("true == (!false)"))
  }

  @Test func logicalWordsAndSymbols() throws {
    #expect(try isTrue("true and true"))
    #expect(try isTrue("true && true"))
    #expect(try !isTrue("true and false"))
    #expect(try isTrue("false or true"))
    #expect(try isTrue("false || true"))
    #expect(try !isTrue("false or false"))
    #expect(try isTrue("not false"))
    #expect(try isTrue("!false"))
    #expect(try isTrue("!!true"))
    #expect(try isTrue("not not true"))
    #expect(try evaluationError("1 and true")?.reason == "'and' needs booleans, not a number")
    #expect(try evaluationError("false || 'x'")?.reason == "'or' needs booleans, not a string")
    #expect(try evaluationError("!null")?.reason == "'not' needs a boolean, not null")
  }

  @Test func shortCircuit() throws {
    #expect(try !isTrue("false && (1 / 0 == 1)"))
    #expect(try isTrue("true || (1 / 0 == 1)"))
    #expect(try !isTrue("false and missing.value > 3"))
    #expect(try evaluationError("true && (1 / 0 == 1)")?.reason == "division by zero")
    // The right side is never looked up.
    var looked: [[String]] = []
    let expression = try ConditionExpression(parsing: "a == 1 || b == 2")
    let result = try expression.isTrue { path in
      looked.append(path)
      return .number(1)
    }
    #expect(result)
    #expect(looked == [["a"]])
  }

  @Test func equality() throws {
    #expect(try isTrue("1 == 1.0"))
    #expect(try isTrue("1e3 == 1000"))
    #expect(try !isTrue("1 == '1'"))
    #expect(try isTrue("1 != '1'"))
    #expect(try isTrue("'a' == \"a\""))
    #expect(try isTrue("null == null"))
    #expect(try !isTrue("null == false"))
    #expect(try isTrue("[1, 'a', [true]] == [1, 'a', [true]]"))
    #expect(try !isTrue("[1, 2] == [2, 1]"))
    let object: JSONValue = .object(["k": .array([.number(1), .null])])
    #expect(try isTrue("x == y", [["x"]: object, ["y"]: object]))
    #expect(try !isTrue("x != y", [["x"]: object, ["y"]: object]))
  }

  @Test func ordering() throws {
    #expect(try isTrue("1 < 2"))
    #expect(try !isTrue("2 < 2"))
    #expect(try isTrue("2 <= 2"))
    #expect(try !isTrue("3 <= 2"))
    #expect(try isTrue("3 > 2"))
    #expect(try !isTrue("2 > 2"))
    #expect(try isTrue("2 >= 2"))
    #expect(try !isTrue("1 >= 2"))
    #expect(try isTrue("'apple' < 'banana'"))
    #expect(try isTrue("'B' < 'a'"))
    #expect(try isTrue("'ab' >= 'a'"))
    #expect(try isTrue("'' < 'a'"))
  }

  @Test func mixedTypeComparisonsFail() throws {
    #expect(try evaluationError("'a' < 1")?.reason == "cannot compare a string with a number")
    #expect(try evaluationError("1 <= 'a'")?.reason == "cannot compare a number with a string")
    #expect(try evaluationError("true > false")?.reason == "cannot compare a boolean with a boolean")
    #expect(try evaluationError("missing >= 1")?.reason == "cannot compare null with a number")
    #expect(try evaluationError("[1] < [2]")?.reason == "cannot compare an array with an array")
    #expect(try evaluationError("x < 1", [["x"]: .object([:])])?.reason == "cannot compare an object with a number")
  }

  @Test func arithmetic() throws {
    #expect(try evaluate("7 / 2") == .number(3.5))
    #expect(try evaluate("7 % 2") == .number(1))
    #expect(try evaluate("'ab' + 'cd'") == .string("abcd"))
    #expect(try evaluate("[1] + [2, 3]") == .array([.number(1), .number(2), .number(3)]))
    #expect(try evaluationError("1 / 0")?.reason == "division by zero")
    #expect(try evaluationError("1 % 0")?.reason == "modulo by zero")
    #expect(try evaluationError("1e308 * 10")?.reason == "the result of '*' is not a finite number")
    #expect(
      try evaluationError("1 + '1'")?.reason
        == "'+' needs two numbers, two strings or two arrays, not a number and a string")
    #expect(try evaluationError("'a' - 'b'")?.reason == "'-' needs two numbers, not a string and a string")
    #expect(try evaluationError("-'a'")?.reason == "unary '-' needs a number, not a string")
  }

  @Test func concatenationIsCapped() throws {
    let half = String(repeating: "x", count: 32_768)
    #expect(try evaluate("a + b", [["a"]: .string(half), ["b"]: .string(half)]) == .string(half + half))
    #expect(
      try evaluationError("a + b + 'y'", [["a"]: .string(half), ["b"]: .string(half)])?.reason
        == "'+' would make a string longer than 65536 bytes")
    let elements = JSONValue.array(Array(repeating: .null, count: 5_000))
    #expect(
      try evaluationError("a + a + [1]", [["a"]: elements])?.reason
        == "'+' would make an array of more than 10000 elements")
  }

  @Test func stringEscapes() throws {
    #expect(try evaluate(#"'it\'s'"#) == .string("it's"))
    #expect(try evaluate(#""say \"hi\"""#) == .string("say \"hi\""))
    #expect(try evaluate(#"'a\\b'"#) == .string("a\\b"))
    #expect(try evaluate(#"'line\nnext\tcell'"#) == .string("line\nnext\tcell"))
    #expect(try evaluate(#""it's""#) == .string("it's"))
    #expect(try evaluate("'héllo ✓'") == .string("héllo ✓"))
    let error = parseError(#"'a\qb'"#)
    #expect(error?.offset == 2)
    #expect(error?.reason.hasPrefix("unknown escape") == true)
  }

  // MARK: Paths

  @Test func pathsWithHyphensAndIndexes() throws {
    let expression = try ConditionExpression(
      parsing:
        "nodes.node-1.output.score > 0.5 && input.name == 'x' || nodes.node-1.output.score < 0 && items[2].name == input.name"
    )
    #expect(
      expression.references == [
        ["nodes", "node-1", "output", "score"], ["input", "name"], ["items", "2", "name"],
      ])
    let variables: [[String]: JSONValue] = [
      ["nodes", "node-1", "output", "score"]: .number(0.9),
      ["input", "name"]: .string("x"),
    ]
    #expect(try expression.isTrue { variables[$0] })
    #expect(try isTrue("items[0] == 'first'", [["items", "0"]: .string("first")]))
  }

  @Test func hyphenatedNamesAndSubtraction() throws {
    #expect(try ConditionExpression(parsing: "a-b").references == [["a-b"]])
    #expect(try ConditionExpression(parsing: "a--b").references == [["a--b"]])
    #expect(try ConditionExpression(parsing: "a - b").references == [["a"], ["b"]])
    #expect(try ConditionExpression(parsing: "a- b").references == [["a"], ["b"]])
    #expect(try ConditionExpression(parsing: "a -b").references == [["a"], ["b"]])
    let variables: [[String]: JSONValue] = [["a"]: .number(5), ["b"]: .number(3), ["a-b"]: .number(42)]
    #expect(try evaluate("a - b", variables) == .number(2))
    #expect(try evaluate("a-b", variables) == .number(42))
  }

  @Test func keywordsAsLaterSegments() throws {
    let expression = try ConditionExpression(parsing: "x.in == 1 and y.null.true == 2")
    #expect(expression.references == [["x", "in"], ["y", "null", "true"]])
    #expect(parseError("in.x == 1")?.reason == "unexpected keyword 'in' where a value was expected")
    #expect(parseError("x == and")?.offset == 5)
  }

  @Test func missingPathIsNull() throws {
    #expect(try isTrue("nodes.x.output.y == null"))
    #expect(try evaluate("nodes.x.output.y") == .null)
    #expect(try !isTrue("nodes.x.output.y == 0"))
  }

  @Test func pathSegmentLimit() throws {
    let thirtyTwo = "a" + String(repeating: ".b", count: 31)
    #expect(try ConditionExpression(parsing: thirtyTwo).references.first?.count == 32)
    let error = parseError(thirtyTwo + ".c")
    #expect(error?.reason == "a path has more than 32 segments")
    #expect(error?.offset == thirtyTwo.utf8.count)
    #expect(parseError("a.1")?.reason == "unexpected number 1 where a name was expected after '.'")
    #expect(
      parseError("a[b]")?.reason == "unexpected name 'b' where an index was expected (a whole number, as in items[2])")
    #expect(parseError("a[1.5]")?.offset == 2)
  }

  @Test func referencesAreDeduplicatedInOrder() throws {
    let expression = try ConditionExpression(parsing: "b > 1 and a > 1 and len(b) > 0 and [a, c] == [b, c]")
    #expect(expression.references == [["b"], ["a"], ["c"]])
    #expect(try ConditionExpression(parsing: "1 + 2").references.isEmpty)
  }

  // MARK: Membership

  @Test func membership() throws {
    let variables: [[String]: JSONValue] = [
      ["tags"]: .array([.string("a"), .number(1)]),
      ["doc"]: .object(["key": .null]),
      ["text"]: .string("hello world"),
    ]
    #expect(try isTrue("'a' in tags", variables))
    #expect(try isTrue("1 in tags", variables))
    #expect(try !isTrue("'1' in tags", variables))
    #expect(try isTrue("tags contains 'a'", variables))
    #expect(try isTrue("'key' in doc", variables))
    #expect(try !isTrue("'other' in doc", variables))
    #expect(try isTrue("doc contains 'key'", variables))
    #expect(try isTrue("'lo w' in text", variables))
    #expect(try isTrue("'' in text", variables))
    #expect(try !isTrue("'xyz' in text", variables))
    #expect(try isTrue("text contains 'world'", variables))
    #expect(try isTrue("2 in [1, 2, 3]"))
    #expect(try isTrue("text starts_with 'hell'", variables))
    #expect(try !isTrue("text starts_with 'world'", variables))
    #expect(try isTrue("text ends_with 'world'", variables))
    #expect(
      try evaluationError("1 in 'abc'")?.reason
        == "'in' looks for a substring of a string, which must be a string, not a number")
    #expect(
      try evaluationError("1 in doc", variables)?.reason
        == "'in' looks for a key of an object, which must be a string, not a number")
    #expect(
      try evaluationError("1 in 2")?.reason == "'in' needs an array, an object or a string on its right, not a number")
    #expect(
      try evaluationError("2 contains 1")?.reason
        == "'contains' needs an array, an object or a string on its left, not a number")
    #expect(
      try evaluationError("1 starts_with 'a'")?.reason == "'starts_with' needs two strings, not a number and a string")
    #expect(try evaluationError("'a' ends_with null")?.reason == "'ends_with' needs two strings, not a string and null")
  }

  // MARK: Functions

  @Test func functions() throws {
    #expect(try evaluate("len('héllo')") == .number(5))
    #expect(try evaluate("len([1, 2, 3])") == .number(3))
    #expect(try evaluate("len(x)", [["x"]: .object(["a": .null, "b": .null])]) == .number(2))
    #expect(try evaluate("lower('ÀbC')") == .string("àbc"))
    #expect(try evaluate("upper('abc')") == .string("ABC"))
    #expect(try evaluate("number('42')") == .number(42))
    #expect(try evaluate("number(' -2.5e1 ')") == .number(-25))
    #expect(try evaluate("number(7)") == .number(7))
    #expect(try evaluate("string(3)") == .string("3"))
    #expect(try evaluate("string(-2.5)") == .string("-2.5"))
    #expect(try evaluate("string(true)") == .string("true"))
    #expect(try evaluate("string(null)") == .string("null"))
    #expect(try evaluate("string('s')") == .string("s"))
    #expect(try isTrue("number(x) > 10 && string(len(x)) == '2'", [["x"]: .string("12")]))
    #expect(try evaluationError("number('12abc')")?.reason == "number() cannot read '12abc' as a number")
    #expect(try evaluationError("number('')")?.reason == "number() cannot read '' as a number")
    #expect(try evaluationError("number(true)")?.reason == "number() needs a string or a number, not a boolean")
    #expect(try evaluationError("len(1)")?.reason == "len() needs a string, an array or an object, not a number")
    #expect(try evaluationError("lower(1)")?.reason == "lower() needs a string, not a number")
    #expect(
      try evaluationError("string([1])")?.reason == "string() needs a number, a boolean, null or a string, not an array"
    )
    #expect(parseError("size(x)")?.reason.hasPrefix("unknown function 'size'") == true)
    #expect(parseError("len(1, 2)")?.reason == "len() takes one argument, not 2")
    #expect(parseError("len()")?.reason == "len() takes one argument, not 0")
  }

  // MARK: Parse errors

  @Test func parseErrors() throws {
    #expect(parseError("") == ConditionExpression.ParseError(offset: 0, reason: "empty expression"))
    #expect(parseError("   \n\t")?.reason == "empty expression")
    #expect(
      parseError("1 2") == ConditionExpression.ParseError(offset: 2, reason: "unexpected number 2 after a complete expression"))
    #expect(parseError("a == 1 )")?.offset == 7)
    #expect(parseError("a == 1 )")?.reason == "unexpected ')' after a complete expression")
    let unterminated = parseError("name == 'abc")
    #expect(unterminated?.offset == 8)
    #expect(unterminated?.reason == "unterminated string: no closing '")
    let chained = parseError("a < b < c")
    #expect(chained?.offset == 6)
    #expect(chained?.reason.hasPrefix("comparisons do not chain") == true)
    #expect(parseError("a == b == c")?.offset == 7)
    #expect(try isTrue("(1 < 2) == true"))
    #expect(parseError("a # b") == ConditionExpression.ParseError(offset: 2, reason: "unexpected character '#'"))
    #expect(parseError("a = b") == ConditionExpression.ParseError(offset: 2, reason: "unexpected '=' (write '==' to compare)"))
    #expect(parseError("a & b")?.offset == 2)
    #expect(parseError("a | b")?.offset == 2)
    #expect(parseError("é")?.reason == "unexpected character 'é'")
    #expect(parseError("1 +")?.reason == "unexpected end of the expression where a value was expected")
    #expect(parseError("1 +")?.offset == 3)
    #expect(
      parseError("(1 + 2")?.reason
        == "unexpected end of the expression where ')' was expected to close the '(' at byte 0")
    #expect(parseError("[1, 2")?.offset == 5)
    #expect(parseError("01")?.reason == "a number cannot have a leading zero")
    #expect(parseError("1.")?.reason == "a number needs a digit after its decimal point")
    #expect(parseError("1e")?.reason == "a number needs digits in its exponent")
    #expect(parseError("1e999")?.reason == "the number is too large")
    // Offsets are in UTF-8 bytes: 'é' is two.
    #expect(parseError("'é' 1")?.offset == 5)
    let description = try #require(parseError("1 2")).description
    #expect(description == "Invalid expression at byte 2: unexpected number 2 after a complete expression")
  }

  // MARK: Limits

  @Test func depthLimit() throws {
    func parens(_ levels: Int) -> String {
      String(repeating: "(", count: levels) + "1" + String(repeating: ")", count: levels)
    }
    #expect(try ConditionExpression(parsing: parens(16)).evaluate { _ in nil } == .number(1))
    #expect(parseError(parens(17)) == ConditionExpression.ParseError(offset: 16, reason: "nests deeper than 16 levels"))
    #expect(try ConditionExpression(parsing: parens(3), maxDepth: 3).evaluate { _ in nil } == .number(1))
    #expect(parseError(parens(4), maxDepth: 3)?.reason == "nests deeper than 3 levels")

    #expect(try isTrue(String(repeating: "!", count: 16) + "true"))
    #expect(parseError(String(repeating: "!", count: 17) + "true")?.reason == "nests deeper than 16 levels")
    #expect(try evaluate(String(repeating: "-", count: 16) + "1") == .number(1))
    #expect(parseError(String(repeating: "-", count: 17) + "1")?.offset == 16)
    #expect(try ConditionExpression(parsing: "[[[1]]]", maxDepth: 3).references.isEmpty)
    #expect(parseError("[[[[1]]]]", maxDepth: 3)?.offset == 3)
    #expect(try evaluate("len(lower(upper('ab')))") == .number(2))
    #expect(parseError("len(lower(upper('ab')))", maxDepth: 2)?.offset == 10)
    // Binary operators do not open levels.
    #expect(try evaluate(Array(repeating: "1", count: 100).joined(separator: " + ")) == .number(100))
  }

  @Test func hostileNestingFailsFast() {
    let parens = String(repeating: "(", count: 100_000)
    #expect(
      parseError(parens, maxLength: 1_000_000)
        == ConditionExpression.ParseError(offset: 16, reason: "nests deeper than 16 levels"))
    let bangs = String(repeating: "!", count: 100_000)
    #expect(
      parseError(bangs, maxLength: 1_000_000)
        == ConditionExpression.ParseError(offset: 16, reason: "nests deeper than 16 levels"))
    let nots = String(repeating: "not ", count: 100_000)
    #expect(parseError(nots, maxLength: 1_000_000)?.reason == "nests deeper than 16 levels")
    // A caller cannot lift the limit past the parser's ceiling.
    #expect(parseError(parens, maxDepth: 1_000_000, maxLength: 1_000_000)?.reason == "nests deeper than 32 levels")
  }

  @Test func longOperatorChainsAreCapped() throws {
    // The tree's height is capped (evaluation recurses once per level); a chain adds one per operator.
    let longest = Array(repeating: "1", count: 128).joined(separator: "+")
    #expect(try evaluate(longest) == .number(128))
    let error = parseError(longest + "+1")
    #expect(error == ConditionExpression.ParseError(offset: 255, reason: "is more than 128 operations deep"))
    let chain = Array(repeating: "1", count: 100_000).joined(separator: "+")
    #expect(parseError(chain, maxLength: 1_000_000)?.reason == "is more than 128 operations deep")
  }

  @Test func lengthLimit() throws {
    let exactly = "true" + String(repeating: " ", count: 4092)
    #expect(try ConditionExpression(parsing: exactly).isTrue { _ in nil })
    let error = parseError(exactly + " ")
    #expect(error?.offset == 4096)
    #expect(error?.reason == "the expression is 4097 bytes long, more than the limit of 4096 bytes")
    #expect(parseError("1 == 1", maxLength: 5)?.reason.hasPrefix("the expression is 6 bytes long") == true)
    // The limit counts UTF-8 bytes, not characters.
    #expect(parseError("'ééé'", maxLength: 7) != nil)
    #expect(parseError("'ééé'", maxLength: 8) == nil)
  }

  @Test func templateWrapping() throws {
    let expression = try ConditionExpression(parsing: "{{ input.score >= 3 }}")
    #expect(expression.references == [["input", "score"]])
    #expect(try expression.isTrue { _ in .number(4) })
    #expect(try isTrue("  {{true}}\n"))
    #expect(parseError("{{ }}") == ConditionExpression.ParseError(offset: 2, reason: "empty expression"))
    #expect(parseError("{{ 1 2 }}")?.offset == 5)
    #expect(parseError("{{ true")?.reason == "'{{' is not closed by '}}' at the end of the expression")
    #expect(parseError("true }}")?.offset == 5)
    #expect(expression.source == "{{ input.score >= 3 }}")
  }

  // MARK: Conditions

  @Test func nonBooleanConditionFails() throws {
    let error = #expect(throws: ConditionExpression.EvaluationError.self) {
      try ConditionExpression(parsing: "1 + 1").isTrue { _ in nil }
    }
    #expect(error?.reason == "the condition is a number, not a boolean")
    #expect(error?.description == "Cannot evaluate the expression: the condition is a number, not a boolean")
    let missing = #expect(throws: ConditionExpression.EvaluationError.self) {
      try ConditionExpression(parsing: "nodes.a.output").isTrue { _ in nil }
    }
    #expect(missing?.reason == "the condition is null, not a boolean")
    let list = #expect(throws: ConditionExpression.EvaluationError.self) {
      try ConditionExpression(parsing: "[true]").isTrue { _ in nil }
    }
    #expect(list?.reason == "the condition is an array, not a boolean")
  }

  @Test func equalityAndTree() throws {
    #expect(try ConditionExpression(parsing: "a == 1") == ConditionExpression(parsing: "a == 1"))
    #expect(try ConditionExpression(parsing: "a == 1") != ConditionExpression(parsing: "a==1"))
    #expect(try ConditionExpression(parsing: "a == 1").tree == ConditionExpression(parsing: "a==1").tree)
    #expect(try ConditionExpression(parsing: "-x").tree == .negate(.path(["x"])))
  }
}
