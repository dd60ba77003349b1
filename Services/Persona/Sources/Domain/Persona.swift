public import Foundation
public import PlatformCore

/// A persona template (persona_db.personas).
public struct Persona: Sendable, Hashable {
  public var id: UUID
  public var ownerID: UUID
  public var name: String
  public var description: String
  public var template: String
  /// The JSON schema of the template's variables.
  public var variables: JSONValue
  public var isPublic: Bool
  public var usageCount: Int
  public var rating: Double?
  public var ratingCount: Int
  public var version: Int
  public var createdAt: Date
  public var updatedAt: Date
  public var deletedAt: Date?
  /// Bumped by every change (update, rating, delete): what the cached copy is versioned by.
  public var revision: Int64 = 1

  /// Changes whenever anything about the persona does, its counters included.
  public var etag: String {
    // The rating too: a user re-rating changes the average but neither the count nor the version.
    "\"\(self.version)-\(self.usageCount)-\(self.ratingCount)-\(self.rating.map { "\($0)" } ?? "none")-\(Int64(self.updatedAt.timeIntervalSince1970 * 1_000_000))\""
  }
}

extension Persona {
  /// An upper bound of the persona's encoded size in a response, for paging by bytes: its
  /// texts and schema, and at most 512 bytes of ids, counters, times and etag.
  public var encodedSizeBound: Int {
    512 + ResponseBudget.fieldSize(self.name.utf8.count) + ResponseBudget.fieldSize(self.description.utf8.count)
      + ResponseBudget.fieldSize(self.template.utf8.count) + ResponseBudget.fieldSize(self.variables.protobufStructSize)
  }
}

/// The fields a caller writes: on create, all of them; on update, those in the mask.
public struct PersonaDraft: Sendable, Hashable {
  public var name: String
  public var description: String
  public var template: String
  public var variables: JSONValue
  public var isPublic: Bool

  public init(name: String, description: String = "", template: String, variables: JSONValue = .object([:]), isPublic: Bool = false) {
    self.name = name
    self.description = description
    self.template = template
    self.variables = variables
    self.isPublic = isPublic
  }
}

/// The fields an update replaces (`update_mask` paths).
public enum PersonaField: String, Sendable, CaseIterable {
  case name
  case description
  case template
  case variables
  case isPublic = "is_public"
}

/// persona_validations.validator.
public enum PersonaValidatorKind: String, Sendable, CaseIterable {
  case templateSyntax = "template_syntax"
  case variableSchema = "variable_schema"
  case gpt4Judge = "gpt4_judge"
}

/// One recorded validation (persona_db.persona_validations).
public struct PersonaValidation: Sendable, Hashable {
  public var id: UUID
  public var personaID: UUID
  public var personaVersion: Int
  public var validator: PersonaValidatorKind
  public var isValid: Bool
  public var issues: [String]
  public var result: JSONValue
  public var validatedAt: Date
}

extension PersonaValidation {
  /// An upper bound of the validation's encoded size in a response, for paging by bytes.
  public var encodedSizeBound: Int {
    256 + self.issues.reduce(0) { $0 + ResponseBudget.fieldSize($1.utf8.count) }
      + ResponseBudget.fieldSize(self.result.protobufStructSize)
  }
}

/// What one validator found, before it is recorded.
public struct ValidationOutcome: Sendable, Hashable {
  public var validator: PersonaValidatorKind
  public var isValid: Bool
  public var issues: [String]
  public var result: JSONValue
}

/// Sort orders of a persona listing (descending, ties by id).
public enum PersonaOrder: String, Sendable, CaseIterable {
  case updateTime = "update_time"
  case usageCount = "usage_count"
  case rating
  case createTime = "create_time"
}

/// The service's limits.
public struct PersonaLimits: Sendable {
  /// Longest template in UTF-8 bytes.
  public var maxTemplateBytes = 64 * 1024
  /// Longest description in characters, and in UTF-8 bytes (a character can take many).
  public var maxDescriptionCharacters = 4096
  public var maxDescriptionBytes = 16 * 1024
  /// Largest variables schema, in JSON values and in bytes of JSON text.
  public var maxSchemaNodes = 2000
  public var maxSchemaBytes = 64 * 1024
  /// Largest sample variables a validation takes, in bytes of JSON text (their names are
  /// quoted in the stored issues).
  public var maxSampleBytes = 256 * 1024
  /// How deep templates' sections and schemas' documents may nest (`MAX_NESTING_DEPTH`).
  public var maxNestingDepth = NestingLimit.defaultDepth
  /// What one recorded validation keeps: its first `maxIssues` issues of at most
  /// `maxIssueBytes` each, and a result of at most `maxResultBytes` of JSON.
  public var maxIssues = 100
  public var maxIssueBytes = 1024
  public var maxResultBytes = 64 * 1024
  /// Largest variables a render takes, in JSON values, and their deepest nesting.
  public var maxVariableNodes = 10_000
  public var maxVariableDepth = 16
  /// Longest rendered text in characters (`PERSONA_RENDER_MAX_CHARS`).
  public var maxRenderCharacters = 64 * 1024
  /// Longest full-text query.
  public var maxQueryCharacters = 500
  public var defaultPageSize = 50
  public var maxPageSize = 1000

  public init() {}
}
