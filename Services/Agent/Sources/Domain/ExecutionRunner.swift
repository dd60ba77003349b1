public import Foundation
internal import GRPCRuntime
public import Logging
public import PlatformCore

/// Runs one execution from pending (or running, when a crashed worker's job comes back) to its
/// end: the persona rendered into the system prompt, then the plan (every enabled plugin in
/// order), each plugin call under its own timeout, logged with its result or error, progress as
/// it goes, and the answer with its citations. A model answers from the plugins' results when
/// one is configured; the offline planner composes the answer itself.
public struct ExecutionRunner: Sendable {
  let store: ExecutionStore
  let agents: AgentStore
  let peers: PlatformPeers
  let documents: ExecutionDocuments
  let cache: ExecutionCache
  let callbacks: ExecutionCallbacks
  let models: ModelCatalog
  let chat: ChatCompletionsClient?
  /// The web_search plugin's provider; nil when WEB_SEARCH_URL is not set.
  let webSearch: (any WebSearchProvider)?
  /// Each plugin call's limit (AGENT_PLUGIN_TIMEOUT_SECONDS, default 60).
  let pluginTimeout: Duration
  /// The whole run's limit (AGENT_EXECUTION_TIMEOUT_SECONDS, default 300): then TIMEOUT.
  let executionTimeout: Duration
  let logger: Logger

  public init(
    store: ExecutionStore, agents: AgentStore, peers: PlatformPeers, documents: ExecutionDocuments, cache: ExecutionCache,
    callbacks: ExecutionCallbacks, models: ModelCatalog, chat: ChatCompletionsClient?, webSearch: (any WebSearchProvider)?,
    pluginTimeout: Duration, executionTimeout: Duration, logger: Logger
  ) {
    self.webSearch = webSearch
    self.callbacks = callbacks
    self.store = store
    self.agents = agents
    self.peers = peers
    self.documents = documents
    self.cache = cache
    self.models = models
    self.chat = chat
    self.pluginTimeout = pluginTimeout
    self.executionTimeout = executionTimeout
    self.logger = logger
  }

  /// How the run's calls to other services authenticate: nil forwards the handled call's
  /// credentials; otherwise a fresh token for the execution's user each time.
  public typealias Credentials = @Sendable () async throws -> String?

  /// What one plugin call came to.
  struct PluginCall: Sendable {
    var plugin: AgentPlugin
    var result: PlatformPeers.Result?
    var failure: Execution.Failure?
    var citations: [JSONValue]
    var milliseconds: Int
  }

  /// Runs it to the end and returns it as stored. Throws only when the database cannot be
  /// written (the job then retries); every failure of the run itself ends the execution.
  /// - Parameters:
  ///   - known: the execution as the caller last read it, if it did: without a callback its start
  ///     needs no transaction for the callback's notice.
  ///   - agent: its agent as the caller read it just before (a sync run), if it did.
  public func run(_ id: UUID, known: Execution? = nil, agent: Agent? = nil, credentials: @escaping Credentials) async throws -> Execution {
    let journal = ExecutionJournal(id: id, store: self.store)
    let started: Execution
    let noCallback = known.map { $0.callbackEvents?.isEmpty ?? true } ?? false
    if let moved = try await self.store.start(id, then: noCallback ? nil : self.callbacks.onStatusChange) {
      started = moved
    } else {
      guard let current = try await self.store.execution(id) else { throw AgentError.notFound("Execution not found") }
      // Running: its worker died (the job came back after its lease), so start it over.
      // Otherwise it has ended (or another worker started it meanwhile): as it is.
      guard current.status == .running, let resumed = try await self.store.resume(id) else { return current }
      await journal.log(.warning, "Resumed from the start: the worker running it stopped")
      started = resumed
    }
    await self.cache.write(started)
    // Lines reach the database (and watchers) every 200 ms while it runs, the rest with its end.
    let flushing = Task { await journal.flushEvery(.milliseconds(200)) }
    defer { flushing.cancel() }
    let clock = ContinuousClock()
    let began = clock.now
    let outcome: (status: Execution.Status, output: JSONValue?, error: Execution.Failure?, usage: (Int, Int, String))
    do {
      outcome = try await Self.within(self.executionTimeout) {
        try await self.plan(started, agent: agent, journal: journal, credentials: credentials)
      }
    } catch is TimedOut {
      outcome = (
        .timeout, nil, Execution.Failure(code: "timeout", message: "The execution ran past its \(self.executionTimeout.components.seconds) s limit"),
        (0, 0, ModelCatalog.offline)
      )
    } catch is CancellationError {
      // Cancelled by CancelExecution (the row says so): record it. Otherwise the worker is
      // stopping or lost its lease, or the sync caller went away: leave the row to the job that
      // takes it over, or to the caller's own handling.
      flushing.cancel()
      let store = self.store
      let now = try? await Task {
        await flushing.value
        await journal.flush()
        return try await store.execution(id)
      }.value
      guard now?.status == .cancelled else { throw CancellationError() }
      outcome = (.cancelled, nil, nil, (0, 0, ModelCatalog.offline))
    } catch let failure as Execution.Failure {
      outcome = (.failed, nil, failure, (0, 0, ModelCatalog.offline))
    }
    let elapsed = clock.now - began
    let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
    let (prompt, completion, model) = outcome.usage
    let cost = self.models.price(model).cost(promptTokens: prompt, completionTokens: completion)
    // Written in a task of its own: a cancelled run's own queries would fail.
    let store = self.store, cache = self.cache
    // Its callback's notice in the same transaction, when it has one.
    let onStatusChange = started.callbackEvents?.isEmpty == false ? self.callbacks.onStatusChange : nil
    flushing.cancel()
    return try await Task {
      // The periodic writes end first, so the last lines follow theirs.
      await flushing.value
      await journal.log(
        outcome.status == .completed ? .info : .warning, "Execution \(outcome.status.rawValue)",
        metadata: ["milliseconds": .number(Double(milliseconds))].merging(outcome.error.map { ["error": .string($0.message)] } ?? [:]) { $1 })
      let (lines, progress) = await journal.take()
      let ended = try await store.finish(
        id, status: outcome.status, output: outcome.output, error: outcome.error, milliseconds: milliseconds,
        tokens: prompt + completion, cost: cost, lines: lines, progress: progress, then: onStatusChange)
      if ended == nil, !lines.isEmpty {
        // It had ended otherwise (CancelExecution): its lines still belong to it.
        try await store.append(lines, progress: nil, to: id)
      }
      // Nil: it had ended otherwise first (CancelExecution); as it is now.
      let final = if let ended { ended } else { try await store.execution(id) ?? started }
      await cache.write(final)
      return final
    }.value
  }

  /// The persona, the plugins, the answer.
  private func plan(
    _ execution: Execution, agent known: Agent?, journal: ExecutionJournal, credentials: @escaping Credentials
  ) async throws -> (status: Execution.Status, output: JSONValue?, error: Execution.Failure?, usage: (Int, Int, String)) {
    let current: Agent? =
      if let known, known.id == execution.agentID { known } else { try await self.agents.agent(execution.agentID, owner: execution.userID) }
    guard let agent = current else {
      throw Execution.Failure(code: "agent_gone", message: "The agent was deleted")
    }
    guard agent.status == .active else {
      throw Execution.Failure(code: "agent_not_active", message: "The agent is \(agent.status.rawValue); only active agents run")
    }
    let input = execution.input.objectValue ?? [:]
    let systemPrompt: String
    do {
      systemPrompt = try await self.peers.render(agent.personaID, variables: input["variables"] ?? .object([:]), credential: try await credentials())
    } catch let error as RPCError where error.code == .cancelled {
      // This run was cancelled (its caller went away, CancelExecution, the worker stopping), not
      // refused by persona: it ends as cancelled, not failed.
      throw CancellationError()
    } catch let error as RPCError {
      throw Execution.Failure(code: "persona_failed", message: "The persona could not be rendered (\(error.code)): \(error.message)")
    }
    await journal.log(.info, "Persona rendered", metadata: ["characters": .number(Double(systemPrompt.count))])
    await journal.setProgress(10)

    let plugins = try await self.agents.enabledPlugins(of: agent.id)
    // The attached files go first: to the sandbox with every program, or into knowledge as
    // documents of this run, searched with the knowledge bases and deleted after it.
    var handover = FileHandover()
    var calls: [PluginCall] = []
    // Documents made of the files go when the run ends, however it ends, those of a failed
    // upload too (those of an attempt killed first go with ExecutionDocuments' job).
    var documentsMade = false
    do {
      if let upload = plugins.first(where: { $0.kind == .fileUpload }) {
        let files = try await self.store.files(of: execution.id)
        if !files.isEmpty {
          documentsMade = upload.uploadsToKnowledge
          let call = try await self.call(upload, PluginRequest(input: input, files: files), journal: journal, credentials: credentials)
          calls.append(call)
          handover = FileHandover(upload: upload, files: files, result: call.result)
        }
      }
      let outcome = try await self.answer(
        execution, agent: agent, systemPrompt: systemPrompt, plugins: plugins, handover: handover, calls: calls, journal: journal,
        credentials: credentials)
      if documentsMade { await self.removeDocuments(of: execution, journal: journal, credentials: credentials) }
      return outcome
    } catch {
      if documentsMade { await self.removeDocuments(of: execution, journal: journal, credentials: credentials) }
      throw error
    }
  }

  /// The files the file_upload plugin handed over, for the plugins that follow.
  struct FileHandover: Sendable {
    /// Input files of every program the sandbox runs.
    var sandboxFiles: [ExecutionFile] = []
    /// The knowledge base the files went into, searched too.
    var knowledgeBaseID: String?

    init() {}

    init(upload: AgentPlugin, files: [ExecutionFile], result: PlatformPeers.Result?) {
      guard result != nil else { return }
      if upload.uploadsToKnowledge {
        self.knowledgeBaseID = upload.config.objectValue?["knowledge_base_id"]?.stringValue
      } else {
        self.sandboxFiles = files
      }
    }
  }

  /// Deletes the documents made of the execution's files, this run's and any an earlier attempt
  /// of it left (in a task of its own: a cancelled run's calls would fail); when that fails, a
  /// job retries it.
  private func removeDocuments(of execution: Execution, journal: ExecutionJournal, credentials: @escaping Credentials) async {
    let peers = self.peers, documents = self.documents, logger = self.logger
    await Task {
      do {
        let deleted = try await peers.deleteExecutionDocuments(of: execution.id, credential: try await credentials())
        await journal.log(.info, "Deleted the \(deleted) document(s) made of the attached files")
      } catch {
        do {
          try await documents.scheduleDeletion(of: execution.id, owner: execution.userID)
          await journal.log(.warning, "The documents made of the attached files will be deleted later: \(error)")
        } catch let scheduling {
          logger.error(
            "Documents made of an execution's files not deleted", metadata: ["execution_id": "\(execution.id)", "error": "\(error)", "job": "\(scheduling)"])
          await journal.log(.warning, "The documents made of the attached files could not be deleted: \(error)")
        }
      }
    }.value
  }

  /// The plugins' calls and the answer: the offline planner's or the model's.
  private func answer(
    _ execution: Execution, agent: Agent, systemPrompt: String, plugins: [AgentPlugin], handover: FileHandover, calls: [PluginCall],
    journal: ExecutionJournal, credentials: Credentials
  ) async throws -> (status: Execution.Status, output: JSONValue?, error: Execution.Failure?, usage: (Int, Int, String)) {
    let input = execution.input.objectValue ?? [:]
    let message = input["message"]?.stringValue ?? ""
    var calls = calls
    let answer: String
    var usage = (0, 0, agent.settings.model)
    if agent.settings.model == ModelCatalog.offline || self.chat == nil {
      // The offline planner: every enabled plugin in order, with the input.
      let request = PluginRequest(input: input).with(handover)
      for (index, plugin) in plugins.enumerated() where Self.tool(for: plugin) != nil {
        try Task.checkCancellation()
        calls.append(try await self.call(plugin, request, journal: journal, credentials: credentials))
        await journal.setProgress(10 + 80 * (index + 1) / max(plugins.count, 1))
      }
      answer = Self.offlineAnswer(message: message, calls: calls)
      usage.2 = ModelCatalog.offline
    } else if let chat = self.chat {
      let (text, prompt, completion) = try await self.modelAnswer(
        chat, agent: agent, systemPrompt: systemPrompt, input: input, plugins: plugins, handover: handover, journal: journal,
        credentials: credentials, calls: &calls)
      answer = text
      usage = (prompt, completion, agent.settings.model)
    } else {
      answer = ""
    }
    let output: JSONValue = Self.bounded([
      "answer": .string(answer),
      "model": .string(usage.2),
      "citations": .array(calls.flatMap(\.citations)),
      "plugins": .array(calls.map(Self.summary)),
    ])
    if let failed = calls.first(where: { $0.failure != nil }), let failure = failed.failure {
      // The others' results are kept in the output.
      return (.failed, output, failure, usage)
    }
    return (.completed, output, nil, usage)
  }

  /// One plugin call, its start and end logged; its failure is a result, not an exception.
  private func call(_ plugin: AgentPlugin, _ request: PluginRequest, journal: ExecutionJournal, credentials: Credentials) async throws -> PluginCall {
    let config = plugin.config.objectValue ?? [:]
    let metadata: [String: JSONValue] = ["plugin": .string(plugin.name), "type": .string(plugin.kind.rawValue), "plugin_id": .string(plugin.id.lowercasedString)]
    await journal.log(.info, "Plugin \(plugin.name) started", metadata: metadata)
    let clock = ContinuousClock()
    let began = clock.now
    var call = PluginCall(plugin: plugin, result: nil, failure: nil, citations: [], milliseconds: 0)
    // Its own limit, or what is left of the sync caller's deadline when that is sooner.
    let timeout = Self.callTimeout(self.pluginTimeout, callerDeadline: ServerContext.current?.deadline)
    do {
      let credential = try await credentials()
      switch plugin.kind {
      case .knowledgeRAG:
        call.result = try await self.peers.search(
          config, query: request.text, alsoIn: request.knowledgeBaseIDs, credential: credential, timeout: timeout)
      case .textToSQL:
        call.result = try await self.peers.ask(config, question: request.text, credential: credential, timeout: timeout)
      case .codeExecutor:
        if let code = request.code {
          call.result = try await self.peers.run(
            config, code: code, language: request.language, stdin: request.stdin, files: request.files, credential: credential,
            timeout: timeout)
        } else {
          call.result = PlatformPeers.Result(summary: "No code in the input to run.", citations: [], detail: .object([:]))
        }
      case .webSearch:
        guard let webSearch = self.webSearch else {
          throw PluginFailure(code: "web_search_off", message: "web search is not configured on this server (WEB_SEARCH_URL)")
        }
        let limit = config["max_results"]?.intValue ?? 5
        call.result = Self.webResult(try await webSearch.search(request.text, limit: limit, timeout: timeout))
      case .fileUpload:
        call.result = try await self.peers.handOver(request.files, config: config, execution: journal.id, credential: credential, timeout: timeout)
      }
      call.citations = call.result?.citations ?? []
    } catch let failure as PluginFailure {
      call.failure = Execution.Failure(code: failure.code, message: "\(plugin.name): \(failure.message)", details: ["plugin": plugin.name])
      call.citations = failure.citation.map { [$0] } ?? []
    } catch let failure as WebSearchFailure {
      var details = ["plugin": plugin.name]
      if failure.isTransient { details["transient"] = "true" }
      call.failure = Execution.Failure(code: "web_search_failed", message: "\(plugin.name): \(failure.description)", details: details)
    } catch let error as RPCError where error.code == .cancelled {
      throw CancellationError()
    } catch let error as RPCError {
      try Task.checkCancellation()
      var details = ["plugin": plugin.name, "status": "\(error.code)"]
      if [.unavailable, .deadlineExceeded, .resourceExhausted].contains(error.code) { details["transient"] = "true" }
      call.failure = Execution.Failure(
        code: "plugin_failed", message: "\(plugin.name) (\(plugin.kind.rawValue)) failed: \(error.code): \(error.message)", details: details)
    }
    let elapsed = clock.now - began
    call.milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
    var ended = metadata
    ended["milliseconds"] = .number(Double(call.milliseconds))
    if let failure = call.failure {
      ended["error"] = .string(failure.message)
      await journal.log(.error, "Plugin \(plugin.name) failed", metadata: ended)
    } else {
      await journal.log(.info, "Plugin \(plugin.name) finished", metadata: ended)
    }
    return call
  }

  /// A plugin call's limit: `limit`, or the time left until the caller's deadline if sooner.
  static func callTimeout(_ limit: Duration, callerDeadline: ContinuousClock.Instant?, now: ContinuousClock.Instant = .now) -> Duration {
    guard let callerDeadline else { return limit }
    return max(.milliseconds(1), min(limit, callerDeadline - now))
  }

  /// What a plugin is asked: the text (a search query or a question), and code to run.
  struct PluginRequest: Sendable {
    var text: String
    var code: String?
    var language: String?
    var stdin: String
    /// The attached files: file_upload's to hand over, then the sandbox's input files.
    var files: [ExecutionFile] = []
    /// Knowledge bases searched besides the plugin's own (the one the files went into).
    var knowledgeBaseIDs: [String] = []

    /// From the execution's input, as the offline planner asks every plugin.
    init(input: [String: JSONValue], files: [ExecutionFile] = []) {
      self.files = files
      self.text = input["message"]?.stringValue ?? ""
      self.code = input["code"]?.stringValue
      self.language = input["language"]?.stringValue
      self.stdin = input["stdin"]?.stringValue ?? ""
    }

    /// From a tool call's arguments (what the model chose), the input filling what they leave out.
    init(arguments: [String: JSONValue], input: [String: JSONValue]) {
      let fallback = PluginRequest(input: input)
      self.text = arguments["query"]?.stringValue ?? arguments["question"]?.stringValue ?? fallback.text
      self.code = arguments["code"]?.stringValue
      self.language = arguments["language"]?.stringValue ?? fallback.language
      self.stdin = arguments["stdin"]?.stringValue ?? fallback.stdin
    }

    /// With what file_upload handed over.
    func with(_ handover: FileHandover) -> PluginRequest {
      var request = self
      request.files = handover.sandboxFiles
      request.knowledgeBaseIDs = handover.knowledgeBaseID.map { [$0] } ?? []
      return request
    }
  }

  /// The most model calls one run makes: tool rounds, then one that must answer.
  static let maxModelRounds = 5
  /// The most of one tool result the model is shown.
  static let maxToolResultBytes = 16 << 10

  /// The tool a plugin offers the model; nil for file_upload, which handles attached files.
  static func tool(for plugin: AgentPlugin) -> ChatCompletionsClient.Tool? {
    func text(_ name: String, _ description: String) -> JSONValue {
      .object([
        "type": .string("object"), "required": .array([.string(name)]),
        "properties": .object([name: .object(["type": .string("string"), "description": .string(description)])]),
      ])
    }
    return switch plugin.kind {
    case .knowledgeRAG:
      .init(
        name: "search_knowledge", description: "Searches the agent's knowledge bases and returns the best matching passages.",
        parameters: text("query", "What to look for"))
    case .textToSQL:
      .init(
        name: "query_database", description: "Answers a question about the agent's database with a read-only SQL query and its rows.",
        parameters: text("question", "The question, in plain language"))
    case .codeExecutor:
      .init(
        name: "run_code", description: "Runs a program in an isolated sandbox and returns what it printed.",
        parameters: .object([
          "type": .string("object"), "required": .array([.string("code")]),
          "properties": .object([
            "code": .object(["type": .string("string"), "description": .string("The program")]),
            "language": .object(["type": .string("string"), "enum": .array(PluginConfig.languages.map { .string($0) })]),
            "stdin": .object(["type": .string("string")]),
          ]),
        ]))
    case .webSearch:
      .init(name: "search_web", description: "Searches the web and returns the top results.", parameters: text("query", "The search terms"))
    case .fileUpload:
      nil
    }
  }

  /// The model's answer: it sees the persona as its system prompt and the plugins as tools, and
  /// calls them (each call run and logged like the offline planner's) until it answers, its text
  /// streamed to watchers as it comes. Its failure fails the execution (transient when the
  /// provider was unavailable).
  private func modelAnswer(
    _ chat: ChatCompletionsClient, agent: Agent, systemPrompt: String, input: [String: JSONValue], plugins: [AgentPlugin],
    handover: FileHandover, journal: ExecutionJournal, credentials: Credentials, calls: inout [PluginCall]
  ) async throws -> (String, Int, Int) {
    let tools = plugins.compactMap { plugin in Self.tool(for: plugin).map { (plugin, $0) } }
    var messages: [ChatCompletionsClient.Message] = [
      .init(role: "system", content: systemPrompt), .init(role: "user", content: input["message"]?.stringValue ?? ""),
    ]
    let sampling = ChatCompletionsClient.Sampling(
      model: agent.settings.model, temperature: agent.settings.temperature, topP: agent.settings.topP, maxTokens: agent.settings.maxTokens)
    var promptTokens = 0
    var completionTokens = 0
    for round in 0..<Self.maxModelRounds {
      try Task.checkCancellation()
      let output = ModelOutputPublisher(cache: self.cache, execution: journal.id, round: round)
      let completion: ChatCompletionsClient.Completion
      do {
        completion = try await chat.stream(
          messages, tools: round == Self.maxModelRounds - 1 ? [] : tools.map(\.1), sampling: sampling, onContent: { await output.append($0) })
        await output.flush()
      } catch {
        await output.flush()
        try Task.checkCancellation()
        await journal.log(.error, "The model failed", metadata: ["round": .number(Double(round)), "error": .string(error.description)])
        throw Execution.Failure(
          code: "model_failed", message: "The model could not answer: \(error.description)", details: error.isTransient ? ["transient": "true"] : [:])
      }
      promptTokens += completion.promptTokens
      completionTokens += completion.completionTokens
      guard !completion.toolCalls.isEmpty else { return (completion.content, promptTokens, completionTokens) }
      await journal.log(
        .info, "The model called \(completion.toolCalls.count) tool(s)",
        metadata: ["round": .number(Double(round)), "tools": .array(completion.toolCalls.map { .string($0.name) })])
      messages.append(.init(role: "assistant", content: completion.content, toolCalls: completion.toolCalls))
      for toolCall in completion.toolCalls {
        try Task.checkCancellation()
        let reply: String
        if let (plugin, _) = tools.first(where: { $0.1.name == toolCall.name }) {
          if let arguments = try? JSONValue(jsonText: toolCall.arguments, maxDepth: 8).objectValue {
            let call = try await self.call(plugin, PluginRequest(arguments: arguments, input: input).with(handover), journal: journal, credentials: credentials)
            calls.append(call)
            reply = call.result?.summary ?? "The tool failed: \(call.failure?.message ?? "")"
          } else {
            reply = "The arguments are not a JSON object; call \(toolCall.name) again with JSON arguments."
          }
        } else {
          reply = "There is no tool named \(toolCall.name.truncated(toUTF8Bytes: 100)); the tools are \(tools.map(\.1.name).joined(separator: ", "))."
        }
        messages.append(.init(role: "tool", content: reply.truncated(toUTF8Bytes: Self.maxToolResultBytes), toolCallID: toolCall.id))
      }
      await journal.setProgress(10 + 80 * (round + 1) / Self.maxModelRounds)
    }
    throw Execution.Failure(code: "model_failed", message: "The model kept calling tools for \(Self.maxModelRounds) rounds without answering")
  }

  /// Web results as a plugin's result: each cited with its URL.
  static func webResult(_ results: [WebSearchResult]) -> PlatformPeers.Result {
    PlatformPeers.Result(
      summary: results.isEmpty ? "No web results." : results.map { "[\($0.title)](\($0.url)) \($0.snippet.truncated(toUTF8Bytes: 300))" }.joined(separator: "\n"),
      citations: results.map { .object(["type": .string("web"), "title": .string($0.title), "url": .string($0.url), "snippet": .string($0.snippet)]) },
      detail: .object(["results": .number(Double(results.count))]))
  }

  /// The output, within the column's limit: plugin results and citations beyond a budget are
  /// cut (the answer to 64 KiB), and `truncated` says so.
  static func bounded(_ fields: [String: JSONValue]) -> JSONValue {
    let limit = 1 << 20
    var fields = fields
    guard JSONValue.object(fields).jsonText.utf8.count > limit else { return .object(fields) }
    if case .string(let answer)? = fields["answer"] { fields["answer"] = .string(answer.truncated(toUTF8Bytes: 64 << 10)) }
    if case .array(let plugins)? = fields["plugins"] {
      fields["plugins"] = .array(plugins.map { plugin in
        guard var object = plugin.objectValue else { return plugin }
        object["result"] = nil
        return .object(object)
      })
    }
    if case .array(let citations)? = fields["citations"] {
      var kept: [JSONValue] = []
      var used = 0
      for citation in citations {
        used += citation.jsonText.utf8.count
        if used > limit / 2 { break }
        kept.append(citation)
      }
      fields["citations"] = .array(kept)
    }
    fields["truncated"] = .bool(true)
    return .object(fields)
  }

  static func summary(_ call: PluginCall) -> JSONValue {
    var object: [String: JSONValue] = [
      "name": .string(call.plugin.name), "type": .string(call.plugin.kind.rawValue),
      "status": .string(call.failure == nil ? "ok" : "failed"), "milliseconds": .number(Double(call.milliseconds)),
    ]
    if let failure = call.failure { object["error"] = .string(failure.message) }
    if let detail = call.result?.detail, detail != .object([:]) { object["result"] = detail }
    return .object(object)
  }

  /// The offline planner's answer: what each plugin found, in order, and that no model wrote it.
  static func offlineAnswer(message: String, calls: [PluginCall]) -> String {
    var lines = ["Offline planner (no language model): results for \"\(message.truncated(toUTF8Bytes: 200))\"."]
    if calls.isEmpty { lines.append("The agent has no enabled plugins.") }
    for call in calls {
      lines.append("\(call.plugin.name) (\(call.plugin.kind.rawValue)): " + (call.result?.summary ?? "failed: \(call.failure?.message ?? "")"))
    }
    return lines.joined(separator: "\n")
  }

  struct TimedOut: Error {}

  /// `operation`, or `TimedOut` after `limit` (the operation is cancelled).
  static func within<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
      group.addTask { try await operation() }
      group.addTask {
        try await Task.sleep(for: limit)
        return nil
      }
      defer { group.cancelAll() }
      guard let first = try await group.next(), let value = first else { throw TimedOut() }
      return value
    }
  }
}

/// Hands the model's streamed text to watchers (`ExecutionCache.appendModelOutput`) in pieces of
/// at least 100 ms or 256 bytes, so a fast stream costs Redis a few writes a second.
actor ModelOutputPublisher {
  let cache: ExecutionCache
  let execution: UUID
  let round: Int
  private var pending = ""
  private var lastWrite = ContinuousClock.now

  init(cache: ExecutionCache, execution: UUID, round: Int) {
    self.cache = cache
    self.execution = execution
    self.round = round
  }

  func append(_ text: String) async {
    self.pending += text
    if self.pending.utf8.count >= 256 || ContinuousClock.now - self.lastWrite >= .milliseconds(100) { await self.flush() }
  }

  func flush() async {
    guard !self.pending.isEmpty else { return }
    let text = self.pending
    self.pending = ""
    self.lastWrite = ContinuousClock.now
    await self.cache.appendModelOutput(self.execution, round: self.round, text: text)
  }
}
