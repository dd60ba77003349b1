/// Turns a question into one SELECT over a schema catalog (DESIGN.md "Models": an offline
/// deterministic default and an OpenAI-compatible provider chosen by configuration).
public protocol SQLGenerator: Sendable {
  /// Which generator this is, recorded with each query ("offline", "openai:gpt-4o-mini").
  var name: String { get }

  /// SQL answering `question` over `catalog` (already narrowed to the tables that matter), in
  /// `dialect`. `feedback` holds earlier attempts and why the guard or the database rejected
  /// them (at most two retries); `examples` are similar questions that ran successfully.
  func generate(_ request: GenerationRequest) async throws(GenerationError) -> GeneratedSQL
}

public struct GenerationRequest: Sendable {
  public var question: String
  public var catalog: SchemaCatalog
  public var dialect: SQLDialect
  public var examples: [(question: String, sql: String)]
  public var feedback: [(sql: String, error: String)]

  public init(
    question: String, catalog: SchemaCatalog, dialect: SQLDialect, examples: [(question: String, sql: String)] = [],
    feedback: [(sql: String, error: String)] = []
  ) {
    self.question = question
    self.catalog = catalog
    self.dialect = dialect
    self.examples = examples
    self.feedback = feedback
  }
}

public struct GeneratedSQL: Sendable, Equatable {
  public var sql: String
  /// What the SQL does, in a sentence or two, naming the tables and columns it chose.
  public var explanation: String
  public var promptTokens: Int
  public var completionTokens: Int

  public init(sql: String, explanation: String, promptTokens: Int = 0, completionTokens: Int = 0) {
    self.sql = sql
    self.explanation = explanation
    self.promptTokens = promptTokens
    self.completionTokens = completionTokens
  }
}

/// Writes a table's description from its name and columns (SyncSchema's
/// `enhance_descriptions`), for the search that picks a question's tables.
public protocol TableDescriber: Sendable {
  func describe(_ table: CatalogTable) async throws(GenerationError) -> String
}

public enum GenerationError: Error, Equatable, Sendable {
  /// The generator cannot answer this question (the offline one says which kinds it handles).
  case unsupported(String)
  /// The provider is unreachable or failed.
  case unavailable(String)
}
