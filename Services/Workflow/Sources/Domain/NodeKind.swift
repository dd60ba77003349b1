internal import Foundation
public import PlatformCore

/// What a node does.
public enum NodeKind: String, Sendable, CaseIterable {
  case start, end, agent, llm, persona
  case knowledgeRetrieval = "knowledge_retrieval"
  case textToSQL = "text_to_sql"
  case code, http, condition, template
  case variableAssign = "variable_assign"
  case iteration, aggregate, wait
  /// Canvas-only: never runs, takes no edges.
  case note

  /// The kind a node's `type` names ("input" and "output" are the contract's first names for
  /// start and end).
  public init?(type: String) {
    switch type {
    case "input": self = .start
    case "output": self = .end
    default: self.init(rawValue: type)
    }
  }

  /// The kinds an iteration may run per item.
  static let iterable: Set<NodeKind> = [.agent, .llm, .persona, .knowledgeRetrieval, .textToSQL, .code, .http, .template, .variableAssign]

  /// The output fields a node of this kind produces, for checking references; nil when they
  /// depend on the data in ways not known before it runs.
  func outputFields(_ data: [String: JSONValue]) -> Set<String>? {
    switch self {
    case .start: data["inputs"]?.objectValue.map { Set($0.keys) }
    case .end, .aggregate, .note: nil
    case .agent: ["text", "execution_id", "status", "citations"]
    case .llm: ["text", "model", "usage"]
    case .persona: ["text"]
    case .knowledgeRetrieval: ["results", "count"]
    case .textToSQL: ["sql", "columns", "rows", "row_count"]
    case .code: ["stdout", "stderr", "exit_code", "json"]
    case .http: ["status", "headers", "body"]
    case .condition: ["branch", "result"]
    case .template: ["text"]
    case .variableAssign: data["variables"]?.objectValue.map { Set($0.keys) }
    case .iteration: ["results", "count"]
    case .wait: ["waited_ms"]
    }
  }

  /// Whether running the node again after an interruption cannot repeat an effect outside the
  /// platform: reads, renders and sandboxed code are; an agent run and an HTTP request with a
  /// method that is not idempotent (POST, PATCH) are not.
  func isIdempotent(_ data: [String: JSONValue]) -> Bool {
    switch self {
    case .agent: false
    case .http: ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].contains((data["method"]?.stringValue ?? "GET").uppercased())
    case .iteration:
      NodeKind(type: data["node"]?.objectValue?["type"]?.stringValue ?? "")
        .map { $0.isIdempotent(data["node"]?.objectValue?["data"]?.objectValue ?? [:]) } ?? false
    default: true
    }
  }

  /// The handles a node's outgoing edges may start from (nil = any); `fail` is always allowed
  /// with `on_error: fail_branch`.
  func handles(_ data: [String: JSONValue]) -> Set<String>? {
    guard self == .condition else { return nil }
    if case .array(let cases)? = data["cases"] {
      return Set(cases.compactMap { $0.objectValue?["id"]?.stringValue }).union(["else"])
    }
    return ["true", "false"]
  }

  /// What is wrong with `data` for this kind, each as `data.<key>: reason`. Expressions are
  /// checked by the validator (they are INVALID_CONDITION issues), references too.
  func problems(_ data: [String: JSONValue]) -> [String] {
    var problems: [String] = []
    func require(_ key: String, _ check: (JSONValue) -> String?) {
      guard let value = data[key], value != .null else {
        problems.append("data.\(key): is required")
        return
      }
      if let problem = check(value) { problems.append("data.\(key): \(problem)") }
    }
    func optional(_ key: String, _ check: (JSONValue) -> String?) {
      guard let value = data[key], value != .null else { return }
      if let problem = check(value) { problems.append("data.\(key): \(problem)") }
    }
    switch self {
    case .start:
      optional("inputs") { value in
        guard let fields = value.objectValue else { return "must be an object of field name to {\"type\", \"required\"}" }
        for (name, field) in fields {
          guard let spec = field.objectValue else { return "\(name) must be an object" }
          if let type = spec["type"]?.stringValue, !Self.inputTypes.contains(type) {
            return "\(name).type must be one of \(Self.inputTypes.sorted().joined(separator: ", "))"
          }
        }
        return nil
      }
    case .end, .note:
      break
    case .agent:
      require("agent_id", Self.idOrReference)
      require("message", Self.text(maxBytes: 65536))
    case .llm:
      require("prompt", Self.text(maxBytes: 65536))
      optional("system", Self.text(maxBytes: 65536))
      optional("model", Self.text(maxBytes: 100))
      optional("temperature", Self.number(0...2))
      optional("max_tokens", Self.number(1...128_000))
    case .persona:
      require("persona_id", Self.idOrReference)
      optional("variables") { $0.objectValue == nil && !Self.isReference($0) ? "must be an object" : nil }
    case .knowledgeRetrieval:
      require("knowledge_base_ids") { value in
        if Self.isReference(value) { return nil }
        guard case .array(let ids) = value, (1...20).contains(ids.count) else { return "must be 1 to 20 knowledge base ids" }
        return ids.allSatisfy({ Self.idOrReference($0) == nil }) ? nil : "must hold UUIDs"
      }
      require("query", Self.text(maxBytes: 8192))
      optional("top_k", Self.number(1...50))
      optional("mode") { ["vector", "keyword", "hybrid"].contains($0.stringValue ?? "") ? nil : "must be vector, keyword or hybrid" }
    case .textToSQL:
      require("database_id", Self.idOrReference)
      let question = data["question"], sql = data["sql"]
      if (question == nil) == (sql == nil) { problems.append("data.question: give exactly one of question (ask) or sql (execute)") }
      optional("question", Self.text(maxBytes: 8192))
      optional("sql", Self.text(maxBytes: 65536))
    case .code:
      require("language", Self.text(maxBytes: 20))
      require("code", Self.text(maxBytes: 65536))
      optional("stdin", Self.text(maxBytes: 65536))
    case .http:
      require("url", Self.text(maxBytes: 2048))
      optional("method") { ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains($0.stringValue?.uppercased() ?? "") ? nil : "must be GET, POST, PUT, PATCH, DELETE or HEAD" }
      optional("headers") { value in
        guard let headers = value.objectValue, headers.count <= 50 else { return "must be an object of at most 50 headers" }
        return headers.values.allSatisfy({ $0.stringValue != nil }) ? nil : "header values must be strings"
      }
    case .condition:
      if data["expression"] == nil && data["cases"] == nil { problems.append("data.expression: give an expression (if/else) or cases") }
      optional("expression") { $0.stringValue == nil ? "must be a string" : nil }
      optional("cases") { value in
        guard case .array(let cases) = value, (1...50).contains(cases.count) else { return "must be 1 to 50 cases" }
        var ids = Set<String>()
        for item in cases {
          guard let object = item.objectValue, let id = object["id"]?.stringValue, !id.isEmpty, id.utf8.count <= 100, id != "else", id != "fail",
            object["expression"]?.stringValue != nil
          else { return "each case needs an id (not else or fail) and an expression" }
          guard ids.insert(id).inserted else { return "case \(id) appears twice" }
        }
        return nil
      }
    case .template:
      require("template") { value in
        guard let text = value.stringValue, text.utf8.count <= 65536 else { return "must be a string of at most 65536 bytes" }
        do {
          _ = try TextTemplate(text)
        } catch {
          return "\(error)"
        }
        return nil
      }
    case .variableAssign:
      require("variables") { value in
        guard let variables = value.objectValue, (1...100).contains(variables.count) else { return "must be an object of 1 to 100 variables" }
        return nil
      }
    case .iteration:
      require("items") { value in
        if Self.isReference(value) { return nil }
        guard case .array = value else { return "must be a list or a reference to one" }
        return nil
      }
      optional("concurrency", Self.number(1...100))
      require("node") { value in
        guard let node = value.objectValue, let type = node["type"]?.stringValue, let kind = NodeKind(type: type), Self.iterable.contains(kind) else {
          return "must be {\"type\": …, \"data\": …} with a type of \(Self.iterable.map(\.rawValue).sorted().joined(separator: ", "))"
        }
        let inner = kind.problems(node["data"]?.objectValue ?? [:])
        return inner.isEmpty ? nil : "node: " + inner.joined(separator: "; ")
      }
    case .aggregate:
      optional("mode") { ["merge", "list", "first"].contains($0.stringValue ?? "") ? nil : "must be merge, list or first" }
    case .wait:
      require("seconds", Self.number(0...3600))
    }
    return problems
  }

  static let inputTypes: Set<String> = ["string", "number", "integer", "boolean", "object", "array"]

  static func isReference(_ value: JSONValue) -> Bool {
    guard let text = value.stringValue?.trimming(" "), text.hasPrefix("{{"), text.hasSuffix("}}") else { return false }
    return References.spans(in: String(text)).count == 1
  }

  static func idOrReference(_ value: JSONValue) -> String? {
    if Self.isReference(value) { return nil }
    guard let text = value.stringValue, UUID(strict: text) != nil else { return "must be a UUID (or a reference to one)" }
    return nil
  }

  static func text(maxBytes: Int) -> (JSONValue) -> String? {
    { value in
      guard let text = value.stringValue, !text.isEmpty, text.utf8.count <= maxBytes else { return "must be text of 1 to \(maxBytes) bytes" }
      return nil
    }
  }

  static func number(_ range: ClosedRange<Double>) -> (JSONValue) -> String? {
    { value in
      if Self.isReference(value) { return nil }
      guard case .number(let number) = value, range.contains(number) else {
        return "must be a number from \(References.text(of: .number(range.lowerBound))) to \(References.text(of: .number(range.upperBound)))"
      }
      return nil
    }
  }
}

/// How a node is retried and what its failure does to the run (data keys `retry`, `on_error`,
/// `default_output`).
public struct NodePolicy: Sendable, Equatable {
  public enum OnError: Sendable, Equatable {
    /// The run fails.
    case fail
    /// The node completes with this output and the run goes on.
    case useDefault(JSONValue)
    /// The edges from the node's `fail` handle are followed instead of the others; the output
    /// is `{"error": {"code", "message"}}`.
    case failBranch
  }

  public var maxAttempts: Int
  public var backoff: Duration
  public var timeout: Duration
  public var onError: OnError

  public static let defaultTimeout = Duration.seconds(300)

  /// The policy in `data`, or why it is wrong.
  public static func parse(_ data: [String: JSONValue], kind: NodeKind) -> (policy: NodePolicy, problems: [String]) {
    var problems: [String] = []
    var policy = NodePolicy(maxAttempts: 1, backoff: .milliseconds(500), timeout: Self.defaultTimeout, onError: .fail)
    if kind == .wait, case .number(let seconds)? = data["seconds"], seconds.isFinite {
      policy.timeout = .milliseconds(Int64(max(seconds, 0) * 1000)) + .seconds(60)
    }
    if let retry = data["retry"], retry != .null {
      if let object = retry.objectValue {
        if let value = object["max_attempts"] {
          if let attempts = value.intValue, (1...10).contains(attempts) { policy.maxAttempts = attempts } else {
            problems.append("data.retry.max_attempts: must be 1 to 10")
          }
        }
        if let value = object["backoff_ms"] {
          if let milliseconds = value.intValue, (0...60_000).contains(milliseconds) { policy.backoff = .milliseconds(milliseconds) } else {
            problems.append("data.retry.backoff_ms: must be 0 to 60000")
          }
        }
        if let value = object["timeout_seconds"] {
          if case .number(let seconds) = value, seconds > 0, seconds <= 3600 { policy.timeout = .milliseconds(Int64(seconds * 1000)) } else {
            problems.append("data.retry.timeout_seconds: must be more than 0 and at most 3600")
          }
        }
      } else {
        problems.append("data.retry: must be an object with max_attempts, backoff_ms, timeout_seconds")
      }
    }
    switch data["on_error"] {
    case nil, .null?, .string("fail")?: break
    case .string("default")?: policy.onError = .useDefault(data["default_output"] ?? .object([:]))
    case .string("fail_branch")?: policy.onError = .failBranch
    default: problems.append("data.on_error: must be fail, default or fail_branch")
    }
    return (policy, problems)
  }
}
