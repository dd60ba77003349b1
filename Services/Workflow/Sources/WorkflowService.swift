public import GRPCRuntime
public import PlatformCore
internal import Foundation
internal import Logging

/// The workflow service: DAG workflows in VueFlow's JSON (workflow_db), validated, published as
/// immutable snapshots, and run by a durable executor (a job per run) that commits every node's
/// state before the nodes after it start, resumes from the failed nodes on request, and goes on
/// after a crash from what was committed. Nodes call agent, persona, knowledge, text-to-SQL and
/// the code sandbox with the credential of whoever started the run.
///
/// Configuration: `WORKFLOW_MAX_PARALLEL` (nodes of a run at once, default 10),
/// `WORKFLOW_MAX_STEPS` (node attempts per run, 2000), `WORKFLOW_TIMEOUT_SECONDS` (3600),
/// `WORKFLOW_MAX_ITERATION_ITEMS` (1000), `WORKFLOW_HTTP_ALLOWED_HOSTS` (where http nodes may go;
/// default public addresses only), `WORKFLOW_ENCRYPTION_KEY` (seals run credentials so another
/// replica can go on with a run; without it they stay in the process that took the call),
/// `LLM_PROVIDER`/`LLM_BASE_URL`/`LLM_MODEL` (llm nodes) and `WORKFLOW_MODEL_PRICES`
/// (`model=prompt/completion` USD per million tokens).
public struct WorkflowService: PlatformServiceDefinition {
  public var name: PlatformServiceName { .workflow }

  public init() {}

  public static let definition = WorkflowService()

  public func migrations() throws -> [Migration] {
    try Migration.load(bundle: .module)
  }

  public var accessPolicy: AccessPolicy { WorkflowAPI.accessPolicy }

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
    try await self.makeServicesAndJobs(resources).services
  }

  public func makeServicesAndJobs(_ resources: ServiceResources) async throws -> (services: [any RPCService], jobs: [JobHandler]) {
    let environment = resources.configuration.environment
    let limits = try WorkflowLimits(environment: environment)
    let workflowStore = WorkflowStore(database: resources.database, logger: resources.logger)
    let executionStore = ExecutionStore(database: resources.database, logger: resources.logger)
    let channels = try PeerChannels(
      [.agent, .persona, .knowledge, .textToSQL, .codeSandbox], configuration: resources.configuration, tracing: resources.tracing,
      lifetime: resources.lifetime)
    let provider = try ModelProvider(environment: environment)
    let chat: ChatCompletionsClient? = if case .openAI(let settings) = provider { ChatCompletionsClient(provider: settings) } else { nil }
    let http = EgressHTTPClient(
      policy: try EgressPolicy(parsing: environment["WORKFLOW_HTTP_ALLOWED_HOSTS"] ?? "", variable: "WORKFLOW_HTTP_ALLOWED_HOSTS"),
      maxResponseBytes: limits.maxOutputBytes)
    let executors = NodeExecutors(
      peers: WorkflowPeers(channels), http: http, chat: chat, prices: try ModelPrice.table(parsing: environment["WORKFLOW_MODEL_PRICES"] ?? "", variable: "WORKFLOW_MODEL_PRICES"), limits: limits)
    let runner = WorkflowRunner(executions: executionStore, workflows: workflowStore, executors: executors, limits: limits, logger: resources.logger)
    let running = RunningTasks(redis: resources.redis, channel: WorkflowRuns.cancelChannel, logger: resources.logger)
    resources.lifetime.run { await running.follow() }
    let secrets = try environment["WORKFLOW_ENCRYPTION_KEY"].map { try SecretBox(parsing: $0, variable: "WORKFLOW_ENCRYPTION_KEY") }
    let runs = WorkflowRuns(
      workflows: workflowStore, executions: executionStore, runner: runner, jobs: resources.jobs, running: running, secrets: secrets, limits: limits,
      logger: resources.logger)
    let interval = try environment.int("WORKFLOW_SCHEDULER_INTERVAL_MS", default: 5000, range: 100...600_000)
    resources.lifetime.run { await runs.schedule(interval: .milliseconds(interval)) }
    let workflows = Workflows(store: workflowStore, secrets: secrets, logger: resources.logger)
    return ([WorkflowAPI(workflows: workflows, runs: runs)], [runs.handler, runs.scheduleHandler])
  }
}
