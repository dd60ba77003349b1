import Foundation
import PlatformCore
import Testing

@testable import Workflow

struct LifecycleTests {
  @Test func runStatusMoves() {
    typealias S = WorkflowExecution.Status
    #expect(S.pending.canMove(to: .running))
    #expect(S.running.canMove(to: .completed))
    #expect(S.running.canMove(to: .timeout))
    #expect(S.failed.canMove(to: .pending), "resume")
    #expect(S.cancelled.canMove(to: .pending), "resume")
    #expect(!S.completed.canMove(to: .pending), "a completed run is final")
    #expect(!S.completed.canMove(to: .failed))
    #expect(!S.pending.canMove(to: .completed))
    #expect(S.completed.predecessors == [.running])
    #expect(Set(S.pending.predecessors) == [.failed, .cancelled, .timeout])
  }

  @Test func nodeStatusMoves() {
    typealias S = NodeExecution.Status
    #expect(S.pending.canMove(to: .running))
    #expect(S.pending.canMove(to: .skipped))
    #expect(S.running.canMove(to: .pending), "a retry's wait, or an interruption")
    #expect(S.failed.canMove(to: .pending), "resume")
    #expect(!S.completed.canMove(to: .running), "a completed node never runs again")
    #expect(!S.skipped.canMove(to: .running))
    #expect(!S.running.canMove(to: .skipped))
  }
}

struct RunStateTests {
  static func plan(_ nodes: [(String, String, [String: JSONValue])], _ edges: [(String, String, String)]) -> WorkflowPlan {
    WorkflowPlan(
      WorkflowDefinition(
        nodes: nodes.map { WorkflowNode(id: $0.0, type: $0.1, data: $0.2) },
        edges: edges.map { WorkflowEdge(id: "\($0.0)-\($0.1)-\($0.2)", source: $0.0, target: $0.1, sourceHandle: $0.2) }))
  }

  @Test func conditionsSkipTheBranchNotTakenAndJoinsWaitForEveryBranch() {
    let plan = Self.plan(
      [
        ("s", "start", [:]), ("c", "condition", ["expression": .string("input.x > 1")]), ("yes", "template", ["template": .string("y")]),
        ("no", "template", ["template": .string("n")]), ("after-no", "template", ["template": .string("a")]), ("join", "aggregate", [:]),
        ("e", "end", [:]),
      ],
      [("s", "c", ""), ("c", "yes", "true"), ("c", "no", "false"), ("no", "after-no", ""), ("yes", "join", ""), ("after-no", "join", ""), ("join", "e", "")])
    #expect(plan.isValid, "\(plan.issues)")
    var state = RunState(plan: plan, input: .object(["x": .number(5)]), rows: [])
    #expect(state.decide().ready == ["s"])
    state.completed("s", output: .object([:]), tookFailBranch: false)
    #expect(state.decide().ready == ["c"])
    state.completed("c", output: .object(["branch": .string("true"), "result": .bool(true)]), tookFailBranch: false)
    let next = state.decide()
    #expect(next.ready == ["yes"])
    #expect(next.skipped == ["no", "after-no"], "skips cascade down the branch not taken")
    state.started("yes")
    #expect(state.decide().ready.isEmpty, "the join waits for its running branch")
    state.completed("yes", output: .object(["text": .string("y")]), tookFailBranch: false)
    #expect(state.decide().ready == ["join"])
    #expect(state.upstream(of: "join").map(\.id) == ["yes"])
  }

  @Test func failBranchesTakeOnlyTheFailHandle() {
    let plan = Self.plan(
      [
        ("s", "start", [:]), ("h", "http", ["url": .string("http://x/"), "on_error": .string("fail_branch")]), ("ok", "template", ["template": .string("o")]),
        ("handle", "template", ["template": .string("h")]), ("e", "end", [:]),
      ], [("s", "h", ""), ("h", "ok", ""), ("h", "handle", "fail"), ("ok", "e", ""), ("handle", "e", "")])
    #expect(plan.isValid, "\(plan.issues)")
    var state = RunState(plan: plan, input: .object([:]), rows: [])
    _ = state.decide()
    state.completed("s", output: .object([:]), tookFailBranch: false)
    _ = state.decide()
    state.completed("h", output: .object(["error": .object([:])]), tookFailBranch: true)
    let next = state.decide()
    #expect(next.ready == ["handle"])
    #expect(next.skipped == ["ok"])
  }

  @Test func anEdgeConditionThatCannotBeEvaluatedBlocksItsTarget() {
    let plan = WorkflowPlan(
      WorkflowDefinition(
        nodes: [WorkflowNode(id: "s", type: "start"), WorkflowNode(id: "t", type: "template", data: ["template": .string("x")]), WorkflowNode(id: "e", type: "end")],
        edges: [WorkflowEdge(id: "s-t", source: "s", target: "t"), WorkflowEdge(id: "t-e", source: "t", target: "e", condition: "output.text > 1")]))
    #expect(plan.isValid, "\(plan.issues)")
    var state = RunState(plan: plan, input: .object([:]), rows: [])
    _ = state.decide()
    state.completed("s", output: .object([:]), tookFailBranch: false)
    _ = state.decide()
    state.completed("t", output: .object(["text": .string("x")]), tookFailBranch: false)
    let next = state.decide()
    #expect(next.ready.isEmpty && next.skipped.isEmpty, "neither run nor skipped on a guess")
    #expect(next.failed.first?.contains("t-e") == true)
  }

  @Test func referencesResolveWithTypesAndText() throws {
    let scope = RunScope(input: .object(["n": .number(3), "list": .array([.string("a")])]), outputs: ["t": .object(["text": .string("hi")])])
    let resolved = try References.resolve(
      .object(["whole": .string("{{input.list}}"), "text": .string("n={{input.n}}, t={{ nodes.t.output.text }}, gone={{input.nope}}")]),
      lookup: scope.lookup)
    #expect(resolved.objectValue?["whole"] == .array([.string("a")]))
    #expect(resolved.objectValue?["text"] == .string("n=3, t=hi, gone="))
    #expect(References.path("nodes.a-1.output.items[2].name") == ["nodes", "a-1", "output", "items", "2", "name"])
    #expect(References.path("nodes.a b") == nil)
    #expect(References.path(Substring(Array(repeating: "x", count: 40).joined(separator: "."))) == nil, "at most 32 segments")
    // Resolved values are not scanned again: a value holding a reference stays text.
    let once = try References.resolve(.string("{{input.s}}"), lookup: RunScope(input: .object(["s": .string("{{input.s}}")]), outputs: [:]).lookup)
    #expect(once == .string("{{input.s}}"))
  }
}

@Suite("Workflow: run credentials kept in memory")
struct CredentialMemoryTests {
  @Test("A credential is kept until its run's deadline; runs that never come back are swept out, so the memory stays bounded")
  func boundedByDeadline() {
    let memory = CredentialMemory()
    let credential = RunCredential(header: "authorization", value: "Bearer t")
    let live = UUID()
    memory.keep(credential, for: live, until: Date().addingTimeInterval(3600))
    #expect(memory.credential(for: live) == credential)
    let expired = UUID()
    memory.keep(credential, for: expired, until: Date().addingTimeInterval(-1))
    #expect(memory.credential(for: expired) == nil)
    // Ten thousand runs started elsewhere or left waiting, past their deadlines: never more than
    // twice the live entries (or the first sweep's threshold) are held.
    var most = 0
    for _ in 0..<10_000 {
      memory.keep(credential, for: UUID(), until: Date().addingTimeInterval(-1))
      most = max(most, memory.count)
    }
    #expect(most <= CredentialMemory.firstSweep)
    #expect(memory.credential(for: live) == credential)
    memory.forget(live)
    #expect(memory.credential(for: live) == nil)
  }
}
