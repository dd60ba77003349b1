internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct WorkflowCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "workflow", abstract: "Workflows: DAGs in VueFlow JSON; validate, publish, run, watch, resume.",
    subcommands: [Create.self, List.self, Validate.self, Publish.self, Run.self, Watch.self, Resume.self])

  static func client(_ session: Session) throws -> Platform_Workflow_V1_WorkflowServiceClient {
    .init(channel: try session.channel(.workflow))
  }

  /// A workflow from a JSON file: a Workflow (`{"name": …, "nodes": […], "edges": […]}`) or a
  /// CreateWorkflowRequest (`{"workflow": {…}}`).
  static func workflow(fromFile path: String) throws -> Platform_Workflow_V1_Workflow {
    let text = try Input.text(path)
    if let request = try? Platform_Workflow_V1_CreateWorkflowRequest(jsonString: text), request.hasWorkflow {
      return request.workflow
    }
    do {
      return try Platform_Workflow_V1_Workflow(jsonString: text)
    } catch {
      throw CommandFailure("\(path) is not a workflow in JSON: \(error)", exitCode: 64)
    }
  }

  static func table(_ workflows: [Platform_Workflow_V1_Workflow]) -> Table {
    var table = Table("ID", "NAME", "STATUS", "VERSION", "NODES", "UPDATED")
    for workflow in workflows {
      table.append(
        workflow.id, workflow.name, Format.enumName(workflow.status), "\(workflow.version)", "\(workflow.nodes.count)",
        Format.time(workflow.updateTime))
    }
    return table
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a workflow (a draft) from a JSON file.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "The workflow's JSON: {\"name\": …, \"nodes\": […], \"edges\": […]} or {\"workflow\": {…}}.") var file: String

    func run() async throws {
      let workflow = try WorkflowCommand.workflow(fromFile: self.file)
      try await Session.with(self.global) { session in
        let client = try WorkflowCommand.client(session)
        let created = try await session.call { try await client.createWorkflow(.with { $0.workflow = workflow }, options: $0) }
        try self.global.emit(created) { WorkflowCommand.table([created]).print() }
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your workflows.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Full-text search.") var query = ""
    @Option(help: "At most this many.") var limit = 50

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try WorkflowCommand.client(session)
        let response = try await session.call { options in
          try await client.listWorkflows(
            .with {
              $0.query = self.query
              $0.pageSize = Int32(self.limit)
            }, options: options)
        }
        try self.global.emitList(response, shown: response.workflows.count, nextPageToken: response.nextPageToken) {
          WorkflowCommand.table(response.workflows).print()
        }
      }
    }
  }

  struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Validate a stored workflow (or a JSON file); lists every issue. Exit 1 when invalid.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The workflow's id.") var id: String?
    @Option(help: "Validate this JSON file instead.") var file: String?

    func validate() throws {
      guard (self.id == nil) != (self.file == nil) else { throw ValidationError("Give a workflow id or --file") }
    }

    func run() async throws {
      let fileWorkflow = try self.file.map(WorkflowCommand.workflow(fromFile:))
      let response = try await Session.with(self.global) { session in
        let client = try WorkflowCommand.client(session)
        return try await session.call { options in
          try await client.validateWorkflow(
            .with {
              if let fileWorkflow { $0.workflow = fileWorkflow } else { $0.workflowID = self.id ?? "" }
            }, options: options)
        }
      }
      try self.global.emit(response) {
        if response.isValid { print("valid: \(response.topologicalOrder.joined(separator: " → "))") }
        if !response.issues.isEmpty {
          var table = Table("LEVEL", "CODE", "NODE", "EDGE", "MESSAGE", maxCellWidth: 100)
          for issue in response.issues {
            table.append(issue.isWarning ? "warning" : "error", Format.enumName(issue.code), issue.nodeID, issue.edgeID, issue.message)
          }
          table.print()
        }
      }
      if !response.isValid { throw CommandFailure("the workflow is not valid (\(response.issues.filter { !$0.isWarning }.count) errors)") }
    }
  }

  struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate and publish a workflow (ACTIVE, with a snapshot).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The workflow's id.") var id: String

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try WorkflowCommand.client(session)
        let workflow = try await session.call { try await client.publishWorkflow(.with { $0.id = self.id }, options: $0) }
        try self.global.emit(workflow) { WorkflowCommand.table([workflow]).print() }
      }
    }
  }

  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Start a run; prints its id, or with --wait follows it to the end and prints its output.",
      discussion: "With --wait, exits 1 unless the run COMPLETED.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The workflow's id.") var id: String
    @Option(help: "The inputs as a JSON object.") var input: String?
    @Flag(help: "Follow the run until it ends.") var wait = false

    func run() async throws {
      let inputs = try Input.structure(self.input, option: "--input")
      try await Session.with(self.global) { session in
        let client = try WorkflowCommand.client(session)
        let run = try await session.call { options in
          try await client.runWorkflow(
            .with {
              $0.workflowID = self.id
              $0.inputs = inputs
              $0.requestID = UUID().uuidString.lowercased()
            }, options: options)
        }
        guard self.wait else {
          try self.global.emit(run) { print(run.id) }
          return
        }
        if !self.global.json { printError("run \(run.id)") }
        try await WorkflowCommand.follow(run.id, client: client, session: session)
      }
    }
  }

  /// Streams a run's events until it ends; prints the output of a COMPLETED run, fails otherwise.
  static func follow(_ id: String, client: Platform_Workflow_V1_WorkflowServiceClient, session: Session) async throws {
    let json = session.global.json
    let last = try await session.call(long: true) { options in
      try await client.watchWorkflowExecution(.with { $0.id = id }, options: options) { events in
        var last: Platform_Workflow_V1_WorkflowExecution?
        for try await event in events {
          if json { print(try event.jsonString()) }
          switch event.event {
          case .execution(let run):
            last = run
            if !json { print("\(Format.time(event.eventTime))  run  \(Format.enumName(run.status))  \(run.completedNodes)/\(run.totalNodes) nodes") }
          case .node(let node):
            if !json {
              let error = node.error.message.isEmpty ? "" : "  \(node.error.message)"
              print("\(Format.time(event.eventTime))  \(node.nodeID)  \(Format.enumName(event.nodeEvent))\(error)")
            }
          case .none:
            break
          }
        }
        return last
      }
    }
    guard let last else { throw CommandFailure("the watch ended without the run") }
    guard last.status == .completed else {
      throw CommandFailure("run \(last.id) \(Format.enumName(last.status)): \(last.error.code) \(last.error.message)")
    }
    if !json { print(Format.json(last.output)) }
  }

  struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Follow a run: node events until it ends, then its output. Exit 1 unless it COMPLETED.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run's id.") var id: String

    func run() async throws {
      try await Session.with(self.global) { session in
        try await WorkflowCommand.follow(self.id, client: try WorkflowCommand.client(session), session: session)
      }
    }
  }

  struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Resume a FAILED, CANCELLED or TIMEOUT run from its unfinished nodes.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run's id.") var id: String
    @Option(help: "New data for nodes as JSON: {\"NODE_ID\": {…}, …}.") var nodeData: String?
    @Flag(help: "Follow the run until it ends.") var wait = false

    func run() async throws {
      let nodeData = try Input.structure(self.nodeData, option: "--node-data")
      var changes: [String: Google_Protobuf_Struct] = [:]
      for (node, value) in nodeData.fields {
        guard case .structValue(let data) = value.kind else { throw CommandFailure("--node-data: \(node) is not an object", exitCode: 64) }
        changes[node] = data
      }
      try await Session.with(self.global) { session in
        let client = try WorkflowCommand.client(session)
        let run = try await session.call { options in
          try await client.resumeWorkflowExecution(
            .with {
              $0.id = self.id
              $0.nodeData = changes
            }, options: options)
        }
        guard self.wait else {
          try self.global.emit(run) { print("\(run.id) \(Format.enumName(run.status))") }
          return
        }
        try await WorkflowCommand.follow(run.id, client: client, session: session)
      }
    }
  }
}
