@testable import Agent
import CodeSandbox
import Crypto
import struct Agent.Execution
import Foundation
import GRPCRuntime
import Knowledge
import Persona
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing
import TextToSQL

typealias ExecutionClient = Platform_Agent_V1_ExecutionServiceClient

/// Every service an agent calls, over real gRPC, with the agent service pointed at them.
struct Chain {
  let world: AgentWorld
  let executions: ExecutionClient
  let knowledge: Platform_Knowledge_V1_KnowledgeServiceClient
  let databases: Platform_Texttosql_V1_DatabaseServiceClient
  let sandbox: Platform_Codesandbox_V1_CodeSandboxServiceClient

  /// A developer's agent with a persona, a knowledge base holding one document, a SQLite shop
  /// database, and the plugins named (knowledge_rag, text_to_sql, code_executor).
  func agent(
    _ options: CallOptions, plugins: Set<Platform_Agent_V1_PluginType> = [.knowledgeRag, .textToSql, .codeExecutor]
  ) async throws -> Platform_Agent_V1_Agent {
    let persona = try await self.world.persona(options)
    let agent = try await self.world.agents.createAgent(newAgent(persona, name: "Chain"), options: options)
    if plugins.contains(.knowledgeRag) {
      let base = try await self.knowledge.createKnowledgeBase(.with { $0.knowledgeBase = .with { $0.name = "facts" } }, options: options)
      let document = try await self.knowledge.createDocument(
        .with {
          $0.knowledgeBaseID = base.id
          $0.title = "Atlantis"
          $0.content = "Atlantis is an island. The capital of Atlantis is Poseidonia, where most customers live."
          $0.contentType = "text/plain"
        }, options: options)
      let deadline = Date().addingTimeInterval(30)
      while try await self.knowledge.getDocument(.with { $0.id = document.id }, options: options).status != .ready, Date() < deadline {
        try await Task.sleep(for: .milliseconds(50))
      }
      _ = try await self.world.agents.addPlugin(.with {
        $0.agentID = agent.id
        $0.plugin = .with {
          $0.pluginType = .knowledgeRag
          $0.orderIndex = 1
          $0.config = .with { $0.fields = ["knowledge_base_ids": .init(listValue: .with { $0.values = [.init(stringValue: base.id)] })] }
        }
      }, options: options)
    }
    if plugins.contains(.textToSql) {
      let database = try await self.databases.registerDatabase(
        .with { $0.database = .with { $0.name = "shop"; $0.databaseType = .sqlite; $0.connection = .with { $0.databaseName = "shop.db" } } },
        options: options)
      _ = try await self.databases.syncSchema(.with { $0.databaseID = database.id }, options: options)
      _ = try await self.world.agents.addPlugin(.with {
        $0.agentID = agent.id
        $0.plugin = .with {
          $0.pluginType = .textToSql
          $0.orderIndex = 2
          $0.config = .with { $0.fields = ["database_id": .init(stringValue: database.id)] }
        }
      }, options: options)
    }
    if plugins.contains(.codeExecutor) {
      _ = try await self.world.agents.addPlugin(.with {
        $0.agentID = agent.id
        $0.plugin = .with {
          $0.pluginType = .codeExecutor
          $0.orderIndex = 3
        }
      }, options: options)
    }
    return try await self.world.agents.getAgent(.with { $0.id = agent.id }, options: options)
  }

  func start(
    _ agent: Platform_Agent_V1_Agent, _ options: CallOptions, message: String = "How many customers are there?",
    code: String? = "print(6 * 7)", sync: Bool = true, requestID: String = "", maxRetries: Int32 = 0
  ) async throws -> Platform_Agent_V1_Execution {
    try await self.executions.startExecution(.with {
      $0.agentID = agent.id
      $0.input = .with {
        $0.fields["message"] = .init(stringValue: message)
        if let code { $0.fields["code"] = .init(stringValue: code) }
      }
      $0.sync = sync
      $0.requestID = requestID
      $0.maxRetries = maxRetries
    }, options: options)
  }

  func logs(_ execution: String, _ options: CallOptions) async throws -> [String] {
    try await self.executions.listExecutionLogs(.with { $0.executionID = execution }, options: options).logs.map(\.message)
  }

  func rows(_ sql: PostgresQuery) async throws -> Int {
    var count = 0
    for try await (value,) in try await self.world.agentService.database.query(sql, logger: TestPostgres.quietLogger).decode((Int,).self) {
      count = value
    }
    return count
  }
}

/// A SQLite database `shop.db` (50 customers) in a directory of its own.
func shopDirectory() throws -> URL {
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agent-shop-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  let create = Process()
  create.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
  create.arguments = [
    directory.appendingPathComponent("shop.db").path,
    """
    CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
    INSERT INTO customers SELECT i, 'c' || i, 'France' FROM n;
    """,
  ]
  try create.run()
  create.waitUntilExit()
  return directory
}

func withChain(knowledgeAddress: String? = nil, _ settings: [String: String] = [:], _ body: (Chain) async throws -> Void) async throws {
  let shop = try shopDirectory()
  defer { try? FileManager.default.removeItem(at: shop) }
  try await PlatformTestService.run(KnowledgeService()) { knowledge in
    try await PlatformTestService.run(
      TextToSQLService(),
      configure: {
        $0.environment = Environment([
          "SQL_ENCRYPTION_KEY": "test:" + Data(repeating: 9, count: 32).base64EncodedString(), "SQL_SQLITE_DIR": shop.path,
        ])
      }
    ) { textToSQL in
      let uidBase = 62_000 + 16 * Int.random(in: 0..<10_000)
      try await PlatformTestService.run(
        CodeSandboxService(), configure: { $0.environment = Environment(["SANDBOX_UID_BASE": "\(uidBase)"]) }
      ) { sandbox in
        let peers: [PlatformServiceName: String] = [
          .knowledge: knowledgeAddress ?? "127.0.0.1:\(knowledge.port)", .textToSQL: "127.0.0.1:\(textToSQL.port)",
          .codeSandbox: "127.0.0.1:\(sandbox.port)",
        ]
        try await withAgentWorld(settings, peers: peers) { world in
          try await body(
            Chain(
              world: world, executions: ExecutionClient(channel: world.agentService.client),
              knowledge: .init(channel: knowledge.client), databases: .init(channel: textToSQL.client), sandbox: .init(channel: sandbox.client)))
        }
      }
    }
  }
}

@Suite("Agent executions")
struct ExecutionTests {
  @Test("The lifecycle: pending → running → completed | failed | cancelled | timeout; pending may fail or be cancelled; the end is final")
  func lifecycle() {
    typealias S = Execution.Status
    #expect(S.pending.canMove(to: .running) && S.pending.canMove(to: .cancelled) && S.pending.canMove(to: .failed))
    #expect(!S.pending.canMove(to: .completed) && !S.pending.canMove(to: .timeout))
    for end in [S.completed, .failed, .cancelled, .timeout] {
      #expect(S.running.canMove(to: end) && end.isFinished)
      #expect(S.allCases.allSatisfy { !end.canMove(to: $0) })
    }
    #expect(!S.running.canMove(to: .pending) && !S.running.isFinished && !S.pending.isFinished)
    #expect(Set(S.cancelled.predecessors) == [.pending, .running] && S.completed.predecessors == [.running])
  }

  @Test("A background run's token holds the plugin permissions its caller had: all of them for an admin's `*`, none it lacked")
  func jobPermissions() {
    #expect(Set(Executions.jobPermissions(granted: [.all])) == Executions.pluginPermissions)
    #expect(Executions.jobPermissions(granted: ["persona:read", "agent:write", "code:execute"]) == ["persona:read", "code:execute"])
    #expect(Executions.jobPermissions(granted: ["agent:read", "users:admin"]).isEmpty)
  }

  @Test("A sync execution calls knowledge, text-to-SQL and the sandbox as the caller and cites each; logged, cached, listed")
  func wholeChain() async throws {
    try await withChain { chain in
      let (me, myID) = try await chain.world.developer()
      let agent = try await chain.agent(me)
      #expect(agent.plugins.count == 3)
      let execution = try await chain.start(agent, me)
      #expect(execution.status == .completed && execution.progress == 100, "\(execution.error)")
      #expect(execution.userID == myID && execution.agentID == agent.id && execution.retryCount == 0 && execution.maxRetries == 3)
      let output = execution.output.fields
      let citations = output["citations"]?.listValue.values.map { $0.structValue.fields } ?? []
      #expect(Set(citations.compactMap { $0["type"]?.stringValue }) == ["chunk", "sql", "code"], "\(citations)")
      #expect(citations.contains { $0["content"]?.stringValue.contains("Poseidonia") == true })
      #expect(citations.contains { $0["sql"]?.stringValue.lowercased().contains("count") == true })
      #expect(citations.contains { $0["stdout"]?.stringValue == "42\n" })
      let answer = output["answer"]?.stringValue ?? ""
      #expect(answer.contains("Offline planner") && answer.contains("42") && output["model"]?.stringValue == ModelCatalog.offline, "\(answer)")
      #expect(execution.hasStartTime && execution.hasCompleteTime && execution.executionTimeMs > 0)

      let logs = try await chain.logs(execution.id, me)
      for plugin in ["knowledge_rag", "text_to_sql", "code_executor"] {
        #expect(logs.contains("Plugin \(plugin) started") && logs.contains("Plugin \(plugin) finished"), "\(logs)")
      }
      #expect(logs.first == "Execution created" && logs.last == "Execution completed")
      let warnings = try await chain.executions.listExecutionLogs(.with {
        $0.executionID = execution.id
        $0.minLevel = .warning
      }, options: me)
      #expect(warnings.logs.isEmpty)

      // Get answers from Redis (written through), List has it, newest first.
      #expect(try await chain.executions.getExecution(.with { $0.id = execution.id }, options: me) == execution)
      let second = try await chain.start(agent, me, code: nil)
      #expect(second.status == .completed)
      let listed = try await chain.executions.listExecutions(.with { $0.agentID = agent.id }, options: me)
      #expect(listed.executions.map(\.id) == [second.id, execution.id] && listed.totalSize == 2)
      let page = try await chain.executions.listExecutions(.with { $0.pageSize = 1 }, options: me)
      let rest = try await chain.executions.listExecutions(.with { $0.pageSize = 1; $0.pageToken = page.nextPageToken }, options: me)
      #expect(page.executions.map(\.id) + rest.executions.map(\.id) == [second.id, execution.id] && rest.nextPageToken.isEmpty)
    }
  }

  @Test("An async execution runs in a job; WatchExecution streams its status, progress and log lines to the end, and replays a finished one")
  func asyncAndWatch() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.codeExecutor])
      let started = try await chain.start(agent, me, code: "import time\ntime.sleep(0.5)\nprint('done')", sync: false)
      #expect(started.status == .pending)
      let events = try await chain.executions.watchExecution(.with { $0.id = started.id }, options: me) { stream in
        var events: [Platform_Agent_V1_ExecutionEvent] = []
        for try await event in stream { events.append(event) }
        return events
      }
      var statuses: [Platform_Common_V1_ExecutionStatus] = []
      var lines: [String] = []
      var lastLogID: Int64 = 0
      for event in events {
        switch event.event {
        case .execution(let execution)?: statuses.append(execution.status)
        case .log(let line)?:
          #expect(line.id > lastLogID)
          lastLogID = line.id
          lines.append(line.message)
        case .modelOutput?: Issue.record("The offline planner streams no model output")
        case nil: break
        }
      }
      #expect(statuses.first == .pending || statuses.first == .running, "\(statuses)")
      #expect(statuses.last == .completed && statuses.contains(.running), "\(statuses)")
      #expect(lines.contains("Plugin code_executor finished") && lines.last == "Execution completed", "\(lines)")
      // A finished execution: its state at once, then the lines after the one asked for.
      let replay = try await chain.executions.watchExecution(.with { $0.id = started.id; $0.afterLogID = lastLogID - 1 }, options: me) {
        stream in
        var events: [Platform_Agent_V1_ExecutionEvent] = []
        for try await event in stream { events.append(event) }
        return events
      }
      #expect(replay.count == 2 && replay.first?.execution.status == .completed && replay.last?.log.id == lastLogID)
      let finished = try await chain.executions.getExecution(.with { $0.id = started.id }, options: me)
      #expect(finished.output.fields["citations"]?.listValue.values.first?.structValue.fields["stdout"]?.stringValue == "done\n")
    }
  }

  @Test("Hostile: another user's execution is NOT_FOUND everywhere; an inactive agent, a bad input and a bad id are refused and start nothing")
  func refusals() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      let (other, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [])
      let mine = try await chain.start(agent, me, code: nil)
      #expect(mine.status == .completed)
      await expectStatus(.notFound) { try await chain.executions.getExecution(.with { $0.id = mine.id }, options: other) }
      await expectStatus(.notFound) { try await chain.executions.cancelExecution(.with { $0.id = mine.id }, options: other) }
      await expectStatus(.notFound) { try await chain.executions.retryExecution(.with { $0.id = mine.id }, options: other) }
      await expectStatus(.notFound) { try await chain.executions.listExecutionLogs(.with { $0.executionID = mine.id }, options: other) }
      await expectStatus(.notFound) {
        try await chain.executions.watchExecution(.with { $0.id = mine.id }, options: other) { stream in
          for try await _ in stream {}
        }
      }
      await expectStatus(.notFound) { try await chain.start(agent, other) }
      #expect(try await chain.executions.listExecutions(.init(), options: other).executions.isEmpty)

      await expectStatus(.invalidArgument) {
        try await chain.executions.startExecution(.with { $0.agentID = agent.id }, options: me)
      }
      await expectStatus(.invalidArgument) {
        try await chain.executions.startExecution(.with {
          $0.agentID = agent.id
          $0.input = .with { $0.fields["message"] = .init(numberValue: 1) }
        }, options: me)
      }
      await expectStatus(.invalidArgument) {
        try await chain.executions.startExecution(.with {
          $0.agentID = agent.id
          $0.input = .with { $0.fields["message"] = .init(stringValue: String(repeating: "m", count: 70_000)) }
        }, options: me)
      }
      let theirs = try await chain.start(try await chain.agent(other, plugins: []), other, code: nil)
      let before = try await chain.rows("SELECT count(*)::int FROM executions")
      await expectStatus(.invalidArgument) { try await chain.start(agent, me, maxRetries: 11) }
      // A parent that is not the caller's (another user's, or none) is refused, not a broken reference.
      for parent in [theirs.id, UUID().lowercasedString] {
        let error = await expectStatus(.invalidArgument) {
          try await chain.executions.startExecution(.with {
            $0.agentID = agent.id
            $0.input = .with { $0.fields["message"] = .init(stringValue: "child") }
            $0.parentExecutionID = parent
          }, options: me)
        }
        #expect(error?.message.hasPrefix("parent_execution_id:") == true)
      }
      await expectStatus(.invalidArgument) { try await chain.executions.getExecution(.with { $0.id = "nope" }, options: me) }
      _ = try await chain.world.agents.updateAgent(.with {
        $0.agent = .with { $0.id = agent.id; $0.status = .inactive }
        $0.updateMask = .with { $0.paths = ["status"] }
        $0.version = agent.version
      }, options: me)
      await expectStatus(.failedPrecondition) { try await chain.start(agent, me) }
      #expect(try await chain.rows("SELECT count(*)::int FROM executions") == before)
      // A finished execution cannot be cancelled; a completed one cannot be retried.
      await expectStatus(.failedPrecondition) { try await chain.executions.cancelExecution(.with { $0.id = mine.id }, options: me) }
      await expectStatus(.failedPrecondition) { try await chain.executions.retryExecution(.with { $0.id = mine.id }, options: me) }
    }
  }

  @Test("A plugin call's limit is its own, or what is left of the sync caller's deadline when sooner")
  func callTimeout() {
    let now = ContinuousClock.now
    #expect(ExecutionRunner.callTimeout(.seconds(60), callerDeadline: nil, now: now) == .seconds(60))
    #expect(ExecutionRunner.callTimeout(.seconds(60), callerDeadline: now + .seconds(5), now: now) == .seconds(5))
    #expect(ExecutionRunner.callTimeout(.seconds(2), callerDeadline: now + .seconds(5), now: now) == .seconds(2))
    #expect(ExecutionRunner.callTimeout(.seconds(2), callerDeadline: now - .seconds(1), now: now) == .milliseconds(1))
  }

  @Test("Deleting an agent cancels its running and pending executions")
  func deleteCancels() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.codeExecutor])
      let running = try await chain.start(agent, me, code: "import time\ntime.sleep(30)", sync: false)
      let deadline = Date().addingTimeInterval(20)
      while try await !chain.logs(running.id, me).contains("Plugin code_executor started"), Date() < deadline {
        try await Task.sleep(for: .milliseconds(50))
      }
      try await Task.sleep(for: .milliseconds(500))  // the sandbox run has started
      _ = try await chain.world.agents.deleteAgent(.with { $0.id = agent.id }, options: me)
      let began = Date()
      var status = Platform_Common_V1_ExecutionStatus.running
      while status != .cancelled, Date().timeIntervalSince(began) < 5 {
        status = try await chain.executions.getExecution(.with { $0.id = running.id }, options: me).status
        try await Task.sleep(for: .milliseconds(50))
      }
      #expect(status == .cancelled)
      // Its sandbox run is stopped too, not left to sleep its 30 s.
      var runs = try await chain.sandbox.listCodeExecutions(.with { _ in }, options: me).executions
      while runs.contains(where: { $0.status == .running || $0.status == .pending }), Date().timeIntervalSince(began) < 5 {
        try await Task.sleep(for: .milliseconds(100))
        runs = try await chain.sandbox.listCodeExecutions(.with { _ in }, options: me).executions
      }
      #expect(runs.count == 1 && runs.allSatisfy { $0.status == .cancelled }, "\(runs.map(\.status))")
      #expect(try await chain.logs(running.id, me).contains("Cancelled: the agent was deleted"))
    }
  }

  @Test("text_to_sql with execute: false writes the SQL and cites it without running it")
  func sqlNotRun() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.textToSql])
      let plugin = try #require(agent.plugins.first)
      var config = plugin.config
      config.fields["execute"] = .init(boolValue: false)
      _ = try await chain.world.agents.updatePlugin(.with {
        $0.agentID = agent.id
        $0.plugin = .with {
          $0.id = plugin.id
          $0.config = config
        }
        $0.updateMask = .with { $0.paths = ["config"] }
        $0.version = agent.version
      }, options: me)
      let done = try await chain.start(agent, me, code: nil)
      #expect(done.status == .completed, "\(done.error)")
      let citation = done.output.fields["citations"]?.listValue.values.first?.structValue.fields ?? [:]
      #expect(citation["type"]?.stringValue == "sql" && citation["executed"]?.boolValue == false && citation["rows"] == nil, "\(citation)")
      #expect(citation["sql"]?.stringValue.lowercased().contains("count") == true)
      #expect(done.output.fields["answer"]?.stringValue.contains("SQL (not run)") == true)
    }
  }

  @Test("A plugin's service down: the execution fails naming it and keeps the others' results; retried as a child up to max_retries")
  func pluginDown() async throws {
    try await withChain(knowledgeAddress: "127.0.0.1:1") { chain in
      let (me, _) = try await chain.world.developer()
      let persona = try await chain.world.persona(me)
      let agent = try await chain.world.agents.createAgent(newAgent(persona, name: "Half"), options: me)
      for (type, config, order) in [
        (Platform_Agent_V1_PluginType.knowledgeRag, ["knowledge_base_ids": Google_Protobuf_Value(listValue: .with { $0.values = [.init(stringValue: UUID().lowercasedString)] })], Int32(1)),
        (.codeExecutor, [:], 2),
      ] {
        _ = try await chain.world.agents.addPlugin(.with {
          $0.agentID = agent.id
          $0.plugin = .with { $0.pluginType = type; $0.config = .with { $0.fields = config }; $0.orderIndex = order }
        }, options: me)
      }
      let failed = try await chain.start(agent, me, maxRetries: 1)
      #expect(failed.status == .failed && failed.error.code == "plugin_failed", "\(failed)")
      #expect(failed.error.message.contains("knowledge_rag") && failed.error.details["transient"] == "true", "\(failed.error)")
      let citations = failed.output.fields["citations"]?.listValue.values.map { $0.structValue.fields } ?? []
      #expect(citations.contains { $0["stdout"]?.stringValue == "42\n" }, "the code plugin's result is kept: \(failed.output)")
      #expect(try await chain.logs(failed.id, me).contains("Plugin knowledge_rag failed"))

      let retried = try await chain.executions.retryExecution(.with { $0.id = failed.id; $0.sync = true }, options: me)
      #expect(retried.parentExecutionID == failed.id && retried.retryCount == 1 && retried.status == .failed)
      await expectStatus(.failedPrecondition) { try await chain.executions.retryExecution(.with { $0.id = retried.id }, options: me) }
      // One retry per execution: the failed one was retried already.
      let again = await expectStatus(.failedPrecondition) { try await chain.executions.retryExecution(.with { $0.id = failed.id }, options: me) }
      #expect(again?.message.contains(retried.id) == true, "\(String(describing: again))")
    }
  }

  @Test("A duplicate request id under concurrency makes one execution; CancelExecution stops a running sandbox call within a second")
  func duplicatesAndCancel() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.codeExecutor])
      let requestID = UUID().lowercasedString
      let ids = try await withThrowingTaskGroup(of: String.self) { group in
        for _ in 0..<8 {
          group.addTask { try await chain.start(agent, me, code: "print(1)", sync: false, requestID: requestID).id }
        }
        return try await group.reduce(into: Set<String>()) { $0.insert($1) }
      }
      #expect(ids.count == 1)
      #expect(try await chain.rows("SELECT count(*)::int FROM executions") == 1)
      let first = try #require(ids.first)
      let settle = Date().addingTimeInterval(20)
      while try await chain.executions.getExecution(.with { $0.id = first }, options: me).status != .completed, Date() < settle {
        try await Task.sleep(for: .milliseconds(100))
      }

      // A sync run sleeping in the sandbox, cancelled from another call.
      let running = Task { try await chain.start(agent, me, code: "import time\ntime.sleep(30)") }
      var target: Platform_Agent_V1_Execution?
      let deadline = Date().addingTimeInterval(20)
      while target == nil && Date() < deadline {
        let listed = try await chain.executions.listExecutions(.with { $0.status = .running }, options: me)
        if let execution = listed.executions.first(where: { $0.input.fields["code"]?.stringValue.contains("sleep(30)") == true }),
          try await chain.logs(execution.id, me).contains("Plugin code_executor started")
        {
          target = execution
        } else {
          try await Task.sleep(for: .milliseconds(50))
        }
      }
      let execution = try #require(target)
      try await Task.sleep(for: .milliseconds(500))  // the sandbox run has started
      let clock = ContinuousClock()
      let before = clock.now
      let cancelled = try await chain.executions.cancelExecution(.with { $0.id = execution.id }, options: me)
      #expect(cancelled.status == .cancelled)
      let ended = try await running.value
      #expect(ended.status == .cancelled && clock.now - before < .seconds(2), "\(ended.status) after \(clock.now - before)")
      // The sandbox run was cancelled with its call, not left sleeping.
      var sandboxStatus = Platform_Common_V1_ExecutionStatus.running
      let sandboxDeadline = Date().addingTimeInterval(5)
      while sandboxStatus == .running || sandboxStatus == .pending, Date() < sandboxDeadline {
        sandboxStatus = try await chain.sandbox.listCodeExecutions(.init(), options: me).executions.first { $0.code.contains("sleep(30)") }?.status ?? .unspecified
        try await Task.sleep(for: .milliseconds(100))
      }
      #expect(sandboxStatus == .cancelled, "\(sandboxStatus)")
      #expect(try await chain.executions.cancelExecution(.with { $0.id = execution.id }, options: me).status == .cancelled)  // idempotent
    }
  }

  @Test("A sync caller that goes away cancels its execution and the sandbox run in flight")
  func callerGoesAway() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.codeExecutor])
      let call = Task { try await chain.start(agent, me, code: "import time\ntime.sleep(30)") }
      var running: Platform_Agent_V1_Execution?
      let deadline = Date().addingTimeInterval(20)
      while running == nil && Date() < deadline {
        if let execution = try await chain.executions.listExecutions(.with { $0.status = .running }, options: me).executions.first,
          try await chain.logs(execution.id, me).contains("Plugin code_executor started")
        {
          running = execution
        } else {
          try await Task.sleep(for: .milliseconds(50))
        }
      }
      let execution = try #require(running)
      try await Task.sleep(for: .milliseconds(300))
      call.cancel()
      var status = Platform_Common_V1_ExecutionStatus.running
      let settle = Date().addingTimeInterval(3)
      while status == .running && Date() < settle {
        try await Task.sleep(for: .milliseconds(100))
        status = try await chain.executions.getExecution(.with { $0.id = execution.id }, options: me).status
      }
      #expect(status == .cancelled, "\(status)")
    }
  }

  @Test("ListExecutionLogs bounds created_at, so its plan reads one month's partition")
  func logsPruned() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [])
      let execution = try await chain.start(agent, me, code: nil)
      var plan = ""
      let id = UUID(uuidString: execution.id)!
      let created = execution.createTime.date
      for try await (line,) in try await chain.world.agentService.database.query(
        """
        EXPLAIN SELECT id FROM execution_logs
        WHERE execution_id = \(id) AND created_at >= \(created.addingTimeInterval(-1)) AND created_at < \(execution.completeTime.date.addingTimeInterval(60))
          AND id > 0 ORDER BY id LIMIT 100
        """, logger: TestPostgres.quietLogger
      ).decode((String,).self) {
        plan += line + "\n"
      }
      let month = MonthlyPartitions.Month(containing: created)
      #expect(plan.contains("execution_logs_\(month)"), "\(plan)")
      #expect(!plan.contains("execution_logs_\(month.adding(1))") && !plan.contains("execution_logs_\(month.adding(2))"), "\(plan)")
    }
  }
}

@Suite("Execution callbacks")
struct CallbackTests {
  static let key = "test:" + Data(repeating: 5, count: 32).base64EncodedString()
  static let secret = "callback-secret-0123456789"

  func start(
    _ world: AgentWorld, _ agentID: String, _ options: CallOptions, url: String, events: [String] = [], secret: String = Self.secret
  ) async throws -> Platform_Agent_V1_Execution {
    try await ExecutionClient(channel: world.agentService.client).startExecution(.with {
      $0.agentID = agentID
      $0.input = .with { $0.fields["message"] = .init(stringValue: "hello") }
      $0.sync = true
      $0.callbackURL = url
      $0.callbackEvents = events
      $0.callbackSecret = secret
    }, options: options)
  }

  @Test("Chosen events are POSTed signed (HMAC-SHA256 of timestamp.body) and retried until taken; the secret is sealed and never returned")
  func delivered() async throws {
    let receiver = try ScriptServer(
      script: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("callback_receiver.py"),
      arguments: ["--fail-first", "1"])
    defer { receiver.stop() }
    try await withAgentWorld(["AGENT_ENCRYPTION_KEY": Self.key, "CALLBACK_ALLOWED_HOSTS": "127.0.0.1"]) { world in
      let (me, _) = try await world.developer()
      let agent = try await world.agents.createAgent(newAgent(try await world.persona(me)), options: me)
      let url = "http://127.0.0.1:\(receiver.port)/hooks/agent"
      let execution = try await self.start(world, agent.id, me, url: url, events: ["started", "completed"])
      #expect(execution.status == .completed && execution.callbackURL == url && execution.callbackEvents == ["started", "completed"])
      #expect(!(try execution.jsonString()).contains(Self.secret))
      let stored = try await world.agentService.database.query(
        "SELECT callback_secret FROM executions WHERE id = \(UUID(uuidString: execution.id)!)", logger: TestPostgres.quietLogger)
      for try await (sealed,) in stored.decode((String,).self) { #expect(!sealed.contains(Self.secret) && sealed.count > 40) }

      // The first POST is answered 500; it comes again. Two events, each taken once.
      var deliveries: [[String: Any]] = []
      let deadline = Date().addingTimeInterval(20)
      while Date() < deadline {
        deliveries = try await receiver.json("/received") as? [[String: Any]] ?? []
        if deliveries.count >= 3 { break }
        try await Task.sleep(for: .milliseconds(200))
      }
      #expect(deliveries.count == 3, "\(deliveries)")
      var events: [String] = []
      for delivery in deliveries {
        let headers = delivery["headers"] as? [String: String] ?? [:]
        let body = delivery["body"] as? String ?? ""
        let timestamp = headers["x-platform-timestamp"] ?? ""
        let expected = HMAC<SHA256>.authenticationCode(for: Data("\(timestamp).\(body)".utf8), using: SymmetricKey(data: Data(Self.secret.utf8)))
        #expect(headers["x-platform-signature"] == "sha256=" + expected.map { String(format: "%02x", $0) }.joined())
        #expect(delivery["path"] as? String == "/hooks/agent" && headers["content-type"] == "application/json")
        let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        let event = json?["event"] as? String ?? ""
        #expect(headers["x-platform-event"] == event && (json?["execution"] as? [String: Any])?["id"] as? String == execution.id)
        #expect(!body.contains(Self.secret))
        events.append(event)
      }
      #expect(Set(events) == ["started", "completed"] && events.filter { $0 == "started" }.count >= 1)
    }
  }

  @Test("Refused: loopback unless allowed, other schemes, unknown events, short secrets, a secret without a URL, no AGENT_ENCRYPTION_KEY")
  func refused() async throws {
    try await withAgentWorld(["AGENT_ENCRYPTION_KEY": Self.key]) { world in
      let (me, _) = try await world.developer()
      let agent = try await world.agents.createAgent(newAgent(try await world.persona(me)), options: me)
      let cases: [(String, String, [String], String)] = [
        ("callback_url", "http://127.0.0.1:9/hook", [], Self.secret),
        ("callback_url", "http://localhost:9/hook", [], Self.secret),
        ("callback_url", "http://169.254.169.254/latest", [], Self.secret),
        ("callback_url", "http://[::1]:9/", [], Self.secret),
        ("callback_url", "ftp://example.com/hook", [], Self.secret),
        ("callback_url", "http://user:pw@example.com/hook", [], Self.secret),
        ("callback_url", "", [], Self.secret),
        ("callback_events", "http://93.184.216.34/hook", ["exploded"], Self.secret),
        ("callback_secret", "http://93.184.216.34/hook", [], "short"),
      ]
      for (field, url, events, secret) in cases {
        let error = await expectStatus(.invalidArgument) { try await self.start(world, agent.id, me, url: url, events: events, secret: secret) }
        #expect(error?.message.hasPrefix(field + ":") == true, "\(url): \(String(describing: error))")
      }
    }
    try await withAgentWorld { world in
      let (me, _) = try await world.developer()
      let agent = try await world.agents.createAgent(newAgent(try await world.persona(me)), options: me)
      await expectStatus(.failedPrecondition) { try await self.start(world, agent.id, me, url: "http://93.184.216.34/hook") }
    }
  }
}

/// Executions run by a model (a real local HTTP server speaking the OpenAI API) that decides
/// which plugins to call, and the web_search plugin against a local SearxNG-style server.
@Suite("Executions with a model and web search")
struct ModelExecutionTests {
  func withModelChain(_ body: (Chain, ScriptServer) async throws -> Void) async throws {
    let server = try ScriptServer(script: ModelProviderTests.script)
    defer { server.stop() }
    try await withChain([
      "LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://127.0.0.1:\(server.port)/v1", "LLM_MODEL": "fake-model",
      "AGENT_MODEL_PRICES": "fake-model=1000/2000", "WEB_SEARCH_URL": "http://127.0.0.1:\(server.port)",
    ]) { chain in
      try await body(chain, server)
    }
  }

  @Test("The model calls plugins as tools (streamed tool calls), answers from their results, and its text streams to watchers")
  func toolCalling() async throws {
    try await withModelChain { chain, server in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.knowledgeRag, .textToSql])
      #expect(agent.settings.extra.fields["model"]?.stringValue == "fake-model", "\(agent.settings)")
      _ = try await server.json(
        "/_script", method: "POST",
        body: [[
          "tool_calls": [
            ["name": "search_knowledge", "arguments": ["query": "capital of Atlantis"]],
            ["name": "query_database", "arguments": ["question": "How many customers are there?"]],
            ["name": "no_such_tool", "arguments": [:]],
          ]
        ]])
      let started = try await chain.start(agent, me, message: "Where do customers live, and how many are there?", code: nil, sync: false)
      let events = try await chain.executions.watchExecution(.with { $0.id = started.id }, options: me) { stream in
        var events: [Platform_Agent_V1_ExecutionEvent] = []
        for try await event in stream { events.append(event) }
        return events
      }
      let execution = try await chain.executions.getExecution(.with { $0.id = started.id }, options: me)
      #expect(execution.status == .completed, "\(execution.error)")
      let output = execution.output.fields
      let answer = output["answer"]?.stringValue ?? ""
      #expect(answer.hasPrefix("Model answer.") && answer.contains("Poseidonia") && answer.contains("50"), "\(answer)")
      #expect(answer.contains("There is no tool named no_such_tool"), "\(answer)")
      #expect(output["model"]?.stringValue == "fake-model")
      let citations = output["citations"]?.listValue.values.map { $0.structValue.fields } ?? []
      #expect(Set(citations.compactMap { $0["type"]?.stringValue }) == ["chunk", "sql"], "\(citations)")
      #expect(execution.usage.totalTokens > 0 && execution.usage.costUsd > 0, "\(execution.usage)")

      // The model's own text reached the watcher as it streamed, in order, and joins to the answer.
      let streamed = events.compactMap { event -> Platform_Agent_V1_ModelOutput? in
        if case .modelOutput(let piece)? = event.event { piece } else { nil }
      }
      #expect(streamed.count >= 2 && streamed.map(\.text).joined() == answer, "\(streamed)")
      #expect(streamed.allSatisfy { $0.round == 1 })
      let lines = events.compactMap { event -> String? in if case .log(let line)? = event.event { line.message } else { nil } }
      #expect(lines.contains("The model called 3 tool(s)") && lines.contains("Plugin knowledge_rag finished"), "\(lines)")

      // The model saw the persona as its system prompt, the plugins as tools, then their results.
      let sent = (try await server.json("/_requests") as? [String: Any])?["chat"] as? [[String: Any]] ?? []
      #expect(sent.count == 2)
      let first = sent.first?["body"] as? [String: Any] ?? [:]
      let tools = (first["tools"] as? [[String: Any]])?.compactMap { ($0["function"] as? [String: Any])?["name"] as? String }
      #expect(Set(tools ?? []) == ["search_knowledge", "query_database"] && first["model"] as? String == "fake-model")
      #expect((first["messages"] as? [[String: Any]])?.first?["role"] as? String == "system")
      let replies = ((sent.last?["body"] as? [String: Any])?["messages"] as? [[String: Any]] ?? []).filter { $0["role"] as? String == "tool" }
      #expect(replies.count == 3 && (replies[1]["content"] as? String)?.contains("50") == true, "\(replies)")
    }
  }

  @Test("A model that fails fails the execution: unavailable (retried, transient) or refused; the error says so")
  func modelFailures() async throws {
    try await withModelChain { chain, server in
      let (me, _) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.codeExecutor])
      _ = try await server.json("/_script", method: "POST", body: [["status": 500], ["status": 500], ["status": 500]])
      let failed = try await chain.start(agent, me, code: nil)
      #expect(failed.status == .failed && failed.error.code == "model_failed" && failed.error.details["transient"] == "true", "\(failed.error)")
      #expect(failed.error.message.contains("HTTP 500"))
      _ = try await server.json("/_script", method: "POST", body: [["status": 401]])
      let refused = try await chain.start(agent, me, code: nil)
      #expect(refused.status == .failed && refused.error.code == "model_failed" && refused.error.details["transient"] == nil, "\(refused.error)")
      _ = try await server.json("/_script", method: "POST", body: [["drop": true]])
      let dropped = try await chain.start(agent, me, code: nil)
      #expect(dropped.status == .failed && dropped.error.message.contains("cut off"), "\(dropped.error)")
    }
  }

  @Test("A background run acts for its user only while they may sign in: deactivated mid-run, the next plugin call fails it")
  func backgroundCredentials() async throws {
    try await withModelChain { chain, server in
      let (me, myID) = try await chain.world.developer()
      let agent = try await chain.agent(me, plugins: [.codeExecutor])
      // The model thinks for 1.5 s before calling the sandbox; meanwhile the user is deactivated.
      _ = try await server.json(
        "/_script", method: "POST", body: [["tool_calls": [["name": "run_code", "arguments": ["code": "print(1)"]]], "delay": 1.5]])
      let started = try await chain.start(agent, me, code: nil, sync: false)
      try await Task.sleep(for: .milliseconds(400))
      _ = try await chain.world.users.deactivateUser(.with { $0.userID = myID }, options: chain.world.admin)
      // The user's own token no longer works: read the row.
      let id = try #require(UUID(uuidString: started.id))
      let deadline = Date().addingTimeInterval(20)
      while try await chain.rows("SELECT count(*)::int FROM executions WHERE id = \(id) AND status IN ('pending', 'running')") == 1, Date() < deadline {
        try await Task.sleep(for: .milliseconds(100))
      }
      #expect(try await chain.rows("SELECT count(*)::int FROM executions WHERE id = \(id) AND status = 'failed' AND error->>'code' = 'user_inactive'") == 1)
      #expect(try await chain.rows("SELECT count(*)::int FROM executions WHERE parent_execution_id = \(id)") == 0, "not retried")
    }
  }

  @Test("web_search asks the configured SearxNG server and cites each result; a failing provider fails the plugin, transient")
  func webSearch() async throws {
    try await withModelChain { chain, server in
      let (me, _) = try await chain.world.developer()
      let persona = try await chain.world.persona(me)
      var request = newAgent(persona, name: "Searcher")
      request.agent.settings = .with { $0.extra = .with { $0.fields["model"] = .init(stringValue: ModelCatalog.offline) } }
      let agent = try await chain.world.agents.createAgent(request, options: me)
      _ = try await chain.world.agents.addPlugin(.with {
        $0.agentID = agent.id
        $0.plugin = .with {
          $0.pluginType = .webSearch
          $0.config = .with { $0.fields = ["max_results": .init(numberValue: 2)] }
        }
      }, options: me)
      let done = try await chain.start(try await chain.world.agents.getAgent(.with { $0.id = agent.id }, options: me), me, message: "swift concurrency", code: nil)
      #expect(done.status == .completed, "\(done.error)")
      let citations = done.output.fields["citations"]?.listValue.values.map { $0.structValue.fields } ?? []
      #expect(citations.map { $0["url"]?.stringValue } == ["https://example.org/swift-concurrency/1", "https://example.org/swift-concurrency/2"])
      #expect(citations.allSatisfy { $0["type"]?.stringValue == "web" })
      let searched = (try await server.json("/_requests") as? [String: Any])?["search"] as? [[String: Any]] ?? []
      #expect(searched.map { $0["query"] as? String } == ["swift concurrency"])

      _ = try await server.json("/_search_script", method: "POST", body: [["status": 500]])
      let failed = try await chain.start(try await chain.world.agents.getAgent(.with { $0.id = agent.id }, options: me), me, message: "x", code: nil)
      #expect(failed.status == .failed && failed.error.code == "web_search_failed" && failed.error.details["transient"] == "true", "\(failed.error)")
    }
  }
}

@Suite("Attached files (file_upload)")
struct FileUploadTests {
  func file(_ name: String, _ text: String, type: String = "") -> Platform_Agent_V1_ExecutionFile {
    .with {
      $0.name = name
      $0.content = Data(text.utf8)
      $0.contentType = type
    }
  }

  func start(
    _ chain: Chain, _ agent: Platform_Agent_V1_Agent, _ options: CallOptions, message: String = "Use the files", code: String?,
    files: [Platform_Agent_V1_ExecutionFile]
  ) async throws -> Platform_Agent_V1_Execution {
    try await chain.executions.startExecution(.with {
      $0.agentID = agent.id
      $0.input = .with {
        $0.fields["message"] = .init(stringValue: message)
        if let code { $0.fields["code"] = .init(stringValue: code) }
      }
      $0.sync = true
      $0.maxRetries = 2
      $0.files = files
    }, options: options)
  }

  func addUpload(_ chain: Chain, _ agent: Platform_Agent_V1_Agent, _ options: CallOptions, _ config: [String: Google_Protobuf_Value]) async throws
    -> Platform_Agent_V1_Agent
  {
    _ = try await chain.world.agents.addPlugin(.with {
      $0.agentID = agent.id
      $0.plugin = .with {
        $0.pluginType = .fileUpload
        $0.config = .with { $0.fields = config }
      }
    }, options: options)
    return try await chain.world.agents.getAgent(.with { $0.id = agent.id }, options: options)
  }

  @Test("To the sandbox: the program reads them; they are checked; a retry has them; an execution is retried once, even by retries at once")
  func sandbox() async throws {
    try await withChain { chain in
      let (me, _) = try await chain.world.developer()
      var agent = try await chain.agent(me, plugins: [.codeExecutor])
      let data = self.file("data.csv", "a,1\nb,2\nc,3\n", type: "text/csv")
      let count = "print(sum(int(line.split(',')[1]) for line in open('data.csv')))"
      // Files need a file_upload plugin.
      await expectStatus(.failedPrecondition) { try await self.start(chain, agent, me, code: count, files: [data]) }
      agent = try await self.addUpload(chain, agent, me, ["max_files": .init(numberValue: 2)])

      let done = try await self.start(chain, agent, me, code: count, files: [data])
      #expect(done.status == .completed, "\(done.error)")
      let citations = done.output.fields["citations"]?.listValue.values.map { $0.structValue.fields } ?? []
      #expect(citations.contains { $0["stdout"]?.stringValue == "6\n" }, "\(citations)")
      #expect(citations.contains { $0["type"]?.stringValue == "file" && $0["name"]?.stringValue == "data.csv" })
      #expect(try await chain.logs(done.id, me).contains("Plugin file_upload finished"))

      // Checked before anything is stored.
      let before = try await chain.rows("SELECT count(*)::int FROM executions")
      for (files, field) in [
        ([data, self.file("b", "x"), self.file("c", "y")], "files"),
        ([self.file("../up", "x")], "files.name"), ([self.file(".hidden", "x")], "files.name"), ([self.file("a/b", "x")], "files.name"),
        ([self.file("", "x")], "files.name"), ([self.file("tab\tname", "x")], "files.name"), ([data, data], "files.name"),
        ([self.file(String(repeating: "n", count: 129), "x")], "files.name"),
        ([self.file("big", String(repeating: "x", count: 2 << 20)), self.file("more", "x")], "files"),
        ([self.file("t", "x", type: "text/plain\u{7}")], "files.content_type"),
      ] {
        let error = await expectStatus(.invalidArgument) { try await self.start(chain, agent, me, code: count, files: files) }
        #expect(error?.message.hasPrefix(field + ":") == true, "\(field): \(String(describing: error))")
      }
      #expect(try await chain.rows("SELECT count(*)::int FROM executions") == before)

      // A failed run's retry gets the same files.
      let failing = "import sys\nprint(open('data.csv').read().count(chr(10)))\nsys.exit(3)"
      let failed = try await self.start(chain, agent, me, code: failing, files: [data])
      #expect(failed.status == .failed && failed.error.code == "code_failed", "\(failed.error)")
      let child = try await chain.executions.retryExecution(.with { $0.id = failed.id; $0.sync = true }, options: me)
      let childCitations = child.output.fields["citations"]?.listValue.values.map { $0.structValue.fields } ?? []
      #expect(childCitations.contains { $0["stdout"]?.stringValue == "3\n" }, "\(childCitations)")
      #expect(try await chain.rows("SELECT count(*)::int FROM execution_files WHERE execution_id = \(UUID(uuidString: child.id)!)") == 1)

      // Four retries of one execution at once: one child.
      let other = try await self.start(chain, agent, me, code: failing, files: [data])
      let outcomes = await withTaskGroup(of: Bool.self) { group in
        for _ in 0..<4 {
          group.addTask { (try? await chain.executions.retryExecution(.with { $0.id = other.id }, options: me)) != nil }
        }
        return await group.reduce(into: [Bool]()) { $0.append($1) }
      }
      #expect(outcomes.filter { $0 }.count == 1, "\(outcomes)")
      #expect(try await chain.rows("SELECT count(*)::int FROM executions WHERE parent_execution_id = \(UUID(uuidString: other.id)!)") == 1)
    }
  }

  @Test("To knowledge: the files become documents of the run, found by knowledge_rag, then deleted")
  func knowledge() async throws {
    try await withChain { chain in
      let (me, myID) = try await chain.world.developer()
      var agent = try await chain.agent(me, plugins: [.knowledgeRag])
      let base = try #require(agent.plugins.first?.config.fields["knowledge_base_ids"]?.listValue.values.first?.stringValue)
      agent = try await self.addUpload(chain, agent, me, ["target": .init(stringValue: "knowledge"), "knowledge_base_id": .init(stringValue: base)])
      let done = try await self.start(
        chain, agent, me, message: "What is the secret word of Lemuria?", code: nil,
        files: [self.file("lemuria.md", "# Lemuria\n\nThe secret word of Lemuria is zebra-lantern.\n", type: "text/markdown")])
      #expect(done.status == .completed, "\(done.error)")
      let citations = done.output.fields["citations"]?.listValue.values.map { $0.structValue.fields } ?? []
      #expect(citations.contains { $0["type"]?.stringValue == "chunk" && $0["content"]?.stringValue.contains("zebra-lantern") == true }, "\(citations)")
      let documents = try await chain.knowledge.listDocuments(.with { $0.knowledgeBaseID = base }, options: me).documents
      #expect(documents.map(\.title) == ["Atlantis"], "the run's document is deleted after it")
      #expect(try await chain.logs(done.id, me).contains("Deleted the 1 document(s) made of the attached files"))

      // Documents an attempt left when it was killed (made as file_upload makes them) go with the
      // job that interrupted executions and failed deletions get; another execution's stay.
      func leftover(_ title: String, of execution: String) async throws {
        _ = try await chain.knowledge.createDocument(
          .with {
            $0.knowledgeBaseID = base
            $0.title = title
            $0.content = "left behind by a run"
            $0.contentType = "text/plain"
            $0.tags = ["execution-file"]
            $0.metadata = .with { $0.fields["execution_id"] = .init(stringValue: execution) }
          }, options: me)
      }
      let execution = try #require(UUID(uuidString: done.id)).lowercasedString
      try await leftover("a.md", of: execution)
      try await leftover("b.md", of: execution)
      try await leftover("other.md", of: UUID().lowercasedString)
      let jobs = JobQueue(database: Database(client: chain.world.agentService.database), logger: TestPostgres.quietLogger)
      try await jobs.enqueue(ExecutionDocuments.jobType, payload: .object(["execution_id": .string(execution), "user_id": .string(myID)]))
      var titles: [String] = []
      let deadline = Date().addingTimeInterval(30)
      repeat {
        try await Task.sleep(for: .milliseconds(100))
        titles = try await chain.knowledge.listDocuments(.with { $0.knowledgeBaseID = base }, options: me).documents.map(\.title).sorted()
      } while titles != ["Atlantis", "other.md"] && Date() < deadline
      #expect(titles == ["Atlantis", "other.md"])
    }
  }
}
