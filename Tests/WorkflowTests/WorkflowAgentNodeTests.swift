import Agent
import Foundation
import GRPCRuntime
import Persona
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

@testable import Workflow

/// The agent node against a real agent service (and the persona service it checks with): an
/// agent execution started as the run's caller, tagged with the workflow, its answer the node's
/// output.
struct WorkflowAgentNodeTests {
  /// What a test gets: the services, a signed-in admin (a real account: agents belong to users
  /// of agent_db) and an agent of theirs.
  struct World {
    var agentService: PlatformTestService
    var workflowService: PlatformTestService
    var workflows: WorkflowClient
    var auth: Platform_Agent_V1_AuthServiceClient
    var options: CallOptions
    var agentID: String
  }

  static func withWorld(_ body: (World) async throws -> Void) async throws {
    // Persona checks API keys with the agent service, which checks personas with persona: the
    // agent's port is chosen first.
    let agentPort = try freeLoopbackPort()
    try await PlatformTestService.run(PersonaService(), configure: { $0.peers[.agent] = "127.0.0.1:\(agentPort)" }) { persona in
      let admin = "admin-\(UUID().lowercasedString.prefix(12))@example.com"
      let password = "correct horse battery staple"
      try await PlatformTestService.run(
        AgentService(passwordParameters: PasswordHasher.Parameters(logN: 10, blockSize: 8, parallelism: 1)),
        configure: {
          $0.environment = Environment(
            ["AGENT_LOGIN_ATTEMPTS_PER_PEER": "100000", "BOOTSTRAP_ADMIN_EMAIL": admin, "BOOTSTRAP_ADMIN_PASSWORD": password])
          $0.peers[.persona] = "127.0.0.1:\(persona.port)"
          $0.port = agentPort
        }
      ) { agentService in
        try await PlatformTestService.run(
          WorkflowService(),
          configure: {
            $0.environment = Environment([
              "WORKFLOW_SCHEDULER_INTERVAL_MS": "100", "WORKFLOW_ENCRYPTION_KEY": "test:" + Data(repeating: 5, count: 32).base64EncodedString(),
            ])
            $0.peers[.agent] = "127.0.0.1:\(agentService.port)"
          }
        ) { workflowService in
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
          try await body(
            World(agentService: agentService, workflowService: workflowService, workflows: WorkflowClient(channel: workflowService.client), auth: auth, options: options, agentID: agentID))
        }
      }
    }
  }

  static func askingWorkflow(_ agentID: String) throws -> Platform_Workflow_V1_Workflow {
    workflow(
      "With an agent",
      nodes: [
        try node("start", "start"), try node("ask", "agent", #"{"agent_id": "\#(agentID)", "message": "Say hello to {{input.name}}"}"#),
        try node("end", "end", #"{"output": {"answer": "{{nodes.ask.output.text}}", "execution": "{{nodes.ask.output.execution_id}}"}}"#),
      ], edges: [edge("start", "ask"), edge("ask", "end")])
  }

  @Test func agentNodesRunAgentExecutionsAsTheCaller() async throws {
    try await Self.withWorld { world in
      let options = world.options
      let client = world.workflows
      let created = try await client.createWorkflow(.with { $0.workflow = try Self.askingWorkflow(world.agentID) }, options: options)
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
      let execution = try await Platform_Agent_V1_ExecutionServiceClient(channel: world.agentService.client).getExecution(
        .with { $0.id = executionID }, options: options)
      #expect(execution.workflowID == created.id)
      #expect(execution.status == .completed)
      #expect(JSONValue(execution.input).objectValue?["message"] == .string("Say hello to Ada"))
    }
  }

  @Test func scheduledRunsCallOtherServicesWithTheScheduleAPIKey() async throws {
    try await Self.withWorld { world in
      let options = world.options
      let key = try await world.auth.createApiKey(
        .with {
          $0.name = "schedules"
          // What its agent node needs: the execution, and the persona it renders.
          $0.permissions = ["agent:execute", "agent:read", "persona:read"]
        }, options: options)
      var definition = try Self.askingWorkflow(world.agentID)
      let scheduleInputs = try inputs(#"{"name": "the schedule"}"#)
      definition.schedules = [
        .with {
          $0.id = "tick"
          $0.cron = "* * * * *"
          $0.enabled = true
          $0.apiKey = key.secret
          $0.inputs = scheduleInputs
        }
      ]
      let created = try await world.workflows.createWorkflow(.with { $0.workflow = definition }, options: options)
      // The key is kept sealed and never comes back.
      #expect(created.schedules.first?.hasApiKey_p == true)
      #expect(created.schedules.first?.apiKey.isEmpty == true)
      let rows = try await world.workflowService.database.query("SELECT schedules::text FROM workflows", logger: TestPostgres.quietLogger)
      for try await (schedules,) in rows.decode((String,).self) {
        #expect(!schedules.contains(key.secret), "stored sealed, not as given")
        #expect(schedules.contains("sealed"))
      }
      var runs = try await world.workflows.listWorkflowExecutions(.with { $0.workflowID = created.id }, options: options)
      for _ in 0..<100 where runs.executions.isEmpty || runs.executions.contains(where: { $0.status != .completed && $0.status != .failed }) {
        try await Task.sleep(for: .milliseconds(100))
        runs = try await world.workflows.listWorkflowExecutions(.with { $0.workflowID = created.id }, options: options)
      }
      #expect(!runs.executions.isEmpty)
      for run in runs.executions {
        #expect(run.status == .completed, "\(run.error)")
        #expect(run.scheduleID == "tick")
        #expect(JSONValue(run.output).objectValue?["answer"]?.stringValue?.contains("Say hello to the schedule") == true)
      }
      // An update that leaves the key out keeps it.
      let updated = try await world.workflows.updateWorkflow(
        .with {
          $0.workflow = .with {
            $0.id = created.id
            $0.schedules = [.with { $0.id = "tick"; $0.cron = "0 * * * *"; $0.enabled = true }]
          }
          $0.updateMask = .with { $0.paths = ["schedules"] }
          $0.version = created.version
        }, options: options)
      #expect(updated.schedules.first?.hasApiKey_p == true)
    }
  }
}
