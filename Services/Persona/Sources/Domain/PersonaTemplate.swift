public import PlatformCore

/// A persona's template: a `TextTemplate` (Mustache, logic-less: sections, inverted sections,
/// variables; no partials, no code), rendered as plain text (no HTML escaping: the output is a
/// prompt), with its problems reported as `PersonaError`s.
public struct PersonaTemplate: Sendable {
  private let template: TextTemplate
  public var source: String { self.template.source }

  /// Parses `source`.
  /// - Parameter maxDepth: how deep sections may nest (see `TextTemplate.init`).
  /// - Throws: `PersonaError.templateSyntax` with the line and column of the problem, or
  ///   `.invalidArgument` when sections nest deeper than `maxDepth`.
  public init(_ source: String, maxDepth: Int = NestingLimit.defaultDepth) throws(PersonaError) {
    do throws(TextTemplate.Problem) {
      self.template = try TextTemplate(source, maxDepth: maxDepth)
    } catch {
      throw Self.personaError(error)
    }
  }

  /// Renders the template with `variables`.
  /// - Parameter maxCharacters: the output cap, in Unicode scalars.
  /// - Throws: `PersonaError.renderTooLarge` when the output (or the work to produce it, for
  ///   sections repeated over long lists) would exceed the cap. Nothing is truncated.
  public func render(_ variables: [String: JSONValue], maxCharacters: Int) throws(PersonaError) -> String {
    do throws(TextTemplate.Problem) {
      return try self.template.render(variables, maxCharacters: maxCharacters)
    } catch {
      throw Self.personaError(error)
    }
  }

  /// The core's section-depth scan, for this module's tests.
  static func sectionDepth(of text: String, limit: Int) -> TextTemplate.DepthScan {
    TextTemplate.sectionDepth(of: text, limit: limit)
  }

  private static func personaError(_ problem: TextTemplate.Problem) -> PersonaError {
    switch problem {
    case .syntax(let line, let column, let reason):
      .templateSyntax(line: line, column: column, reason: reason)
    case .tooDeep(let limit):
      .invalidArgument(field: "persona.template", reason: "sections nest deeper than \(limit) levels")
    case .tooLarge(let limit):
      .renderTooLarge(limit: limit)
    }
  }
}
