public import Foundation
internal import GRPCRuntime
public import PlatformCore

extension PersonaCatalog {
  /// Runs `validators` on the caller's persona, then records their results together: a call
  /// that fails (a judge that cannot be reached) records nothing.
  /// - Parameter sampleVariables: variables to render with; nil uses the schema's defaults.
  public func validate(
    _ id: UUID, validators: [PersonaValidatorKind], sampleVariables: JSONValue?, caller: Caller
  ) async throws -> [PersonaValidation] {
    if let sampleVariables {
      try self.checkVariableSize(sampleVariables, field: "sample_variables")
      // Issues and results quote the sample (names of unknown variables), and are stored.
      try self.checkStorable(sampleVariables, field: "sample_variables", maxBytes: self.limits.maxSampleBytes)
    }
    let persona = try await self.visible(id, to: caller)
    guard persona.ownerID == caller.userID else { throw PersonaError.notOwner }
    var outcomes: [ValidationOutcome] = []
    for validator in validators {
      let outcome: (isValid: Bool, issues: [String], result: JSONValue)
      switch validator {
      case .templateSyntax: outcome = Self.checkTemplateSyntax(persona)
      case .variableSchema: outcome = self.checkVariableSchema(persona, sample: sampleVariables)
      case .gpt4Judge: outcome = try await self.judgePrompt(persona, sample: sampleVariables)
      }
      outcomes.append(self.bounded(ValidationOutcome(validator: validator, isValid: outcome.isValid, issues: outcome.issues, result: outcome.result)))
    }
    return try await self.store.insertValidations(outcomes, personaID: persona.id, personaVersion: persona.version)
  }

  /// A persona's recorded validations, newest first.
  public func validations(
    of id: UUID, validator: PersonaValidatorKind?, pageSize: Int32, pageToken: String, caller: Caller
  ) async throws -> (validations: [PersonaValidation], nextPageToken: String, total: Int) {
    guard let limit = PageToken.pageSize(pageSize, default: self.limits.defaultPageSize, maximum: self.limits.maxPageSize) else {
      throw PersonaError.invalidArgument(field: "page_size", reason: "must not be negative")
    }
    struct Cursor: Codable {
      var persona: UUID
      var validator: String?
      var after: PersonaCursor
    }
    var after: PersonaCursor?
    if !pageToken.isEmpty {
      guard let cursor = PageToken.decode(pageToken, as: Cursor.self), cursor.persona == id, cursor.validator == validator?.rawValue else {
        throw PersonaError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
      }
      after = cursor.after
    }
    let persona = try await self.visible(id, to: caller)
    let result = try await self.store.listValidations(personaID: persona.id, validator: validator, after: after, limit: limit)
    let page = ResponseBudget.page(result.page, more: result.more) { $0.validation.encodedSizeBound }
    let token = page.continueAfter.map { PageToken.encode(Cursor(persona: id, validator: validator?.rawValue, after: $0.cursor)) }
    return (page.rows.map(\.validation), token ?? "", result.total)
  }

  /// The outcome as it is recorded: at most `maxIssues` issues of at most `maxIssueBytes` each
  /// (a last one says how many more there were), and a result of at most `maxResultBytes`. A
  /// sample with thousands of bad values, or a judge's long explanation, must not make a row
  /// (and a listing of rows) without bound.
  func bounded(_ outcome: ValidationOutcome) -> ValidationOutcome {
    var outcome = outcome
    let limits = self.limits
    if outcome.issues.count > limits.maxIssues {
      let omitted = outcome.issues.count - (limits.maxIssues - 1)
      outcome.issues = outcome.issues.prefix(limits.maxIssues - 1) + ["… and \(omitted) more issues"]
    }
    outcome.issues = outcome.issues.map { $0.truncated(toUTF8Bytes: limits.maxIssueBytes) }
    if outcome.result.jsonText.utf8.count > limits.maxResultBytes {
      outcome.result = .object(["truncated": .bool(true), "issue_count": .number(Double(outcome.issues.count))])
    }
    return outcome
  }

  // MARK: - Validators

  /// template_syntax: the template parses and every variable it uses is declared.
  static func checkTemplateSyntax(_ persona: Persona) -> (isValid: Bool, issues: [String], result: JSONValue) {
    do {
      _ = try PersonaTemplate(persona.template, maxDepth: NestingLimit.maximumDepth)
    } catch {
      return (false, [error.rpcError.message], .object(["parses": .bool(false)]))
    }
    let schema = try? VariableSchema(variables: persona.variables)
    let declared = Set(schema?.properties.keys.map { $0 } ?? [])
    let scan = TemplateVariables(scanning: persona.template)
    var issues: [String] = []
    var undeclared: [String] = []
    for reference in scan.references where !declared.contains(reference.root) {
      // Inside sections, a name may be a member of a section's object (or of its list's items),
      // looked up from the innermost section outwards as Mustache does.
      var scopes = schema.map { [$0] } ?? []
      for section in reference.enclosingSections {
        if let found = scopes.reversed().lazy.compactMap({ $0.properties[section] }).first {
          scopes.append(found.items ?? found)
        }
      }
      if scopes.contains(where: { $0.properties[reference.root] != nil }) { continue }
      if !undeclared.contains(reference.root) {
        undeclared.append(reference.root)
        issues.append("line \(reference.line): unknown variable `\(reference.root)` (not declared in the variables schema)")
      }
    }
    for partial in scan.partials {
      issues.append("partial `\(partial)` renders nothing: partials are not supported")
    }
    let used = Set(scan.references.map(\.root))
    let unused = declared.subtracting(used).sorted()
    return (
      issues.isEmpty, issues,
      .object([
        "parses": .bool(true),
        "variables_used": .array(used.sorted().map(JSONValue.string)),
        "undeclared": .array(undeclared.map(JSONValue.string)),
        "declared_unused": .array(unused.map(JSONValue.string)),
      ])
    )
  }

  /// variable_schema: the schema is valid, and the sample variables (or the defaults) conform.
  func checkVariableSchema(_ persona: Persona, sample: JSONValue?) -> (isValid: Bool, issues: [String], result: JSONValue) {
    let schema: VariableSchema
    do {
      schema = try VariableSchema(variables: persona.variables)
    } catch {
      return (false, [error.rpcError.message], .object(["schema_valid": .bool(false)]))
    }
    let checked = sample == nil ? "defaults" : "sample_variables"
    do {
      _ = try self.completedVariables(sample ?? .object([:]), schema: schema)
      return (true, [], .object(["schema_valid": .bool(true), "checked": .string(checked)]))
    } catch {
      let issues: [String]
      if case .variablesRejected(let violations) = error {
        issues = violations.map(\.description)
      } else {
        issues = [error.rpcError.message]
      }
      return (
        false, issues,
        .object(["schema_valid": .bool(true), "checked": .string(checked), "violations": .array(issues.map(JSONValue.string))])
      )
    }
  }

  /// gpt4_judge: the configured judge scores the prompt rendered with the sample variables
  /// (missing required strings are filled with `<name>` placeholders).
  func judgePrompt(_ persona: Persona, sample: JSONValue?) async throws -> (isValid: Bool, issues: [String], result: JSONValue) {
    let schema = (try? VariableSchema(variables: persona.variables)) ?? VariableSchema.empty
    var variables = schema.applyingDefaults(to: sample?.objectValue ?? [:]).variables
    for name in schema.required where variables[name] == nil {
      variables[name] = .string("<\(name)>")
    }
    let rendered: String
    do {
      rendered = try PersonaTemplate(persona.template, maxDepth: self.limits.maxNestingDepth).render(
        variables, maxCharacters: self.limits.maxRenderCharacters)
    } catch {
      return (false, ["cannot render the template: \(error.rpcError.message)"], .object(["rendered": .bool(false)]))
    }
    let verdict = try await self.judge.judge(
      JudgeRequest(personaName: persona.name, personaDescription: persona.description, renderedPrompt: rendered))
    return (
      verdict.isValid, verdict.issues,
      .object([
        "score": .number(verdict.score),
        "model": .string(verdict.model),
        "explanation": .string(verdict.explanation),
        "passing_score": .number(OfflineHeuristicJudge.passingScore),
      ])
    )
  }
}

extension VariableSchema {
  /// The schema of a persona without variables.
  static var empty: VariableSchema { try! VariableSchema(variables: .object([:])) }
}
