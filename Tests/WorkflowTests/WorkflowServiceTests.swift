import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing

@testable import Workflow

typealias WorkflowClient = Platform_Workflow_V1_WorkflowServiceClient

/// A node of a test workflow, its data as JSON text.
func node(_ id: String, _ type: String, _ data: String = "{}") throws -> Platform_Workflow_V1_Node {
  let parsed = try Google_Protobuf_Struct(jsonString: data)
  return .with {
    $0.id = id
    $0.type = type
    $0.data = parsed
  }
}

func edge(_ source: String, _ target: String, handle: String = "", condition: String = "") -> Platform_Workflow_V1_Edge {
  .with {
    $0.id = "\(source)-\(target)\(handle.isEmpty ? "" : "-" + handle)"
    $0.source = source
    $0.target = target
    $0.sourceHandle = handle
    $0.condition = condition
  }
}

func workflow(_ name: String, nodes: [Platform_Workflow_V1_Node], edges: [Platform_Workflow_V1_Edge]) -> Platform_Workflow_V1_Workflow {
  .with {
    $0.name = name
    $0.nodes = nodes
    $0.edges = edges
  }
}

func inputs(_ json: String) throws -> Google_Protobuf_Struct { try Google_Protobuf_Struct(jsonString: json) }

/// The counting HTTP server behind `http` nodes.
final class CountingServer: Sendable {
  let server: ScriptServer

  init() throws {
    self.server = try ScriptServer(script: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("counting_server.py"))
  }

  var base: String { "http://127.0.0.1:\(self.server.port)/n" }

  func script(_ json: [String: Any]) async throws { _ = try await self.server.json("/_script", method: "POST", body: json) }

  func counts() async throws -> (counts: [String: Int], maxInFlight: [String: Int]) {
    let answer = try await self.server.json("/_counts") as? [String: Any] ?? [:]
    return (answer["counts"] as? [String: Int] ?? [:], answer["max_in_flight"] as? [String: Int] ?? [:])
  }

  deinit { self.server.process.terminate() }
}

@Suite(.serialized)
struct WorkflowServiceTests {
  static func withService<Result: Sendable>(
    maxParallel: Int = 10, environment: [String: String] = [:], _ body: (PlatformTestService, WorkflowClient) async throws -> Result
  ) async throws -> Result {
    try await PlatformTestService.run(
      WorkflowService(),
      configure: {
        $0.environment = Environment(
          ["WORKFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.0/8", "WORKFLOW_MAX_PARALLEL": "\(maxParallel)", "WORKFLOW_SCHEDULER_INTERVAL_MS": "200"]
            .merging(environment) { _, new in new })
      }
    ) { service in
      try await body(service, WorkflowClient(channel: service.client))
    }
  }

  static func options(_ service: PlatformTestService, user: UUID, seconds: Int64 = 30) async throws -> CallOptions {
    var options = try await service.options(for: user)
    options.timeout = .seconds(seconds)
    return options
  }

  @Test func crudAndOwnership() async throws {
    try await Self.withService { service, client in
      let owner = UUID()
      let other = UUID()
      let options = try await Self.options(service, user: owner)
      var draft = workflow(
        "Greeting", nodes: [try node("start", "start"), try node("hello", "template", #"{"template": "Hi {{input.name}}"}"#), try node("end", "end")],
        edges: [edge("start", "hello"), edge("hello", "end")])
      draft.tags = ["demo", "greeting"]
      let created = try await client.createWorkflow(.with { $0.workflow = draft }, options: options)
      #expect(created.status == .draft)
      #expect(created.version == 1)
      #expect(created.nodes.count == 3)
      let read = try await client.getWorkflow(.with { $0.id = created.id }, options: options)
      #expect(read.nodes.map(\.id) == ["start", "hello", "end"])
      #expect(JSONValue(read.nodes[1].data).objectValue?["template"] == .string("Hi {{input.name}}"))
      // Another user's workflow is NOT_FOUND everywhere.
      let otherOptions = try await Self.options(service, user: other)
      await expectStatus(.notFound) { _ = try await client.getWorkflow(.with { $0.id = created.id }, options: otherOptions) }
      await expectStatus(.notFound) {
        _ = try await client.runWorkflow(.with { $0.workflowID = created.id }, options: otherOptions)
      }
      await expectStatus(.notFound) { _ = try await client.deleteWorkflow(.with { $0.id = created.id }, options: otherOptions) }
      let othersList = try await client.listWorkflows(.with { _ in }, options: otherOptions)
      #expect(othersList.workflows.isEmpty)
      // List: tags, full text.
      let byTag = try await client.listWorkflows(.with { $0.tags = ["greeting"] }, options: options)
      #expect(byTag.workflows.map(\.id) == [created.id])
      #expect(byTag.workflows[0].nodes.isEmpty)
      let byQuery = try await client.listWorkflows(.with { $0.query = "greeting" }, options: options)
      #expect(byQuery.totalSize == 1)
      let none = try await client.listWorkflows(.with { $0.tags = ["missing"] }, options: options)
      #expect(none.totalSize == 0)
      // Update with the version read; a stale version is FAILED_PRECONDITION.
      let updated = try await client.updateWorkflow(
        .with {
          $0.workflow = .with {
            $0.id = created.id
            $0.name = "Greeting 2"
          }
          $0.updateMask = .with { $0.paths = ["name"] }
          $0.version = 1
        }, options: options)
      #expect(updated.version == 2)
      #expect(updated.name == "Greeting 2")
      await expectStatus(.failedPrecondition) {
        _ = try await client.updateWorkflow(
          .with {
            $0.workflow = .with {
              $0.id = created.id
              $0.name = "Stale"
            }
            $0.updateMask = .with { $0.paths = ["name"] }
            $0.version = 1
          }, options: options)
      }
      await expectStatus(.invalidArgument) {
        _ = try await client.updateWorkflow(
          .with {
            $0.workflow = .with { $0.id = created.id }
            $0.updateMask = .with { $0.paths = ["user_id"] }
            $0.version = 2
          }, options: options)
      }
      // An ACTIVE workflow must be valid.
      await expectStatus(.failedPrecondition) {
        _ = try await client.createWorkflow(
          .with {
            $0.workflow = workflow("Broken", nodes: [try node("start", "start")], edges: [])
            $0.workflow.status = .active
          }, options: options)
      }
      // Malformed input names its field; nothing is stored.
      await expectStatus(.invalidArgument, messageContains: "workflow.nodes[1].id") {
        _ = try await client.createWorkflow(
          .with { $0.workflow = workflow("Bad id", nodes: [try node("start", "start"), try node("has space", "end")], edges: []) }, options: options)
      }
      await expectStatus(.invalidArgument, messageContains: "workflow.name") {
        _ = try await client.createWorkflow(.with { $0.workflow = workflow("", nodes: [], edges: []) }, options: options)
      }
      // Idempotent create.
      let requestID = UUID().uuidString
      let first = try await client.createWorkflow(.with {
        $0.workflow = draft
        $0.requestID = requestID
      }, options: options)
      let second = try await client.createWorkflow(.with {
        $0.workflow = draft
        $0.requestID = requestID
      }, options: options)
      #expect(first.id == second.id)
      // Soft delete.
      _ = try await client.deleteWorkflow(.with { $0.id = created.id }, options: options)
      await expectStatus(.notFound) { _ = try await client.getWorkflow(.with { $0.id = created.id }, options: options) }
    }
  }

  @Test func validationReportsEveryIssueKind() async throws {
    try await Self.withService { service, client in
      let options = try await Self.options(service, user: UUID())
      func issues(_ nodes: [Platform_Workflow_V1_Node], _ edges: [Platform_Workflow_V1_Edge]) async throws -> Platform_Workflow_V1_ValidateWorkflowResponse {
        try await client.validateWorkflow(.with { $0.workflow = workflow("v", nodes: nodes, edges: edges) }, options: options)
      }
      let valid = try await issues(
        [try node("s", "start"), try node("t", "template", #"{"template": "{{input.x}}"}"#), try node("e", "end", #"{"output": "{{nodes.t.output.text}}"}"#)],
        [edge("s", "t"), edge("t", "e")])
      #expect(valid.isValid)
      #expect(valid.topologicalOrder == ["s", "t", "e"])

      let cycle = try await issues(
        [try node("s", "start"), try node("a", "template", #"{"template": "a"}"#), try node("b", "template", #"{"template": "b"}"#), try node("e", "end")],
        [edge("s", "a"), edge("a", "b"), edge("b", "a"), edge("b", "e")])
      #expect(!cycle.isValid)
      #expect(cycle.issues.contains { $0.code == .cycle && $0.nodeID == "a" })

      let missing = try await issues([try node("a", "template", #"{"template": "a"}"#)], [])
      #expect(missing.issues.contains { $0.code == .missingInput })
      #expect(missing.issues.contains { $0.code == .missingOutput })

      let unreachable = try await issues(
        [try node("s", "start"), try node("e", "end"), try node("lost", "template", #"{"template": "x"}"#)], [edge("s", "e")])
      #expect(unreachable.isValid, "an unreachable node is a warning")
      #expect(unreachable.issues.contains { $0.code == .unreachableNode && $0.nodeID == "lost" && $0.isWarning })

      let unknownType = try await issues([try node("s", "start"), try node("x", "teleport"), try node("e", "end")], [edge("s", "x"), edge("x", "e")])
      #expect(unknownType.issues.contains { $0.code == .unknownNodeType && $0.nodeID == "x" })

      let badData = try await issues(
        [try node("s", "start"), try node("h", "http", #"{"method": "FETCH"}"#), try node("w", "wait", #"{"seconds": -1}"#), try node("e", "end")],
        [edge("s", "h"), edge("h", "w"), edge("w", "e")])
      #expect(badData.issues.contains { $0.code == .invalidNodeData && $0.nodeID == "h" && $0.message.contains("data.url") })
      #expect(badData.issues.contains { $0.code == .invalidNodeData && $0.nodeID == "h" && $0.message.contains("data.method") })
      #expect(badData.issues.contains { $0.code == .invalidNodeData && $0.nodeID == "w" })

      let references = try await issues(
        [
          try node("s", "start"), try node("a", "template", #"{"template": "{{nodes.b.output.text}}"}"#),
          try node("b", "variable_assign", #"{"variables": {"x": "{{nodes.ghost.output.y}}", "y": "{{nodes.s.output.z}}"}}"#),
          try node("c", "http", #"{"url": "{{nodes.b.output.nope}}"}"#), try node("e", "end"),
        ], [edge("s", "a"), edge("a", "b"), edge("b", "c"), edge("c", "e")])
      #expect(references.issues.contains { $0.code == .unknownReference && $0.nodeID == "a" && $0.message.contains("not upstream") })
      #expect(references.issues.contains { $0.code == .unknownReference && $0.nodeID == "b" && $0.message.contains("ghost") })
      #expect(references.issues.contains { $0.code == .unknownReference && $0.nodeID == "c" && $0.message.contains("nope") })

      let condition = try await issues(
        [try node("s", "start"), try node("c", "condition", #"{"expression": "input.x >"}"#), try node("e", "end")],
        [edge("s", "c"), edge("c", "e", handle: "true"), edge("c", "e", handle: "false", condition: "output.result ==")])
      #expect(condition.issues.contains { $0.code == .invalidCondition && $0.nodeID == "c" })
      #expect(condition.issues.contains { $0.code == .invalidCondition && !$0.edgeID.isEmpty })

      let dangling = try await issues([try node("s", "start"), try node("e", "end")], [edge("s", "e"), edge("s", "nowhere")])
      #expect(dangling.issues.contains { $0.code == .danglingEdge && $0.edgeID == "s-nowhere" })

      let duplicate = try await issues([try node("s", "start"), try node("s", "end")], [])
      #expect(duplicate.issues.contains { $0.code == .duplicateID && $0.nodeID == "s" })

      // Hostile definitions are refused before any graph work.
      let many = (0..<10_000).map { index in Platform_Workflow_V1_Node.with { $0.id = "n\(index)"; $0.type = "template" } }
      await expectStatus(.invalidArgument, messageContains: "at most 500 nodes") {
        _ = try await client.validateWorkflow(.with { $0.workflow = workflow("big", nodes: many, edges: []) }, options: options)
      }
      await expectStatus(.invalidArgument, messageContains: "at most 500 nodes") {
        _ = try await client.createWorkflow(.with { $0.workflow = workflow("big", nodes: many, edges: []) }, options: options)
      }
      let deepPath = "{{nodes.s.output" + String(repeating: ".x", count: 200) + "}}"
      let deep = try await issues([try node("s", "start"), try node("t", "variable_assign", #"{"variables": {"v": "\#(deepPath)"}}"#), try node("e", "end")], [edge("s", "t"), edge("t", "e")])
      #expect(deep.issues.contains { $0.code == .unknownReference && $0.message.contains("not a reference") })
    }
  }

  @Test func runsBranchesTemplatesAndAggregates() async throws {
    try await Self.withService { service, client in
      let options = try await Self.options(service, user: UUID())
      let definition = workflow(
        "Branches",
        nodes: [
          try node("start", "start", #"{"inputs": {"name": {"type": "string", "required": true}, "score": {"type": "number"}}}"#),
          try node("check", "condition", #"{"cases": [{"id": "high", "expression": "input.score >= 50"}]}"#),
          try node("praise", "template", #"{"template": "Well done, {{input.name}}!"}"#),
          try node("encourage", "template", #"{"template": "Keep going, {{input.name}}."}"#),
          try node("facts", "variable_assign", #"{"variables": {"score": "{{input.score}}", "label": "score={{input.score}}"}}"#),
          try node("merge", "aggregate", #"{"mode": "merge"}"#),
          try node("end", "end", #"{"output": {"message": "{{nodes.merge.output.praise.text}}{{nodes.merge.output.encourage.text}}", "score": "{{nodes.facts.output.score}}"}}"#),
        ],
        edges: [
          edge("start", "check"), edge("check", "praise", handle: "high"), edge("check", "encourage", handle: "else"), edge("start", "facts"),
          edge("praise", "merge"), edge("encourage", "merge"), edge("facts", "merge"), edge("merge", "end"),
        ])
      let created = try await client.createWorkflow(.with { $0.workflow = definition }, options: options)
      let run = try await client.runWorkflow(
        .with {
          $0.workflowID = created.id
          $0.inputs = try inputs(#"{"name": "Ada", "score": 72}"#)
          $0.sync = true
        }, options: options)
      #expect(run.status == .completed, "\(run.error)")
      let output = JSONValue(run.output).objectValue ?? [:]
      #expect(output["message"] == .string("Well done, Ada!"))
      #expect(output["score"] == .number(72), "a whole reference keeps its type")
      let byID = Dictionary(uniqueKeysWithValues: run.nodeExecutions.map { ($0.nodeID, $0) })
      #expect(byID["encourage"]?.skipped == true)
      #expect(byID["praise"]?.status == .completed && byID["praise"]?.skipped == false)
      #expect(JSONValue(byID["check"]!.output).objectValue?["branch"] == .string("high"))
      #expect(run.totalNodes == 7)
      #expect(run.completedNodes == 7)
      #expect(run.workflowVersion == 1)

      // Inputs are checked against the start node's fields.
      await expectStatus(.invalidArgument, messageContains: "inputs.name") {
        _ = try await client.runWorkflow(.with { $0.workflowID = created.id; $0.inputs = try inputs(#"{"score": 1}"#) }, options: options)
      }
      await expectStatus(.invalidArgument, messageContains: "inputs.score") {
        _ = try await client.runWorkflow(.with { $0.workflowID = created.id; $0.inputs = try inputs(#"{"name": "x", "score": "high"}"#) }, options: options)
      }

      // Async: PENDING at once; the watcher sees node events and the end.
      let started = try await client.runWorkflow(
        .with {
          $0.workflowID = created.id
          $0.inputs = try inputs(#"{"name": "Bo", "score": 10}"#)
        }, options: options)
      #expect(started.status == .pending)
      let events = try await client.watchWorkflowExecution(.with { $0.id = started.id }, options: options) { stream in
        var events: [Platform_Workflow_V1_WorkflowExecutionEvent] = []
        for try await event in stream { events.append(event) }
        return events
      }
      var kinds: [String: [Platform_Workflow_V1_NodeEventKind]] = [:]
      var last: Platform_Workflow_V1_WorkflowExecution?
      for event in events {
        switch event.event {
        case .node(let node)?: kinds[node.nodeID, default: []].append(event.nodeEvent)
        case .execution(let execution)?: last = execution
        case nil: break
        }
      }
      #expect(last?.status == .completed)
      #expect(kinds["encourage"] == [.started, .finished])
      #expect(kinds["praise"] == [.skipped])
      #expect(JSONValue(last!.output).objectValue?["message"] == .string("Keep going, Bo."))

      // Listing runs, newest first.
      let runs = try await client.listWorkflowExecutions(.with { $0.workflowID = created.id }, options: options)
      #expect(runs.executions.map(\.id).first == started.id)
      #expect(runs.totalSize == 2)
    }
  }

  @Test func parallelBranchesAreBoundedAndRetriesAndErrorStrategiesWork() async throws {
    let server = try CountingServer()
    try await Self.withService(maxParallel: 3) { service, client in
      let options = try await Self.options(service, user: UUID())
      try await server.script(["slow": ["delay": 0.3]])
      var nodes = [try node("start", "start"), try node("end", "end")]
      var edges: [Platform_Workflow_V1_Edge] = []
      for index in 0..<8 {
        nodes.append(try node("b\(index)", "http", #"{"url": "\#(server.base)/slow"}"#))
        edges += [edge("start", "b\(index)"), edge("b\(index)", "end")]
      }
      let fanOut = try await client.createWorkflow(.with { $0.workflow = workflow("Fan-out", nodes: nodes, edges: edges) }, options: options)
      let run = try await client.runWorkflow(.with { $0.workflowID = fanOut.id; $0.sync = true }, options: options)
      #expect(run.status == .completed, "\(run.error)")
      let (counts, inFlight) = try await server.counts()
      #expect(counts["slow"] == 8)
      #expect(inFlight["slow"] == 3, "WORKFLOW_MAX_PARALLEL=3 bounds the branches in flight")

      // Retries: two 500s, then 200, within max_attempts 3.
      try await server.script(["flaky": ["statuses": [500, 500, 200]], "broken": ["statuses": [404]], "after": [:]])
      let retrying = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Retry",
            nodes: [
              try node("start", "start"),
              try node("flaky", "http", #"{"url": "\#(server.base)/flaky", "retry": {"max_attempts": 3, "backoff_ms": 10}}"#),
              try node("end", "end"),
            ], edges: [edge("start", "flaky"), edge("flaky", "end")])
        }, options: options)
      let retried = try await client.runWorkflow(.with { $0.workflowID = retrying.id; $0.sync = true }, options: options)
      #expect(retried.status == .completed)
      #expect(retried.nodeExecutions.first { $0.nodeID == "flaky" }?.attempt == 3)

      // on_error default: the node completes with its default output; fail_branch: the fail edge runs.
      let strategies = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Strategies",
            nodes: [
              try node("start", "start"),
              try node("fallback", "http", #"{"url": "\#(server.base)/broken", "on_error": "default", "default_output": {"body": "fallback"}}"#),
              try node("guarded", "http", #"{"url": "\#(server.base)/broken", "on_error": "fail_branch"}"#),
              try node("recover", "template", #"{"template": "recovered from {{nodes.guarded.output.error.code}}"}"#),
              try node("after", "http", #"{"url": "\#(server.base)/after"}"#),
              try node("end", "end", #"{"output": {"fallback": "{{nodes.fallback.output.body}}", "recover": "{{nodes.recover.output.text}}"}}"#),
            ],
            edges: [
              edge("start", "fallback"), edge("start", "guarded"), edge("guarded", "recover", handle: "fail"), edge("guarded", "after"),
              edge("fallback", "end"), edge("recover", "end"), edge("after", "end"),
            ])
        }, options: options)
      let handled = try await client.runWorkflow(.with { $0.workflowID = strategies.id; $0.sync = true }, options: options)
      #expect(handled.status == .completed, "\(handled.error)")
      let output = JSONValue(handled.output).objectValue ?? [:]
      #expect(output["fallback"] == .string("fallback"))
      #expect(output["recover"] == .string("recovered from http_404"))
      #expect(handled.nodeExecutions.first { $0.nodeID == "after" }?.skipped == true)
      #expect(try await server.counts().counts["after"] == nil)

      // on_error fail (the default): the run fails, naming the node.
      let failing = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Fails", nodes: [try node("start", "start"), try node("broken", "http", #"{"url": "\#(server.base)/broken"}"#), try node("end", "end")],
            edges: [edge("start", "broken"), edge("broken", "end")])
        }, options: options)
      let failed = try await client.runWorkflow(.with { $0.workflowID = failing.id; $0.sync = true }, options: options)
      #expect(failed.status == .failed)
      #expect(failed.error.message.contains("broken"))
      #expect(failed.nodeExecutions.first { $0.nodeID == "broken" }?.status == .failed)
    }
  }

  @Test func resumeRunsOnlyWhatDidNotComplete() async throws {
    let server = try CountingServer()
    try await Self.withService { service, client in
      let options = try await Self.options(service, user: UUID())
      try await server.script(["first": [:], "second": ["statuses": [503]], "third": [:]])
      let created = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Resumable",
            nodes: [
              try node("start", "start"), try node("first", "http", #"{"url": "\#(server.base)/first", "method": "POST", "body": {"step": 1}}"#),
              try node("second", "http", #"{"url": "\#(server.base)/second", "method": "POST", "body": {"from": "{{nodes.first.output.body.count}}"}}"#),
              try node("third", "http", #"{"url": "\#(server.base)/third", "method": "POST"}"#), try node("end", "end"),
            ], edges: [edge("start", "first"), edge("first", "second"), edge("second", "third"), edge("third", "end")])
        }, options: options)
      let failed = try await client.runWorkflow(.with { $0.workflowID = created.id; $0.sync = true }, options: options)
      #expect(failed.status == .failed)
      #expect(try await server.counts().counts == ["first": 1, "second": 1])
      // A completed node takes no changed data.
      await expectStatus(.failedPrecondition) {
        _ = try await client.resumeWorkflowExecution(
          .with {
            $0.id = failed.id
            $0.nodeData = ["first": try inputs(#"{"url": "http://127.0.0.1:1/"}"#)]
          }, options: options)
      }
      // Resume with changed data for the failed node: it goes to a path that answers.
      _ = try await client.resumeWorkflowExecution(
        .with {
          $0.id = failed.id
          $0.nodeData = ["second": try inputs(#"{"url": "\#(server.base)/second-fixed"}"#)]
        }, options: options)
      var resumed = try await client.getWorkflowExecution(.with { $0.id = failed.id }, options: options)
      for _ in 0..<200 where !(resumed.status == .completed || resumed.status == .failed) {
        try await Task.sleep(for: .milliseconds(50))
        resumed = try await client.getWorkflowExecution(.with { $0.id = failed.id }, options: options)
      }
      #expect(resumed.status == .completed, "\(resumed.error)")
      #expect(resumed.resumeCount == 1)
      let counts = try await server.counts().counts
      #expect(counts["first"] == 1, "a completed node never runs again")
      #expect(counts["second"] == 1 && counts["second-fixed"] == 1 && counts["third"] == 1)
      // Resuming a completed run is refused.
      await expectStatus(.failedPrecondition) { _ = try await client.resumeWorkflowExecution(.with { $0.id = failed.id }, options: options) }
    }
  }

  @Test func cancelStopsARunningNode() async throws {
    try await Self.withService { service, client in
      let options = try await Self.options(service, user: UUID())
      let created = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Slow", nodes: [try node("start", "start"), try node("pause", "wait", #"{"seconds": 30}"#), try node("end", "end")],
            edges: [edge("start", "pause"), edge("pause", "end")])
        }, options: options)
      let started = try await client.runWorkflow(.with { $0.workflowID = created.id }, options: options)
      var current = started
      for _ in 0..<100 where current.nodeExecutions.first(where: { $0.nodeID == "pause" })?.status != .running {
        try await Task.sleep(for: .milliseconds(50))
        current = try await client.getWorkflowExecution(.with { $0.id = started.id }, options: options)
      }
      let began = ContinuousClock.now
      let cancelled = try await client.cancelWorkflowExecution(.with { $0.id = started.id }, options: options)
      #expect(cancelled.status == .cancelled)
      #expect(cancelled.nodeExecutions.first { $0.nodeID == "pause" }?.status == .cancelled)
      // Idempotent; and the run's task is gone within a second.
      _ = try await client.cancelWorkflowExecution(.with { $0.id = started.id }, options: options)
      let after = try await client.getWorkflowExecution(.with { $0.id = started.id }, options: options)
      #expect(after.status == .cancelled)
      #expect(ContinuousClock.now - began < .seconds(5))
    }
  }

  @Test func snapshotsAndVersionedRuns() async throws {
    try await Self.withService { service, client in
      let options = try await Self.options(service, user: UUID())
      func definition(_ text: String) throws -> Platform_Workflow_V1_Workflow {
        workflow(
          "Versions", nodes: [try node("start", "start"), try node("t", "template", #"{"template": "\#(text)"}"#), try node("end", "end")],
          edges: [edge("start", "t"), edge("t", "end")])
      }
      let created = try await client.createWorkflow(.with { $0.workflow = try definition("v1") }, options: options)
      let published = try await client.publishWorkflow(.with { $0.id = created.id }, options: options)
      #expect(published.status == .active)
      #expect(published.version == 2)
      #expect(published.hasPublishTime)
      let changed = try await client.updateWorkflow(
        .with {
          $0.workflow = try definition("v2")
          $0.workflow.id = created.id
          $0.updateMask = .with { $0.paths = ["nodes"] }
          $0.version = 2
        }, options: options)
      #expect(changed.version == 3)
      let snapshots = try await client.listSnapshots(.with { $0.workflowID = created.id }, options: options)
      #expect(snapshots.snapshots.map(\.workflowVersion) == [2])
      // The current definition runs by default; the published snapshot on request.
      let current = try await client.runWorkflow(.with { $0.workflowID = created.id; $0.sync = true }, options: options)
      #expect(JSONValue(current.output).objectValue?["text"] == .string("v2"))
      #expect(current.workflowVersion == 3)
      let old = try await client.runWorkflow(.with { $0.workflowID = created.id; $0.sync = true; $0.snapshotVersion = 2 }, options: options)
      #expect(JSONValue(old.output).objectValue?["text"] == .string("v1"))
      #expect(old.workflowVersion == 2)
      await expectStatus(.notFound) {
        _ = try await client.runWorkflow(.with { $0.workflowID = created.id; $0.snapshotVersion = 99 }, options: options)
      }
      // Restoring the snapshot makes it the draft again.
      let restored = try await client.restoreSnapshot(.with { $0.workflowID = created.id; $0.snapshotVersion = 2 }, options: options)
      #expect(restored.status == .draft)
      #expect(JSONValue(restored.nodes[1].data).objectValue?["template"] == .string("v1"))
      // A paused workflow does not run.
      _ = try await client.updateWorkflow(
        .with {
          $0.workflow = .with { $0.id = created.id; $0.status = .paused }
          $0.updateMask = .with { $0.paths = ["status"] }
          $0.version = restored.version
        }, options: options)
      await expectStatus(.failedPrecondition) { _ = try await client.runWorkflow(.with { $0.workflowID = created.id }, options: options) }
    }
  }

  @Test func hostileRunsAreStoppedByLimits() async throws {
    let server = try CountingServer()
    try await Self.withService(environment: ["WORKFLOW_MAX_ITERATION_ITEMS": "100"]) { service, client in
      let options = try await Self.options(service, user: UUID())
      try await server.script(["many": ["list": 101], "huge": ["list": 1_000_000], "few": ["list": 5]])
      func run(_ nodes: [Platform_Workflow_V1_Node], input: String = "{}") async throws -> Platform_Workflow_V1_WorkflowExecution {
        var edges: [Platform_Workflow_V1_Edge] = []
        for index in 1..<nodes.count { edges.append(edge(nodes[index - 1].id, nodes[index].id)) }
        let created = try await client.createWorkflow(.with { $0.workflow = workflow("Hostile", nodes: nodes, edges: edges) }, options: options)
        return try await client.runWorkflow(.with { $0.workflowID = created.id; $0.sync = true; $0.inputs = try inputs(input) }, options: options)
      }
      // An iteration: over a short list it maps; over more items than the limit it fails clearly;
      // a million-item list never gets that far (the response is over the node's byte limit).
      let iterate = ##"{"items": "{{nodes.list.output.body}}", "concurrency": 3, "node": {"type": "template", "data": {"template": "#{{item}}@{{index}}"}}}"##
      let mapped = try await run([try node("start", "start"), try node("list", "http", #"{"url": "\#(server.base)/few"}"#), try node("map", "iteration", iterate), try node("end", "end")])
      #expect(mapped.status == .completed, "\(mapped.error)")
      #expect(JSONValue(mapped.output).objectValue?["results"] == .array((0..<5).map { .object(["text": .string("#\($0)@\($0)")]) }))
      let tooMany = try await run([try node("start", "start"), try node("list", "http", #"{"url": "\#(server.base)/many"}"#), try node("map", "iteration", iterate), try node("end", "end")])
      #expect(tooMany.status == .failed)
      #expect(tooMany.error.message.contains("at most 100"))
      let huge = try await run([try node("start", "start"), try node("list", "http", #"{"url": "\#(server.base)/huge"}"#), try node("map", "iteration", iterate), try node("end", "end")])
      #expect(huge.status == .failed)
      #expect(huge.nodeExecutions.first { $0.nodeID == "list" }?.status == .failed)
      // A template that would expand without bound stops at its output cap.
      let items = JSONValue.array((0..<1000).map { .number(Double($0)) }).jsonText
      let bomb = try await run(
        [
          try node("start", "start"),
          try node("bomb", "template", #"{"template": "{{#input.items}}{{#input.items}}{{#input.items}}xxxxxxxx{{/input.items}}{{/input.items}}{{/input.items}}"}"#),
          try node("end", "end"),
        ], input: #"{"items": \#(items)}"#)
      #expect(bomb.status == .failed)
      #expect(bomb.nodeExecutions.first { $0.nodeID == "bomb" }?.error.code == "template")
      // An http node may not reach what the egress policy does not allow.
      let refused = try await run([try node("start", "start"), try node("out", "http", #"{"url": "http://10.1.2.3/"}"#), try node("end", "end")])
      #expect(refused.status == .failed)
      #expect(refused.nodeExecutions.first { $0.nodeID == "out" }?.error.code == "egress_refused")
    }
  }

  @Test func runsStopAtTheirStepLimitAndTimeout() async throws {
    try await Self.withService(environment: ["WORKFLOW_MAX_STEPS": "10", "WORKFLOW_TIMEOUT_SECONDS": "2"]) { service, client in
      let options = try await Self.options(service, user: UUID())
      var nodes = [try node("start", "start")]
      var edges: [Platform_Workflow_V1_Edge] = []
      for index in 1...12 {
        nodes.append(try node("t\(index)", "template", #"{"template": "step \#(index)"}"#))
        edges.append(edge(index == 1 ? "start" : "t\(index - 1)", "t\(index)"))
      }
      nodes.append(try node("end", "end"))
      edges.append(edge("t12", "end"))
      let long = try await client.createWorkflow(.with { $0.workflow = workflow("Long", nodes: nodes, edges: edges) }, options: options)
      let stopped = try await client.runWorkflow(.with { $0.workflowID = long.id; $0.sync = true }, options: options)
      #expect(stopped.status == .failed)
      #expect(stopped.error.message.contains("step limit"), "\(stopped.error)")
      #expect(stopped.nodeExecutions.filter { $0.status == .completed }.count == 10, "ten steps ran, the eleventh was refused")

      let slow = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Slow", nodes: [try node("start", "start"), try node("pause", "wait", #"{"seconds": 30}"#), try node("end", "end")],
            edges: [edge("start", "pause"), edge("pause", "end")])
        }, options: options)
      let began = ContinuousClock.now
      let timedOut = try await client.runWorkflow(.with { $0.workflowID = slow.id; $0.sync = true }, options: options)
      #expect(timedOut.status == .timeout)
      #expect(timedOut.nodeExecutions.first { $0.nodeID == "pause" }?.status == .cancelled)
      #expect(ContinuousClock.now - began < .seconds(10))
    }
  }

  @Test func schedulesFireOncePerFireTimeAcrossReplicas() async throws {
    try await PlatformTestService.runReplicas(
      WorkflowService(), count: 2, configure: { $0.environment = Environment(["WORKFLOW_SCHEDULER_INTERVAL_MS": "100"]) }
    ) { services in
      let owner = UUID()
      let options = try await Self.options(services[0], user: owner)
      let client = WorkflowClient(channel: services[0].client)
      var definition = workflow(
        "Scheduled", nodes: [try node("start", "start"), try node("t", "template", #"{"template": "tick"}"#), try node("end", "end")],
        edges: [edge("start", "t"), edge("t", "end")])
      definition.schedules = [.with { $0.id = "every-minute"; $0.cron = "* * * * *"; $0.enabled = true }]
      let created = try await client.createWorkflow(.with { $0.workflow = definition }, options: options)
      #expect(created.schedules.first?.hasNextFireTime == true)
      // Both replicas see the fire times of the last two minutes, many times over.
      try await Task.sleep(for: .seconds(2))
      var runs = try await client.listWorkflowExecutions(.with { $0.workflowID = created.id }, options: options)
      for _ in 0..<50 where runs.executions.contains(where: { $0.status != .completed }) || runs.executions.isEmpty {
        try await Task.sleep(for: .milliseconds(100))
        runs = try await client.listWorkflowExecutions(.with { $0.workflowID = created.id }, options: options)
      }
      // The fire times of the last two minutes (three if a minute began meanwhile), each once.
      #expect((2...3).contains(runs.totalSize), "one run per fire time, not one per replica and check: \(runs.totalSize)")
      #expect(runs.executions.allSatisfy { $0.scheduleID == "every-minute" && $0.status == .completed })
      await expectStatus(.invalidArgument, messageContains: "schedules[0].cron") {
        _ = try await client.updateWorkflow(
          .with {
            $0.workflow = .with { $0.id = created.id; $0.schedules = [.with { $0.id = "bad"; $0.cron = "61 * * * *" }] }
            $0.updateMask = .with { $0.paths = ["schedules"] }
            $0.version = created.version
          }, options: options)
      }
    }
  }
}

/// `expectStatus`, also requiring the status message to contain `text`.
@discardableResult
func expectStatus<T>(
  _ code: StatusCode, messageContains text: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> String {
  let message = await expectStatus(code, sourceLocation: sourceLocation, body)
  #expect(message.contains(text), "\(message)", sourceLocation: sourceLocation)
  return message
}
