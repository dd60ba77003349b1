internal import Foundation
public import GRPCRuntime
internal import Logging
public import PlatformCore

/// The code-sandbox service: runs untrusted Python, JavaScript and TypeScript in bubblewrap
/// sandboxes (CodeSandboxService), recording every run in code_db.
public struct CodeSandboxService: PlatformServiceDefinition {
  public var name: PlatformServiceName { .codeSandbox }

  public init() {}

  public static let definition = CodeSandboxService()

  public func migrations() throws -> [Migration] {
    try Migration.load(bundle: .module)
  }

  public var accessPolicy: AccessPolicy { CodeSandboxAPI.accessPolicy }

  /// The longest a run can be pending or running: a wait in the queue and the longest run.
  static let longestRun = Duration.seconds(60 + 120 + 30)

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
    let configuration = try SandboxConfiguration(environment: resources.configuration.environment, executableDirectory: executable)
    let sandbox: Sandbox
    do {
      sandbox = try Sandbox(configuration: configuration, logger: resources.logger, metrics: resources.metrics.factory)
    } catch SandboxError.host(let why) {
      throw Environment.InvalidValue(variable: "SANDBOX_*", value: "-", expected: why)
    }
    resources.healthDetails.set("sandbox", sandbox.isolation)
    let store = ExecutionStore(database: resources.database, logger: resources.logger)
    let logger = resources.logger
    let port = resources.configuration.port
    let instance = "\(ProcessInfo.processInfo.hostName):\(port == 0 ? "any-\(UUID().lowercasedString.prefix(8))" : String(port))"
    let analyzer = PythonAnalyzer(sandbox: sandbox, logger: resources.logger)
    if analyzer == nil { resources.logger.warning("Analyzer/analyze.py is missing: Python is analysed from its tokens only") }
    let executions = Executions(
      store: store, sandbox: sandbox, analyzer: analyzer, redis: resources.redis, instance: instance, logger: resources.logger)
    // Runs a crash interrupted are failed now (this instance's at once) and, for other replicas'
    // crashes, every minute; cancellations published by other instances are followed.
    resources.lifetime.run {
      var first = true
      await Periodic.run(every: .seconds(60), logger: logger, failure: "Could not check for interrupted runs") {
        let failed = try await store.failStale(instance: first ? instance : nil, olderThan: Self.longestRun)
        first = false
        if failed > 0 { logger.warning("Failed runs a stopped service left pending or running", metadata: ["count": "\(failed)"]) }
      }
    }
    resources.lifetime.run { await executions.followCancellations() }
    resources.lifetime.onStop {
      await analyzer?.shutdown()
      sandbox.shutdown()
    }
    return [CodeSandboxAPI(executions: executions)]
  }
}
