internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct AgentCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "agent", abstract: "Agents: a persona, model settings and plugins; run them and watch their executions.",
    subcommands: [Create.self, List.self, AddPlugin.self, Run.self, Watch.self])

  static func agents(_ session: Session) throws -> Platform_Agent_V1_AgentServiceClient {
    .init(channel: try session.channel(.agent))
  }

  static func executions(_ session: Session) throws -> Platform_Agent_V1_ExecutionServiceClient {
    .init(channel: try session.channel(.agent))
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an agent.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Its name.") var name: String
    @Option(help: "The persona's id (its template is the system prompt).") var persona: String
    @Option(help: "A description.") var description = ""
    @Option(help: "The model (default: the service's; offline-planner always exists).") var model: String?

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try AgentCommand.agents(session)
        let agent = try await session.call { options in
          try await client.createAgent(
            .with {
              $0.agent = .with {
                $0.name = self.name
                $0.personaID = self.persona
                $0.description_p = self.description
                if let model = self.model { $0.settings.extra.fields["model"] = Google_Protobuf_Value(stringValue: model) }
              }
            }, options: options)
        }
        try self.global.emit(agent) { AgentCommand.table([agent]).print() }
      }
    }
  }

  static func table(_ agents: [Platform_Agent_V1_Agent]) -> Table {
    var table = Table("ID", "NAME", "STATUS", "PERSONA", "PLUGINS", "VERSION")
    for agent in agents {
      let plugins = agent.plugins.map { Format.enumName($0.pluginType).lowercased() }.joined(separator: ",")
      table.append(agent.id, agent.name, Format.enumName(agent.status), agent.personaID, plugins, "\(agent.version)")
    }
    return table
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your agents.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Search names and descriptions.") var query = ""
    @Option(help: "At most this many.") var limit = 50

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try AgentCommand.agents(session)
        let response = try await session.call { options in
          try await client.listAgents(
            .with {
              $0.query = self.query
              $0.pageSize = Int32(self.limit)
            }, options: options)
        }
        try self.global.emitList(response, shown: response.agents.count, nextPageToken: response.nextPageToken) {
          AgentCommand.table(response.agents).print()
        }
      }
    }
  }

  struct AddPlugin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "add-plugin", abstract: "Add a plugin to an agent.",
      discussion: """
        Types and their config keys: code-executor (language, timeout_ms, memory_mb), \
        text-to-sql (database_id, execute, max_rows), knowledge-rag (knowledge_base_ids, top_k, \
        mode, min_score), web-search (max_results), file-upload (target, knowledge_base_id, max_files).
        Example: platform agent add-plugin AGENT knowledge-rag --config '{"knowledge_base_ids": ["KB"], "top_k": 3}'
        """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The agent's id.") var agent: String
    @Argument(help: "The plugin's type.") var type: PluginType
    @Option(help: "The plugin's configuration as a JSON object.") var config: String?

    enum PluginType: String, CaseIterable, ExpressibleByArgument {
      case codeExecutor = "code-executor"
      case textToSQL = "text-to-sql"
      case knowledgeRAG = "knowledge-rag"
      case webSearch = "web-search"
      case fileUpload = "file-upload"

      var proto: Platform_Agent_V1_PluginType {
        switch self {
        case .codeExecutor: .codeExecutor
        case .textToSQL: .textToSql
        case .knowledgeRAG: .knowledgeRag
        case .webSearch: .webSearch
        case .fileUpload: .fileUpload
        }
      }
    }

    func run() async throws {
      let config = try Input.structure(self.config, option: "--config")
      try await Session.with(self.global) { session in
        let client = try AgentCommand.agents(session)
        let plugin = try await session.call { options in
          try await client.addPlugin(
            .with {
              $0.agentID = self.agent
              $0.plugin = .with {
                $0.pluginType = self.type.proto
                $0.config = config
              }
            }, options: options)
        }
        try self.global.emit(plugin) {
          var table = Table("ID", "TYPE", "ORDER", "CONFIG", maxCellWidth: 80)
          table.append(plugin.id, Format.enumName(plugin.pluginType), "\(plugin.orderIndex)", Format.json(plugin.config))
          table.print()
        }
      }
    }
  }

  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run an agent and print its answer.",
      discussion: "Synchronous by default (exit 1 unless the execution COMPLETED). --async starts it and prints the execution's id; `platform agent watch ID` follows it.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The agent's id.") var agent: String
    @Argument(help: "The message.") var message: String
    @Option(help: "More input fields as a JSON object (e.g. {\"code\": \"print(6 * 7)\"}).") var input: String?
    @Flag(name: .customLong("async"), help: "Start the execution and return at once.") var startOnly = false

    func run() async throws {
      var input = try Input.structure(self.input, option: "--input")
      input.fields["message"] = Google_Protobuf_Value(stringValue: self.message)
      let execution = try await Session.with(self.global) { session in
        let client = try AgentCommand.executions(session)
        // A synchronous run lasts as long as the agent works: no default deadline.
        return try await session.call(long: !self.startOnly) { options in
          try await client.startExecution(
            .with {
              $0.agentID = self.agent
              $0.input = input
              $0.sync = !self.startOnly
              $0.requestID = UUID().uuidString.lowercased()
            }, options: options)
        }
      }
      try self.global.emit(execution) {
        if self.startOnly {
          print(execution.id)
        } else {
          print(AgentCommand.answer(execution))
          printError("[\(execution.id): \(Format.enumName(execution.status)), \(execution.executionTimeMs) ms]")
        }
      }
      try AgentCommand.checkEnded(execution, startOnly: self.startOnly)
    }
  }

  static func answer(_ execution: Platform_Agent_V1_Execution) -> String {
    if let answer = execution.output.fields["answer"] { return Format.value(answer) }
    return Format.json(execution.output)
  }

  static func checkEnded(_ execution: Platform_Agent_V1_Execution, startOnly: Bool = false) throws {
    if startOnly && [.pending, .running].contains(execution.status) { return }
    guard execution.status == .completed else {
      throw CommandFailure("execution \(execution.id) \(Format.enumName(execution.status)): \(execution.error.code) \(execution.error.message)")
    }
  }

  struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Follow an execution: status, log lines and the model's text, until it ends; then its answer.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The execution's id.") var id: String

    func run() async throws {
      let last = try await Session.with(self.global) { session in
        let client = try AgentCommand.executions(session)
        return try await session.call(long: true) { options in
          try await client.watchExecution(.with { $0.id = self.id }, options: options) { events in
            var last: Platform_Agent_V1_Execution?
            for try await event in events {
              if self.global.json {
                print(try event.jsonString())
              }
              switch event.event {
              case .execution(let execution):
                last = execution
                if !self.global.json {
                  print("\(Format.time(event.eventTime))  \(Format.enumName(execution.status))  \(execution.progress)%")
                }
              case .log(let line):
                if !self.global.json { print("\(Format.time(line.createTime))  \(Format.enumName(line.level))  \(line.message)") }
              case .modelOutput(let output):
                if !self.global.json { print(output.text, terminator: "") }
              case .none:
                break
              }
            }
            return last
          }
        }
      }
      guard let last else { throw CommandFailure("the watch ended without the execution") }
      if !self.global.json && last.status == .completed { print(AgentCommand.answer(last)) }
      try AgentCommand.checkEnded(last)
    }
  }
}
