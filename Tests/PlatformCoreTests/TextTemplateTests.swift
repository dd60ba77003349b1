import Testing

@testable import PlatformCore

@Suite("Text templates")
struct TextTemplateTests {
  /// `{{#a}}` `depth` times, a text, then the closing tags.
  static func nested(_ depth: Int) -> String {
    String(repeating: "{{#a}}", count: depth) + "x" + String(repeating: "{{/a}}", count: depth)
  }

  @Test("Variables, sections, inverted sections and lists render")
  func render() throws {
    let template = try TextTemplate("Hi {{name}}.{{#items}} [{{.}}]{{/items}}{{^items}} none{{/items}}{{#flag}}!{{/flag}} {{count}}")
    let text = try template.render(
      ["name": .string("Ada"), "items": .array([.string("a"), .string("b")]), "flag": .bool(true), "count": .number(3)],
      maxCharacters: 1000)
    #expect(text == "Hi Ada. [a] [b]! 3")
    #expect(try template.render([:], maxCharacters: 1000) == "Hi . none ")
    #expect(template.source.hasPrefix("Hi {{name}}"))
  }

  @Test("Dotted names resolve through nested objects")
  func dottedNames() throws {
    let template = try TextTemplate("[{{nodes.a.output.text}}|{{nodes.b.output.text}}|{{#nodes.a.output}}{{text}}{{/nodes.a.output}}]")
    let variables: [String: JSONValue] = [
      "nodes": .object(["a": .object(["output": .object(["text": .string("done")])])])
    ]
    #expect(try template.render(variables, maxCharacters: 1000) == "[done||done]")
  }

  @Test("A syntax error reports its line and column in the source", arguments: [
    ("Hello {{#list}}never closed", 1), ("line one\nline {{two", 2), ("{{#a}}\n\n{{/b}}", 3),
  ])
  func syntaxError(source: String, line: Int) {
    let lineLength = source.split(separator: "\n", omittingEmptySubsequences: false)[line - 1].count
    #expect {
      try TextTemplate(source)
    } throws: { error in
      guard case .syntax(let reported, let column, let reason) = error as? TextTemplate.Problem else { return false }
      // The text-mode prefix the engine adds is not counted in line 1's columns.
      return reported == line && (1...lineLength + 1).contains(column) && !reason.isEmpty
    }
  }

  @Test("Non-ASCII set delimiters are a syntax error at line 1, column 1")
  func nonASCIIDelimiters() {
    #expect {
      try TextTemplate("{{=«« »»=}}x")
    } throws: { error in
      guard case .syntax(line: 1, column: 1, _) = error as? TextTemplate.Problem else { return false }
      return true
    }
  }

  @Test("Sections nest up to the limit; one level more is tooDeep")
  func depth() throws {
    #expect(try TextTemplate(Self.nested(4), maxDepth: 4).render(["a": .bool(true)], maxCharacters: 100) == "x")
    #expect(throws: TextTemplate.Problem.tooDeep(limit: 4)) { try TextTemplate(Self.nested(5), maxDepth: 4) }
    let limit = NestingLimit.defaultDepth
    #expect(try TextTemplate(Self.nested(limit)).render(["a": .bool(true)], maxCharacters: 100) == "x")
    #expect(throws: TextTemplate.Problem.tooDeep(limit: limit)) { try TextTemplate(Self.nested(limit + 1)) }
  }

  @Test("A section over a long list that would exceed the cap is tooLarge, not truncated")
  func tooLarge() throws {
    let template = try TextTemplate("{{#items}}{{.}}, {{/items}}")
    let short = JSONValue.array(Array(repeating: .string("item"), count: 10))
    #expect(try template.render(["items": short], maxCharacters: 1000).count == 60)
    let long = JSONValue.array(Array(repeating: .string("item"), count: 10_000))
    #expect(throws: TextTemplate.Problem.tooLarge(limit: 1000)) { try template.render(["items": long], maxCharacters: 1000) }
  }

  @Test("Output is plain text: no HTML escaping")
  func noEscaping() throws {
    let variables: [String: JSONValue] = ["x": .string("<b>&\"'")]
    #expect(try TextTemplate("{{x}}").render(variables, maxCharacters: 100) == "<b>&\"'")
    #expect(try TextTemplate("{{{x}}}|{{&x}}").render(variables, maxCharacters: 100) == "<b>&\"'|<b>&\"'")
  }
}
