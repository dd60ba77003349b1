internal import Foundation
public import PlatformCore

/// SQL from an OpenAI-compatible chat model: the prompt carries the tables the question's
/// words found (their columns, types, keys and sample values), similar questions that ran
/// successfully on this database (Vanna's idea; the guard still checks everything), and, on a
/// retry, the earlier SQL with why the guard or the database rejected it. The model answers
/// with a JSON object {"sql", "explanation"}.
public struct OpenAISQLGenerator: SQLGenerator, TableDescriber {
  private let client: ChatCompletionsClient

  public init(provider: ModelProvider.OpenAICompatible) {
    self.client = ChatCompletionsClient(provider: provider)
  }

  public var name: String { "openai:\(self.client.provider.model)" }

  /// The schema part of a prompt stays under this many bytes (tables beyond it are left out).
  static let maxSchemaBytes = 24 * 1024

  public func generate(_ request: GenerationRequest) async throws(GenerationError) -> GeneratedSQL {
    var messages = [ChatCompletionsClient.Message(role: "system", content: Self.instructions(request))]
    for example in request.examples.prefix(3) {
      messages.append(.init(role: "user", content: example.question))
      messages.append(.init(role: "assistant", content: Self.answer(sql: example.sql, explanation: "A query that answered this before.")))
    }
    messages.append(.init(role: "user", content: request.question))
    for attempt in request.feedback {
      messages.append(.init(role: "assistant", content: Self.answer(sql: attempt.sql, explanation: "")))
      messages.append(
        .init(role: "user", content: "That query was rejected: \(attempt.error.prefix(500)). Answer again with one corrected read-only SELECT."))
    }
    let completion: ChatCompletionsClient.Completion
    do {
      completion = try await self.client.complete(messages, json: true)
    } catch {
      throw .unavailable(error.description)
    }
    guard let (sql, explanation) = Self.parse(completion.content), !sql.isEmpty else {
      throw .unsupported("The model did not answer with SQL")
    }
    return GeneratedSQL(
      sql: sql, explanation: explanation, promptTokens: completion.promptTokens, completionTokens: completion.completionTokens)
  }

  public func describe(_ table: CatalogTable) async throws(GenerationError) -> String {
    let schema = Self.schemaText(SchemaCatalog(tables: [table]))
    let messages = [
      ChatCompletionsClient.Message(
        role: "system", content: "You describe database tables in one sentence for people who write SQL: what one row is, and what the table is for."),
      ChatCompletionsClient.Message(role: "user", content: schema),
    ]
    do {
      let text = try await self.client.complete(messages, json: false, maxTokens: 120).content
      return String(text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(500))
    } catch {
      throw .unavailable(error.description)
    }
  }

  /// The tables as text for a prompt: columns with types, keys, comments and sample values,
  /// within `maxSchemaBytes`.
  static func schemaText(_ catalog: SchemaCatalog) -> String {
    var schema = ""
    for table in catalog.tables {
      var text = "TABLE \(table.qualifiedName)"
      if !table.description.isEmpty { text += " -- \(table.description.prefix(300))" }
      text += "\n"
      for column in table.columns {
        text += "  \(column.name) \(column.dataType)\(column.isPrimaryKey ? " PRIMARY KEY" : "")\(column.isNullable ? "" : " NOT NULL")"
        if !column.description.isEmpty { text += " -- \(column.description.prefix(200))" }
        if !column.sampleValues.isEmpty { text += " (e.g. \(column.sampleValues.prefix(8).map { "'\($0)'" }.joined(separator: ", ")))" }
        text += "\n"
      }
      for key in table.foreignKeys {
        text += "  FOREIGN KEY (\(key.columns.joined(separator: ", "))) REFERENCES \(key.referencedSchema).\(key.referencedTable)(\(key.referencedColumns.joined(separator: ", ")))\n"
      }
      guard schema.utf8.count + text.utf8.count <= Self.maxSchemaBytes else { break }
      schema += text
    }
    return schema
  }

  static func instructions(_ request: GenerationRequest) -> String {
    let schema = Self.schemaText(request.catalog)
    let dialect = request.dialect == .sqlite ? "SQLite" : "PostgreSQL"
    return """
      You write one read-only \(dialect) SELECT statement that answers the user's question over this schema, \
      using only these tables and columns:

      \(schema)
      Rules: one statement, SELECT only (WITH allowed), no semicolon, no comments, no system catalogs, \
      standard aggregate, string, math and date functions only, LIMIT listings to 100 rows unless asked.
      Answer with a JSON object: {"sql": "<the statement>", "explanation": "<one or two sentences>"}.
      """
  }

  static func answer(sql: String, explanation: String) -> String {
    let object: [String: String] = ["sql": sql, "explanation": explanation]
    return (try? JSONSerialization.data(withJSONObject: object, options: .sortedKeys)).map { String(decoding: $0, as: UTF8.self) } ?? sql
  }

  /// The SQL and explanation of an answer: the JSON object asked for, else the first fenced
  /// code block, else the whole text.
  static func parse(_ content: String) -> (sql: String, explanation: String)? {
    let trimmed = content.trimmingCharacters(in: .whitespacesAndNewlines)
    if let data = trimmed.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let sql = object["sql"] as? String
    {
      return (Self.clean(sql), (object["explanation"] as? String) ?? "")
    }
    if let start = trimmed.range(of: "```") {
      let rest = trimmed[start.upperBound...].drop { $0 != "\n" }.dropFirst()
      if let end = rest.range(of: "```") { return (Self.clean(String(rest[..<end.lowerBound])), "") }
    }
    return trimmed.isEmpty ? nil : (Self.clean(trimmed), "")
  }

  private static func clean(_ sql: String) -> String {
    var text = sql.trimmingCharacters(in: .whitespacesAndNewlines)
    while text.hasSuffix(";") { text = String(text.dropLast()).trimmingCharacters(in: .whitespacesAndNewlines) }
    return text
  }
}
