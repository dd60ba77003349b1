internal import Foundation
internal import GRPCRuntime
public import PlatformCore
internal import PlatformProtos
internal import SwiftProtobuf

/// How a run's node calls authenticate to the other services: the credential of whoever
/// started (or resumed) the run, as it came (`authorization: Bearer …` or `x-api-key`).
public struct RunCredential: Sendable, Equatable {
  public var header: String
  public var value: String

  public init(header: String, value: String) {
    self.header = header
    self.value = value
  }

  /// The credential of the call being handled, if it has one.
  public static var ofCurrentCall: RunCredential? {
    guard let metadata = ServerContext.current?.requestMetadata else { return nil }
    if let authorization = metadata.firstString(forKey: "authorization") { return RunCredential(header: "authorization", value: authorization) }
    if let key = metadata.firstString(forKey: "x-api-key") { return RunCredential(header: "x-api-key", value: key) }
    return nil
  }

  var sealedText: String { "\(self.header)\n\(self.value)" }

  init?(sealedText: String) {
    let parts = sealedText.split(separator: "\n", maxSplits: 1)
    guard parts.count == 2, ["authorization", "x-api-key"].contains(parts[0]) else { return nil }
    self.init(header: String(parts[0]), value: String(parts[1]))
  }
}

/// The services nodes call: agent executions, persona renders, knowledge search, text-to-SQL,
/// the code sandbox. Each call carries the run's credential, the node's remaining time and
/// the trace context (the channels add it).
public struct WorkflowPeers: Sendable {
  let agent: Platform_Agent_V1_ExecutionServiceClient
  let persona: Platform_Persona_V1_PersonaServiceClient
  let knowledge: Platform_Knowledge_V1_KnowledgeServiceClient
  let textToSQL: Platform_Texttosql_V1_QueryServiceClient
  let sandbox: Platform_Codesandbox_V1_CodeSandboxServiceClient

  public init(_ channels: PeerChannels) {
    self.agent = .init(channel: channels.channel(.agent))
    self.persona = .init(channel: channels.channel(.persona))
    self.knowledge = .init(channel: channels.channel(.knowledge))
    self.textToSQL = .init(channel: channels.channel(.textToSQL))
    self.sandbox = .init(channel: channels.channel(.codeSandbox))
  }

  static func options(_ credential: RunCredential?, timeout: Duration) throws(NodeFailure) -> CallOptions {
    guard let credential else {
      throw NodeFailure(
        code: "credentials_unavailable",
        message: "The run has no credentials to call other services with (it was resumed after a restart without WORKFLOW_ENCRYPTION_KEY); resume it")
    }
    var options = CallOptions(timeout: timeout)
    options.metadata.addString(credential.value, forKey: credential.header)
    return options
  }

  /// An RPC failure as a node failure: retryable when the peer was unavailable, overloaded or
  /// out of time.
  static func failure(_ error: any Error, service: String) -> NodeFailure {
    if let failure = error as? NodeFailure { return failure }
    guard let rpc = error as? RPCError else { return NodeFailure(code: "internal", message: "\(service): \(error)") }
    let retryable: Bool = [.unavailable, .deadlineExceeded, .resourceExhausted, .aborted].contains(rpc.code)
    return NodeFailure(code: "\(rpc.code)".lowercased(), message: "\(service): \(rpc.message)", retryable: retryable)
  }

  func runAgent(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    let options = try Self.options(context.credential, timeout: context.timeout)
    do {
      let execution = try await self.agent.startExecution(
        .with {
          $0.agentID = data["agent_id"]?.stringValue ?? ""
          $0.input = JSONValue.object(["message": .string(References.text(of: data["message"] ?? .null))]).protobufStruct
          $0.workflowID = context.workflowID.lowercasedString
          $0.sync = true
          // One agent run per node attempt, even if this call is retried by the transport.
          $0.requestID = context.requestID.lowercasedString
        }, options: options)
      let output = JSONValue(execution.output)
      guard execution.status == .completed else {
        throw NodeFailure(
          code: "agent_\(execution.status)".lowercased(), message: "The agent execution \(execution.id) ended \(execution.status): \(execution.error.message)",
          retryable: execution.error.details["transient"] == "true")
      }
      let fields = output.objectValue ?? [:]
      return NodeOutcome(
        output: .object([
          "text": fields["answer"] ?? .string(""), "execution_id": .string(execution.id), "status": .string("completed"),
          "citations": fields["citations"] ?? .array([]),
        ]), cost: execution.usage.costUsd, childExecutionID: execution.id)
    } catch {
      throw Self.failure(error, service: "agent")
    }
  }

  func render(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    let options = try Self.options(context.credential, timeout: context.timeout)
    do {
      let response = try await self.persona.renderPersona(
        .with {
          $0.personaID = data["persona_id"]?.stringValue ?? ""
          $0.variables = (data["variables"] ?? .object([:])).protobufStruct
        }, options: options)
      return NodeOutcome(output: .object(["text": .string(response.text)]))
    } catch {
      throw Self.failure(error, service: "persona")
    }
  }

  func search(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    let options = try Self.options(context.credential, timeout: context.timeout)
    do {
      let response = try await self.knowledge.search(
        .with {
          if case .array(let ids)? = data["knowledge_base_ids"] { $0.knowledgeBaseIds = ids.compactMap(\.stringValue) }
          $0.query = References.text(of: data["query"] ?? .null)
          $0.mode =
            switch data["mode"]?.stringValue {
            case "vector": .vector
            case "keyword": .keyword
            default: .hybrid
            }
          $0.topK = Int32(data["top_k"]?.intValue ?? 5)
        }, options: options)
      let results: [JSONValue] = response.results.map { result in
        .object([
          "document_id": .string(result.documentID), "chunk_id": .string(result.chunk.id), "title": .string(result.documentTitle),
          "score": .number(result.score), "content": .string(result.chunk.content),
        ])
      }
      return NodeOutcome(output: .object(["results": .array(results), "count": .number(Double(results.count))]))
    } catch {
      throw Self.failure(error, service: "knowledge")
    }
  }

  func query(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    let options = try Self.options(context.credential, timeout: context.timeout)
    do {
      let databaseID = data["database_id"]?.stringValue ?? ""
      let maxRows = Int32(data["max_rows"]?.intValue ?? 1000)
      let query: Platform_Texttosql_V1_SqlQuery
      let result: Platform_Texttosql_V1_QueryResult
      if let sql = data["sql"] {
        let response = try await self.textToSQL.executeQuery(
          .with {
            $0.databaseID = databaseID
            $0.sql = References.text(of: sql)
            $0.maxRows = maxRows
          }, options: options)
        (query, result) = (response.query, response.result)
      } else {
        let response = try await self.textToSQL.askQuestion(
          .with {
            $0.databaseID = databaseID
            $0.question = References.text(of: data["question"] ?? .null)
            $0.maxRows = maxRows
          }, options: options)
        guard response.hasResult else {
          throw NodeFailure(code: "sql_refused", message: "The generated SQL was not run: \(response.query.validation.issues.joined(separator: "; "))")
        }
        (query, result) = (response.query, response.result)
      }
      let rows = result.rows.map { JSONValue.array($0.values.map(JSONValue.init)) }
      return NodeOutcome(
        output: .object([
          "sql": .string(query.sql), "columns": .array(result.columns.map { .string($0.name) }), "rows": .array(rows),
          "row_count": .number(Double(rows.count)),
        ]))
    } catch {
      throw Self.failure(error, service: "text-to-sql")
    }
  }

  func runCode(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    let options = try Self.options(context.credential, timeout: context.timeout)
    do {
      let execution = try await self.sandbox.executeCode(
        .with {
          $0.language =
            switch data["language"]?.stringValue {
            case "javascript": .javascript
            case "typescript": .typescript
            default: .python
            }
          $0.code = data["code"]?.stringValue ?? ""
          $0.stdin = References.text(of: data["stdin"] ?? .null)
        }, options: options)
      guard execution.status == .completed else {
        throw NodeFailure(
          code: "code_failed", message: "The program did not complete (\(execution.terminationReason)): \(execution.stderr.truncated(toUTF8Bytes: 500))")
      }
      // Output that is JSON is also given parsed.
      let json = (try? JSONValue(jsonText: String(execution.stdout.trimming(" \n\r\t")), maxDepth: NestingLimit.defaultDepth)) ?? .null
      return NodeOutcome(
        output: .object([
          "stdout": .string(execution.stdout), "stderr": .string(execution.stderr),
          "exit_code": execution.hasExitCode ? .number(Double(execution.exitCode)) : .null, "json": json,
        ]), childExecutionID: execution.id)
    } catch {
      throw Self.failure(error, service: "code-sandbox")
    }
  }
}
