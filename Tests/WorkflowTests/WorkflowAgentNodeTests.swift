import Agent
import Foundation
import GRPCRuntime
import Persona
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing

@testable import Workflow

/// The agent node against a real agent service (and the persona service it checks with): an
/// agent execution started as the run's caller, tagged with the workflow, its answer the node's
/// output.
struct WorkflowAgentNodeTests {
  @Test func agentNodesRunAgentExecutionsAsTheCaller() async throws {
    try await PlatformTestService.run(PersonaService()) { persona in
      let admin = "admin-\(UUID().lowercasedString.prefix(12))@example.com"
      let password = "correct horse battery staple"
      try await PlatformTestService.run(
        AgentService(passwordParameters: PasswordHasher.Parameters(logN: 10, blockSize: 8, parallelism: 1)),
        configure: {
          $0.environment = Environment(
            ["AGENT_LOGIN_ATTEMPTS_PER_PEER": "100000", "BOOTSTRAP_ADMIN_EMAIL": admin, "BOOTSTRAP_ADMIN_PASSWORD": password])
          $0.peers[.persona] = "127.0.0.1:\(persona.port)"
        }
      ) { agentService in
        try await PlatformTestService.run(WorkflowService(), configure: { $0.peers[.agent] = "127.0.0.1:\(agentService.port)" }) { workflowService in
          // The admin (a real account: agents belong to users of agent_db) creates a persona and an agent.
          let auth = Platform_Agent_V1_AuthServiceClient(channel: agentService.client)
          let login = try await auth.login(.with {
            $0.email = admin
            $0.password = password
          })
          var options = CallOptions(timeout: .seconds(60))
          options.metadata.addString("Bearer \(login.tokens.accessToken)", forKey: "authorization")
          let personaID = try await Platform_Persona_V1_PersonaServiceClient(channel: persona.client).createPersona(
            .with {
              $0.persona = .with {
                $0.name = "Helper"
                $0.template = "You help."
              }
            }, options: options
          ).id
          let agentID = try await Platform_Agent_V1_AgentServiceClient(channel: agentService.client).createAgent(
            .with {
              $0.agent = .with {
                $0.personaID = personaID
                $0.name = "Helper"
              }
            }, options: options
          ).id
          let client = WorkflowClient(channel: workflowService.client)
          let created = try await client.createWorkflow(
            .with {
              $0.workflow = workflow(
                "With an agent",
                nodes: [
                  try node("start", "start"), try node("ask", "agent", #"{"agent_id": "\#(agentID)", "message": "Say hello to {{input.name}}"}"#),
                  try node("end", "end", #"{"output": {"answer": "{{nodes.ask.output.text}}", "execution": "{{nodes.ask.output.execution_id}}"}}"#),
                ], edges: [edge("start", "ask"), edge("ask", "end")])
            }, options: options)
          let run = try await client.runWorkflow(
            .with {
              $0.workflowID = created.id
              $0.inputs = try inputs(#"{"name": "Ada"}"#)
              $0.sync = true
            }, options: options)
          #expect(run.status == .completed, "\(run.error)")
          let output = JSONValue(run.output).objectValue ?? [:]
          let executionID = output["execution"]?.stringValue ?? ""
          #expect(run.nodeExecutions.first { $0.nodeID == "ask" }?.childExecutionID == executionID)
          let answer = output["answer"]?.stringValue ?? ""
          #expect(answer.contains("Say hello to Ada"), "the offline planner answers about the node's message: \(answer)")
          // The agent execution is the caller's, tagged with the workflow, and its input is the node's message.
          let execution = try await Platform_Agent_V1_ExecutionServiceClient(channel: agentService.client).getExecution(
            .with { $0.id = executionID }, options: options)
          #expect(execution.workflowID == created.id)
          #expect(execution.status == .completed)
          #expect(JSONValue(execution.input).objectValue?["message"] == .string("Say hello to Ada"))
        }
      }
    }
  }
}
