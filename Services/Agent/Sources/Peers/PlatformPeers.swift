internal import Foundation
internal import GRPCRuntime
public import PlatformCore
internal import PlatformProtos
internal import SwiftProtobuf

/// The other services an execution calls, as the user who started it: the caller's own
/// credentials while the call that started it is being handled (forwarded by the channels), or
/// a short-lived token the agent service signs for that user in a background run.
public struct PlatformPeers: Sendable {
  let persona: Platform_Persona_V1_PersonaServiceClient
  let knowledge: Platform_Knowledge_V1_KnowledgeServiceClient
  let textToSQL: Platform_Texttosql_V1_QueryServiceClient
  let sandbox: Platform_Codesandbox_V1_CodeSandboxServiceClient

  public init(_ channels: PeerChannels) {
    self.persona = .init(channel: channels.channel(.persona))
    self.knowledge = .init(channel: channels.channel(.knowledge))
    self.textToSQL = .init(channel: channels.channel(.textToSQL))
    self.sandbox = .init(channel: channels.channel(.codeSandbox))
  }

  /// How a call authenticates: nil forwards the handled call's credentials.
  public typealias Credential = String?

  static func options(_ credential: Credential, timeout: Duration) -> CallOptions {
    var options = CallOptions(timeout: timeout)
    if let credential { options.metadata.addString("Bearer \(credential)", forKey: "authorization") }
    return options
  }

  /// The persona's template rendered with `variables`: the system prompt.
  func render(_ personaID: UUID, variables: JSONValue, credential: Credential) async throws -> String {
    try await self.persona.renderPersona(
      .with {
        $0.personaID = personaID.lowercasedString
        $0.variables = variables.protobufStruct
      }, options: Self.options(credential, timeout: .seconds(10))
    ).text
  }

  /// What one plugin call gave: a short text for the answer, the citations, and the raw result
  /// (bounded) for the output.
  public struct Result: Sendable {
    public var summary: String
    public var citations: [JSONValue]
    public var detail: JSONValue
  }

  func search(_ config: [String: JSONValue], query: String, alsoIn extraBases: [String], credential: Credential, timeout: Duration) async throws -> Result {
    let mode: Platform_Knowledge_V1_SearchMode =
      switch config["mode"]?.stringValue {
      case "vector": .vector
      case "keyword": .keyword
      default: .hybrid
      }
    let response = try await self.knowledge.search(
      .with {
        let bases = Self.strings(config["knowledge_base_ids"])
        $0.knowledgeBaseIds = bases + extraBases.filter { !bases.contains($0) }
        $0.query = query
        $0.mode = mode
        $0.topK = Int32(Self.number(config["top_k"]) ?? 5)
        $0.minScore = Self.number(config["min_score"]) ?? 0
      }, options: Self.options(credential, timeout: timeout))
    let citations: [JSONValue] = response.results.map { result in
      .object([
        "type": .string("chunk"), "document_id": .string(result.documentID), "chunk_id": .string(result.chunk.id),
        "title": .string(result.documentTitle), "score": .number(result.score),
        "content": .string(result.chunk.content.truncated(toUTF8Bytes: 1000)),
      ])
    }
    let summary =
      response.results.isEmpty
      ? "No passages matched."
      : response.results.prefix(3).map { "[\($0.documentTitle)] \($0.chunk.content.truncated(toUTF8Bytes: 300))" }.joined(separator: "\n")
    return Result(summary: summary, citations: citations, detail: .object(["results": .number(Double(response.results.count))]))
  }

  /// The question answered in SQL and, unless the plugin says `execute: false`, run. SQL the
  /// service's guard refused is a failure naming why, not an empty result.
  func ask(_ config: [String: JSONValue], question: String, credential: Credential, timeout: Duration) async throws -> Result {
    let databaseID = config["database_id"]?.stringValue ?? ""
    let options = Self.options(credential, timeout: timeout)
    guard config["execute"] != .bool(false) else {
      let query = try await self.textToSQL.generateSql(
        .with {
          $0.databaseID = databaseID
          $0.question = question
        }, options: options)
      let citation: JSONValue = .object([
        "type": .string("sql"), "query_id": .string(query.id), "sql": .string(query.sql), "executed": .bool(false),
        "safe": .bool(query.validation.isSafe),
      ])
      guard query.validation.isSafe else {
        throw PluginFailure(code: "sql_refused", message: "The generated SQL is not safe to run: \(query.validation.issues.joined(separator: "; "))", citation: citation)
      }
      return Result(summary: "SQL (not run): `\(query.sql.truncated(toUTF8Bytes: 500))`", citations: [citation], detail: .object([:]))
    }
    let response = try await self.textToSQL.askQuestion(
      .with {
        $0.databaseID = databaseID
        $0.question = question
        $0.maxRows = Int32(Self.number(config["max_rows"]) ?? 100)
      }, options: options)
    var citation: [String: JSONValue] = [
      "type": .string("sql"), "query_id": .string(response.query.id), "sql": .string(response.query.sql),
      "executed": .bool(response.hasResult),
    ]
    guard response.hasResult else {
      citation["safe"] = .bool(false)
      throw PluginFailure(
        code: "sql_refused", message: "The generated SQL was not run: \(response.query.validation.issues.joined(separator: "; "))",
        citation: .object(citation))
    }
    let columns = response.result.columns.map(\.name)
    let rows = response.result.rows.prefix(20).map { JSONValue.array($0.values.map(JSONValue.init)) }
    citation["rows"] = .number(Double(response.result.rows.count))
    citation["truncated"] = .bool(response.result.truncated)
    let table = JSONValue.array([.array(columns.map { .string($0) })] + rows).jsonText.truncated(toUTF8Bytes: 2000)
    let summary = "\(response.result.rows.count) row(s) from `\(response.query.sql.truncated(toUTF8Bytes: 500))`: \(table)"
    return Result(
      summary: summary, citations: [.object(citation)],
      detail: .object(["columns": .array(columns.map { .string($0) }), "rows": .array(Array(rows))]))
  }

  func run(
    _ config: [String: JSONValue], code: String, language: String?, stdin: String, files: [ExecutionFile], credential: Credential,
    timeout: Duration
  ) async throws -> Result {
    let name = language ?? config["language"]?.stringValue ?? "python"
    let execution = try await self.sandbox.executeCode(
      .with {
        $0.language =
          switch name {
          case "javascript": .javascript
          case "typescript": .typescript
          default: .python
          }
        $0.code = code
        $0.stdin = stdin
        $0.files = files.map { file in
          .with {
            $0.name = file.name
            $0.content = file.content
          }
        }
        $0.limits = .with {
          $0.timeoutMs = Int32(Self.number(config["timeout_ms"]) ?? 10_000)
          $0.memoryMb = Int32(Self.number(config["memory_mb"]) ?? 256)
        }
        $0.blockOnCritical = config["block_on_critical"].map { $0 == .bool(true) } ?? true
      }, options: Self.options(credential, timeout: timeout))
    let citation: JSONValue = .object([
      "type": .string("code"), "execution_id": .string(execution.id), "status": .string("\(execution.status)"),
      "exit_code": execution.hasExitCode ? .number(Double(execution.exitCode)) : .null,
      "stdout": .string(execution.stdout.truncated(toUTF8Bytes: 4000)),
    ])
    if execution.status != .completed {
      throw PluginFailure(
        code: "code_failed", message: "The program did not complete (\(execution.terminationReason)): \(execution.stderr.truncated(toUTF8Bytes: 500))",
        citation: citation)
    }
    return Result(summary: execution.stdout.truncated(toUTF8Bytes: 1000), citations: [citation], detail: .object([:]))
  }

  /// The file_upload plugin: the files named for the sandbox (which gets them with each program),
  /// or made documents of the plugin's knowledge base, tagged with the execution, and waited for
  /// until searchable.
  func handOver(
    _ files: [ExecutionFile], config: [String: JSONValue], execution: UUID, credential: Credential, timeout: Duration
  ) async throws -> Result {
    let names = files.map(\.name)
    guard config["target"]?.stringValue == "knowledge", let base = config["knowledge_base_id"]?.stringValue else {
      return Result(
        summary: "\(files.count) file(s) for the sandbox: \(names.joined(separator: ", "))",
        citations: files.map { .object(["type": .string("file"), "name": .string($0.name), "bytes": .number(Double($0.content.count))]) },
        detail: .object(["files": .array(names.map { .string($0) })]))
    }
    let options = Self.options(credential, timeout: timeout)
    var documents: [Platform_Knowledge_V1_Document] = []
    for file in files {
      documents.append(
        try await self.knowledge.createDocument(
          .with {
            $0.knowledgeBaseID = base
            $0.title = file.name
            $0.file = file.content
            $0.fileName = file.name
            $0.contentType = file.contentType == "application/octet-stream" ? "" : file.contentType
            $0.tags = [Self.executionFileTag]
            $0.metadata = Self.executionMetadata(execution)
          }, options: options))
    }
    // Searchable once chunked and embedded: wait, within the plugin's time.
    let deadline = ContinuousClock.now + timeout
    for index in documents.indices {
      while documents[index].status != .ready {
        if documents[index].status == .failed {
          throw PluginFailure(
            code: "file_not_indexed", message: "\(documents[index].title) could not be read: \(documents[index].statusMessage)",
            citation: .object(["type": .string("file"), "name": .string(documents[index].title), "document_id": .string(documents[index].id)]))
        }
        guard ContinuousClock.now < deadline else { throw RPCError(.deadlineExceeded, "\(documents[index].title) was not indexed in time") }
        try await Task.sleep(for: .milliseconds(50))
        documents[index] = try await self.knowledge.getDocument(.with { $0.id = documents[index].id }, options: options)
      }
    }
    return Result(
      summary: "\(files.count) file(s) added to the knowledge base for this run: \(names.joined(separator: ", "))",
      citations: documents.map { .object(["type": .string("file"), "name": .string($0.title), "document_id": .string($0.id)]) },
      detail: .object(["documents": .array(documents.map { .string($0.id) })]))
  }

  /// The tag of the documents file_upload makes; their metadata names the execution.
  static let executionFileTag = "execution-file"

  static func executionMetadata(_ execution: UUID) -> Google_Protobuf_Struct {
    JSONValue.object(["execution_id": .string(execution.lowercasedString)]).protobufStruct
  }

  /// Deletes the documents file_upload made of an execution's files, found by their tag and
  /// metadata (ListDocuments' filter), so those of an attempt that died before it could delete
  /// them go too. Returns how many were deleted.
  func deleteExecutionDocuments(of execution: UUID, credential: Credential) async throws -> Int {
    let options = Self.options(credential, timeout: .seconds(10))
    let filter = Platform_Knowledge_V1_SearchFilter.with {
      $0.tagsAny = [Self.executionFileTag]
      $0.metadata = Self.executionMetadata(execution)
    }
    var deleted = 0
    // Deleted documents leave the listing at once: the first page again until it is short. A run
    // makes at most a few dozen; the bound only stops a loop that deletes nothing.
    for _ in 0..<100 {
      let page = try await self.knowledge.listDocuments(.with { $0.filter = filter; $0.pageSize = 100 }, options: options)
      for document in page.documents {
        do {
          _ = try await self.knowledge.deleteDocument(.with { $0.id = document.id }, options: options)
          deleted += 1
        } catch let error as RPCError where error.code == .notFound {
          continue
        }
      }
      if page.documents.count < 100 { break }
    }
    return deleted
  }

  /// The strings of a JSON array (none for anything else).
  static func strings(_ value: JSONValue?) -> [String] {
    guard case .array(let values)? = value else { return [] }
    return values.compactMap(\.stringValue)
  }

  static func number(_ value: JSONValue?) -> Double? {
    if case .number(let number)? = value { return number }
    return nil
  }
}

/// A plugin call that ran but did not succeed; what it produced is still cited.
struct PluginFailure: Error {
  var code: String
  var message: String
  var citation: JSONValue?
}
