public import Foundation
public import PlatformCore

/// What a node's attempt runs with.
public struct NodeContext: Sendable {
  public var executionID: UUID
  public var workflowID: UUID
  public var nodeID: String
  public var attempt: Int
  public var credential: RunCredential?
  /// The attempt's time limit.
  public var timeout: Duration
  /// The run's input and the outputs of the nodes that completed before this one.
  public var scope: RunScope

  /// The same id for every retry of the same call of this attempt (idempotency key for agent
  /// executions): derived from run, node, attempt and iteration item.
  public var requestID: UUID {
    WorkflowRuns.requestID(for: "node-attempt:\(self.executionID.lowercasedString)/\(self.nodeID)/\(self.attempt)/\(self.scope.index ?? -1)")
  }
}

/// The values references read: `input`, `nodes.<id>.output`, and inside an iteration `item`
/// and `index`.
public struct RunScope: Sendable {
  public var input: JSONValue
  public var outputs: [String: JSONValue]
  public var item: JSONValue?
  public var index: Int?

  public init(input: JSONValue, outputs: [String: JSONValue], item: JSONValue? = nil, index: Int? = nil) {
    self.input = input
    self.outputs = outputs
    self.item = item
    self.index = index
  }

  public func lookup(_ path: [String]) -> JSONValue? {
    switch path.first {
    case "input": return References.value(at: path.dropFirst(), in: self.input)
    case "nodes":
      guard path.count >= 3, path[2] == "output", let output = self.outputs[path[1]] else { return nil }
      return References.value(at: path.dropFirst(3), in: output)
    case "item": return self.item.flatMap { References.value(at: path.dropFirst(), in: $0) }
    case "index": return path.count == 1 ? self.index.map { .number(Double($0)) } : nil
    default: return nil
    }
  }

  /// The Mustache variables of a template node.
  var templateVariables: [String: JSONValue] {
    var variables: [String: JSONValue] = [
      "input": self.input, "nodes": .object(self.outputs.mapValues { .object(["output": $0]) }),
    ]
    if let item = self.item { variables["item"] = item }
    if let index = self.index { variables["index"] = .number(Double(index)) }
    return variables
  }
}

/// What an attempt produced.
public struct NodeOutcome: Sendable {
  public var output: JSONValue
  public var cost: Double?
  public var childExecutionID: String?

  public init(output: JSONValue, cost: Double? = nil, childExecutionID: String? = nil) {
    self.output = output
    self.cost = cost
    self.childExecutionID = childExecutionID
  }
}

/// Runs one attempt of a node of each kind: the local kinds here, the others through the
/// services they call.
public struct NodeExecutors: Sendable {
  let peers: WorkflowPeers?
  let http: EgressHTTPClient
  let chat: ChatCompletionsClient?
  let prices: [String: ModelPrice]
  let limits: WorkflowLimits

  public init(
    peers: WorkflowPeers?, http: EgressHTTPClient, chat: ChatCompletionsClient?, prices: [String: ModelPrice] = [:],
    limits: WorkflowLimits
  ) {
    self.peers = peers
    self.http = http
    self.chat = chat
    self.prices = prices
    self.limits = limits
  }

  /// The keys of a kind's data that are not resolved before it runs (the kind reads them itself).
  static func unresolvedKeys(_ kind: NodeKind) -> Set<String> {
    switch kind {
    case .template: ["template"]
    case .condition: ["cases", "expression"]
    case .iteration: ["node"]
    default: []
    }
  }

  /// `data` with its references resolved (the keys the kind reads itself left as they are) and
  /// the policy keys removed.
  func resolved(_ data: [String: JSONValue], kind: NodeKind, scope: RunScope) throws(NodeFailure) -> [String: JSONValue] {
    var data = data
    for key in ["retry", "on_error", "default_output"] { data.removeValue(forKey: key) }
    var kept: [String: JSONValue] = [:]
    for key in Self.unresolvedKeys(kind) { kept[key] = data.removeValue(forKey: key) }
    do {
      var resolved = try References.resolve(.object(data), maxBytes: self.limits.maxOutputBytes, lookup: scope.lookup).objectValue ?? [:]
      resolved.merge(kept) { new, _ in new }
      return resolved
    } catch {
      throw NodeFailure(code: "invalid_reference", message: error.reason)
    }
  }

  /// One attempt of `node`, with `data` already resolved.
  /// - Parameter upstream: the outputs of its direct predecessors that completed, in edge order.
  func execute(
    _ kind: NodeKind, data: [String: JSONValue], upstream: [(id: String, output: JSONValue)], context: NodeContext
  ) async throws(NodeFailure) -> NodeOutcome {
    switch kind {
    case .start:
      return NodeOutcome(output: context.scope.input)
    case .end:
      if let output = data["output"] { return NodeOutcome(output: output) }
      if upstream.count == 1 { return NodeOutcome(output: upstream[0].output) }
      return NodeOutcome(output: .object(Dictionary(upstream.map { ($0.id, $0.output) }, uniquingKeysWith: { first, _ in first })))
    case .note:
      return NodeOutcome(output: .null)
    case .template:
      do {
        let template = try TextTemplate(data["template"]?.stringValue ?? "")
        let text = try template.render(context.scope.templateVariables, maxCharacters: self.limits.maxOutputBytes)
        return NodeOutcome(output: .object(["text": .string(text)]))
      } catch {
        throw NodeFailure(code: "template", message: "\(error)")
      }
    case .condition:
      return NodeOutcome(output: try Self.branch(data, scope: context.scope))
    case .variableAssign:
      return NodeOutcome(output: data["variables"] ?? .object([:]))
    case .aggregate:
      switch data["mode"]?.stringValue ?? "merge" {
      case "list": return NodeOutcome(output: .object(["items": .array(upstream.map(\.output))]))
      case "first": return NodeOutcome(output: upstream.first?.output ?? .null)
      default: return NodeOutcome(output: .object(Dictionary(upstream.map { ($0.id, $0.output) }, uniquingKeysWith: { first, _ in first })))
      }
    case .wait:
      let seconds: Double = if case .number(let value)? = data["seconds"] { min(max(value, 0), 3600) } else { 0 }
      let started = ContinuousClock.now
      do {
        try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
      } catch {
        throw NodeFailure(code: "cancelled", message: "Cancelled while waiting")
      }
      return NodeOutcome(output: .object(["waited_ms": .number(Double((ContinuousClock.now - started).wholeMilliseconds))]))
    case .http:
      return try await self.request(data, context: context)
    case .llm:
      return try await self.complete(data, context: context)
    case .iteration:
      return try await self.iterate(data, context: context)
    case .agent, .persona, .knowledgeRetrieval, .textToSQL, .code:
      guard let peers = self.peers else { throw NodeFailure(code: "unavailable", message: "This service was started without its peers") }
      switch kind {
      case .agent: return try await peers.runAgent(data, context: context)
      case .persona: return try await peers.render(data, context: context)
      case .knowledgeRetrieval: return try await peers.search(data, context: context)
      case .textToSQL: return try await peers.query(data, context: context)
      default: return try await peers.runCode(data, context: context)
      }
    }
  }

  /// A condition's output: the first case that holds, or the else branch.
  static func branch(_ data: [String: JSONValue], scope: RunScope) throws(NodeFailure) -> JSONValue {
    var cases: [(String, String)] = []
    var elseHandle = "else"
    if case .array(let list)? = data["cases"] {
      for item in list {
        if let object = item.objectValue, let id = object["id"]?.stringValue, let source = object["expression"]?.stringValue { cases.append((id, source)) }
      }
    } else if let source = data["expression"]?.stringValue {
      cases = [("true", source)]
      elseHandle = "false"
    }
    for (handle, source) in cases {
      do {
        if try ConditionExpression(parsing: source).isTrue(scope.lookup) {
          return .object(["branch": .string(handle), "result": .bool(true)])
        }
      } catch {
        throw NodeFailure(code: "condition", message: "Case \(handle): \(error)")
      }
    }
    return .object(["branch": .string(elseHandle), "result": .bool(false)])
  }

  func request(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    let method = (data["method"]?.stringValue ?? "GET").uppercased()
    guard let text = data["url"]?.stringValue, let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
      url.host != nil
    else {
      throw NodeFailure(code: "invalid_url", message: "data.url must be an http(s) URL (it resolved to \(References.text(of: data["url"] ?? .null).prefix(200)))")
    }
    var headers: [(String, String)] = (data["headers"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.compactMap { key, value in
      value.stringValue.map { (key, $0) }
    }
    var body = Data()
    if let payload = data["body"], payload != .null, method != "GET", method != "HEAD" {
      if case .string(let text) = payload {
        body = Data(text.utf8)
      } else {
        body = Data(payload.jsonText.utf8)
        if !headers.contains(where: { $0.0.lowercased() == "content-type" }) { headers.append(("content-type", "application/json")) }
      }
    }
    let response: EgressHTTPClient.Response
    do {
      response = try await self.http.send(method, url, headers: headers, body: body, timeout: context.timeout)
    } catch {
      switch error {
      case .refused, .invalidURL:
        throw NodeFailure(code: "egress_refused", message: "\(method) \(url.host ?? ""): \(error)")
      case .tooLarge:
        throw NodeFailure(code: "response_too_large", message: "\(method) \(url.host ?? ""): \(error)")
      case .timedOut, .connection:
        throw NodeFailure(code: "http_unavailable", message: "\(method) \(url.host ?? ""): \(error)", retryable: true)
      }
    }
    let bodyText = String(decoding: response.body, as: UTF8.self)
    let contentType = response.headers.first { $0.0.lowercased() == "content-type" }?.1.lowercased() ?? ""
    let parsed: JSONValue =
      contentType.contains("json") ? ((try? JSONValue(jsonText: bodyText, maxDepth: NestingLimit.defaultDepth)) ?? .string(bodyText)) : .string(bodyText)
    guard (200..<300).contains(response.status) else {
      throw NodeFailure(
        code: "http_\(response.status)", message: "\(method) \(url.host ?? "") answered \(response.status): \(bodyText.truncated(toUTF8Bytes: 300))",
        retryable: response.status == 429 || response.status == 408 || response.status >= 500)
    }
    var responseHeaders: [String: JSONValue] = [:]
    for (name, value) in response.headers.prefix(100) { responseHeaders[name.lowercased()] = .string(value) }
    return NodeOutcome(output: .object(["status": .number(Double(response.status)), "headers": .object(responseHeaders), "body": parsed]))
  }

  func complete(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    guard let chat = self.chat else {
      throw NodeFailure(code: "no_model", message: "No model provider is configured (LLM_PROVIDER=openai with LLM_BASE_URL and LLM_MODEL)")
    }
    var messages: [ChatCompletionsClient.Message] = []
    if let system = data["system"], system != .null { messages.append(.init(role: "system", content: References.text(of: system))) }
    messages.append(.init(role: "user", content: References.text(of: data["prompt"] ?? .null)))
    do {
      let completion = try await chat.complete(messages, json: false, maxTokens: data["max_tokens"]?.intValue ?? 1024)
      let model = chat.provider.model
      let cost = (self.prices[model] ?? .free).cost(promptTokens: completion.promptTokens, completionTokens: completion.completionTokens)
      return NodeOutcome(
        output: .object([
          "text": .string(completion.content), "model": .string(model),
          "usage": .object([
            "prompt_tokens": .number(Double(completion.promptTokens)), "completion_tokens": .number(Double(completion.completionTokens)),
          ]),
        ]), cost: cost)
    } catch {
      throw NodeFailure(code: "model", message: error.description, retryable: error.isTransient)
    }
  }

  /// Runs the inner node once per item, at most `concurrency` at a time, results in item order.
  func iterate(_ data: [String: JSONValue], context: NodeContext) async throws(NodeFailure) -> NodeOutcome {
    guard case .array(let items)? = data["items"] else {
      throw NodeFailure(code: "invalid_items", message: "data.items must resolve to a list (it is \((data["items"] ?? .null).typeName))")
    }
    guard items.count <= self.limits.maxIterationItems else {
      throw NodeFailure(code: "too_many_items", message: "data.items has \(items.count) items; an iteration takes at most \(self.limits.maxIterationItems)")
    }
    guard let inner = data["node"]?.objectValue, let kind = NodeKind(type: inner["type"]?.stringValue ?? ""), NodeKind.iterable.contains(kind) else {
      throw NodeFailure(code: "invalid_node", message: "data.node must name a kind an iteration can run")
    }
    let innerData = inner["data"]?.objectValue ?? [:]
    let concurrency = min(max(data["concurrency"]?.intValue ?? 4, 1), self.limits.maxParallel)
    var results = [JSONValue](repeating: .null, count: items.count)
    var cost = 0.0
    var bytes = 0
    let outcome: Result<Void, NodeFailure> = await withTaskGroup(of: (Int, Result<NodeOutcome, NodeFailure>).self) { group in
      var next = 0
      func launch() {
        let index = next
        next += 1
        var itemContext = context
        itemContext.scope.item = items[index]
        itemContext.scope.index = index
        let captured = itemContext
        group.addTask {
          do throws(NodeFailure) {
            let resolved = try self.resolved(innerData, kind: kind, scope: captured.scope)
            return (index, .success(try await self.execute(kind, data: resolved, upstream: [], context: captured)))
          } catch {
            return (index, .failure(error))
          }
        }
      }
      while next < min(concurrency, items.count) { launch() }
      for await (index, result) in group {
        switch result {
        case .success(let outcome):
          results[index] = outcome.output
          cost += outcome.cost ?? 0
          bytes += outcome.output.jsonText.utf8.count
          if bytes > self.limits.maxOutputBytes {
            group.cancelAll()
            return .failure(NodeFailure(code: "output_too_large", message: "The iteration's results exceed \(self.limits.maxOutputBytes) bytes"))
          }
        case .failure(let failure):
          group.cancelAll()
          return .failure(NodeFailure(code: failure.code, message: "Item \(index): \(failure.message)", retryable: failure.retryable))
        }
        if next < items.count && !Task.isCancelled { launch() }
      }
      return .success(())
    }
    if case .failure(let failure) = outcome { throw failure }
    return NodeOutcome(output: .object(["results": .array(results), "count": .number(Double(items.count))]), cost: cost > 0 ? cost : nil)
  }
}

/// The engine's limits (WORKFLOW_* variables).
public struct WorkflowLimits: Sendable {
  /// Nodes of one run at once (WORKFLOW_MAX_PARALLEL).
  public var maxParallel: Int = 10
  /// Node attempts one run may make, retries and resumes included (WORKFLOW_MAX_STEPS).
  public var maxSteps: Int = 2000
  /// How long a run may take (WORKFLOW_TIMEOUT_SECONDS).
  public var runTimeout: Duration = .seconds(3600)
  /// Items an iteration takes (WORKFLOW_MAX_ITERATION_ITEMS).
  public var maxIterationItems: Int = 1000
  /// The largest output of a node, as JSON.
  public var maxOutputBytes: Int = NodeExecution.maxOutputBytes

  public init() {}

  public init(environment: Environment) throws {
    self.maxParallel = try environment.int("WORKFLOW_MAX_PARALLEL", default: 10, range: 1...100)
    self.maxSteps = try environment.int("WORKFLOW_MAX_STEPS", default: 2000, range: 10...100_000)
    self.runTimeout = try environment.seconds("WORKFLOW_TIMEOUT_SECONDS", default: .seconds(3600))
    self.maxIterationItems = try environment.int("WORKFLOW_MAX_ITERATION_ITEMS", default: 1000, range: 1...100_000)
  }
}
