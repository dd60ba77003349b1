import CodeSandbox
import Foundation
import GRPCRuntime
import Persona
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing

@testable import Workflow

/// Nodes that call the other services, against real ones: persona and the code sandbox over
/// gRPC, and a model server speaking the OpenAI API (the only boundary this machine cannot
/// reach), each call with the credential of whoever started the run.
@Suite(.serialized)
struct WorkflowPeerTests {
  static let modelServer = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("AgentTests/model_server.py")

  static func withPeers(_ body: (PlatformTestService, PlatformTestService, WorkflowClient, ScriptServer) async throws -> Void) async throws {
    let model = try ScriptServer(script: Self.modelServer)
    defer { model.process.terminate() }
    try await PlatformTestService.run(PersonaService()) { persona in
      let uidBase = 62_000 + 16 * Int.random(in: 0..<10_000)
      try await PlatformTestService.run(
        CodeSandboxService(), configure: { $0.environment = Environment(["SANDBOX_UID_BASE": "\(uidBase)"]) }
      ) { sandbox in
        try await PlatformTestService.run(
          WorkflowService(),
          configure: {
            $0.environment = Environment([
              "LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://127.0.0.1:\(model.port)/v1", "LLM_MODEL": "test-model",
              "WORKFLOW_MODEL_PRICES": "test-model=1000/2000",
              "WORKFLOW_ENCRYPTION_KEY": "test:" + Data(repeating: 7, count: 32).base64EncodedString(),
            ])
            $0.peers[.persona] = "127.0.0.1:\(persona.port)"
            $0.peers[.codeSandbox] = "127.0.0.1:\(sandbox.port)"
          }
        ) { workflowService in
          try await body(persona, sandbox, WorkflowClient(channel: workflowService.client), model)
        }
      }
    }
  }

  @Test func personaCodeAndModelNodesRunAsTheCaller() async throws {
    try await Self.withPeers { persona, sandbox, client, model in
      let user = UUID()
      var options = try await persona.options(for: user)
      options.timeout = .seconds(60)
      let personaID = try await Platform_Persona_V1_PersonaServiceClient(channel: persona.client).createPersona(
        .with {
          $0.persona = .with {
            $0.name = "Guide"
            $0.template = "You are a guide for {{name}}."
          }
        }, options: options
      ).id
      _ = try await model.json("/_script", method: "POST", body: [["content": "Forty-two."]])
      let created = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Peers",
            nodes: [
              try node("start", "start"),
              try node("render", "persona", #"{"persona_id": "\#(personaID)", "variables": {"name": "{{input.name}}"}}"#),
              try node("compute", "code", #"{"language": "python", "code": "import json, sys\nprint(json.dumps({'sum': 6 * 7, 'stdin': sys.stdin.read()}))", "stdin": "{{input.name}}"}"#),
              try node("ask", "llm", #"{"system": "{{nodes.render.output.text}}", "prompt": "What is {{nodes.compute.output.json.sum}}?"}"#),
              try node("end", "end", #"{"output": {"persona": "{{nodes.render.output.text}}", "sum": "{{nodes.compute.output.json.sum}}", "stdin": "{{nodes.compute.output.json.stdin}}", "answer": "{{nodes.ask.output.text}}"}}"#),
            ], edges: [edge("start", "render"), edge("render", "compute"), edge("compute", "ask"), edge("ask", "end")])
        }, options: options)
      let run = try await client.runWorkflow(
        .with {
          $0.workflowID = created.id
          $0.inputs = try inputs(#"{"name": "Ada"}"#)
          $0.sync = true
        }, options: options)
      #expect(run.status == .completed, "\(run.error)")
      let output = JSONValue(run.output).objectValue ?? [:]
      #expect(output["persona"] == .string("You are a guide for Ada."))
      #expect(output["sum"] == .number(42))
      #expect(output["stdin"] == .string("Ada"))
      #expect(output["answer"] == .string("Forty-two."))
      // The code node names the sandbox's execution; the model's cost is the run's.
      let compute = run.nodeExecutions.first { $0.nodeID == "compute" }
      #expect(compute?.childExecutionID.isEmpty == false)
      #expect(run.usage.costUsd > 0)
      let requests = try await model.json("/_requests") as? [String: Any]
      let chat = (requests?["chat"] as? [[String: Any]])?.last
      let messages = ((chat?["body"] as? [String: Any])?["messages"] as? [[String: Any]]) ?? []
      #expect(messages.first?["content"] as? String == "You are a guide for Ada.")
      #expect(messages.last?["content"] as? String == "What is 42?")

      // Another user's persona is NOT_FOUND to this user's run: the call carries the caller's credential.
      let stranger = try await persona.options(for: UUID())
      let foreign = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Foreign", nodes: [try node("start", "start"), try node("render", "persona", #"{"persona_id": "\#(personaID)"}"#), try node("end", "end")],
            edges: [edge("start", "render"), edge("render", "end")])
        }, options: stranger)
      var strangerOptions = stranger
      strangerOptions.timeout = .seconds(60)
      let refused = try await client.runWorkflow(.with { $0.workflowID = foreign.id; $0.sync = true }, options: strangerOptions)
      #expect(refused.status == .failed)
      #expect(refused.nodeExecutions.first { $0.nodeID == "render" }?.error.code == "not_found")
    }
  }

  @Test func cancellingARunCancelsItsSandboxExecution() async throws {
    try await Self.withPeers { persona, sandbox, client, _ in
      let user = UUID()
      let options = try await persona.options(for: user)
      let created = try await client.createWorkflow(
        .with {
          $0.workflow = workflow(
            "Long code",
            nodes: [try node("start", "start"), try node("sleep", "code", #"{"language": "python", "code": "import time\ntime.sleep(30)"}"#), try node("end", "end")],
            edges: [edge("start", "sleep"), edge("sleep", "end")])
        }, options: options)
      let started = try await client.runWorkflow(.with { $0.workflowID = created.id }, options: options)
      let sandboxClient = Platform_Codesandbox_V1_CodeSandboxServiceClient(channel: sandbox.client)
      var running = false
      for _ in 0..<200 where !running {
        try await Task.sleep(for: .milliseconds(50))
        running = try await sandboxClient.listCodeExecutions(.init(), options: options).executions.contains { $0.status == .running }
      }
      #expect(running, "the sandbox runs the node's program")
      let cancelled = try await client.cancelWorkflowExecution(.with { $0.id = started.id }, options: options)
      #expect(cancelled.status == .cancelled)
      var sandboxStatus = Platform_Common_V1_ExecutionStatus.running
      for _ in 0..<100 where sandboxStatus == .running {
        try await Task.sleep(for: .milliseconds(50))
        sandboxStatus = try await sandboxClient.listCodeExecutions(.init(), options: options).executions.first?.status ?? .unspecified
      }
      #expect(sandboxStatus == .cancelled || sandboxStatus == .failed, "the gRPC call's cancellation stops the program: \(sandboxStatus)")
    }
  }
}
