public import GRPCRuntime
public import Logging
public import PlatformRedis
internal import PostgresNIO

/// What a service plugs into the platform server: its migrations, its RPC handlers and the
/// permission each RPC needs.
public protocol PlatformServiceDefinition: Sendable {
  /// Which service this is (port, database, log label).
  var name: PlatformServiceName { get }
  /// The service's migrations, in version order (empty when it has no tables yet).
  func migrations() throws -> [Migration]
  /// The permission each RPC requires; methods missing from it are refused.
  var accessPolicy: AccessPolicy { get }
  /// The handlers, built once the database is migrated.
  func makeServices(_ resources: ServiceResources) async throws -> [any RPCService]
  /// The background jobs the service runs (default none); the server runs a `JobWorker` for
  /// them beside the RPCs.
  func makeJobHandlers(_ resources: ServiceResources) async throws -> [JobHandler]
  /// Both at once, for a service whose handlers and jobs share state (default: `makeServices`,
  /// then `makeJobHandlers`). The server calls this.
  func makeServicesAndJobs(_ resources: ServiceResources) async throws -> (services: [any RPCService], jobs: [JobHandler])
  /// How calls made with an API key are authenticated; nil (the default) asks the agent service
  /// (`AgentApiKeyVerifier`). The agent service answers for itself.
  func makeApiKeyVerifier(_ resources: ServiceResources) async throws -> (any ApiKeyVerifying)?
  /// Run-time parameters the service's database connections start with (default none).
  /// - Throws: `Environment.InvalidValue` for a malformed setting of the service's own.
  func databaseSessionSettings(_ environment: Environment) throws -> [String: String]
}

extension PlatformServiceDefinition {
  public func makeJobHandlers(_ resources: ServiceResources) async throws -> [JobHandler] { [] }
  public func makeServicesAndJobs(_ resources: ServiceResources) async throws -> (services: [any RPCService], jobs: [JobHandler]) {
    (try await self.makeServices(resources), try await self.makeJobHandlers(resources))
  }
  public func makeApiKeyVerifier(_ resources: ServiceResources) async throws -> (any ApiKeyVerifying)? { nil }
  public func databaseSessionSettings(_ environment: Environment) throws -> [String: String] { [:] }
}

/// What a service's handlers are built from.
public struct ServiceResources: Sendable {
  public var configuration: ServiceConfiguration
  /// The service's own database (pooled; running): statements are spans, pool use is metered.
  public var database: Database
  /// Redis (pooled, shared by the service's caches, locks and rate limits). Commands fail fast
  /// while Redis is down: every use must have a fallback.
  public var redis: RedisClient
  /// Background jobs in the service's database (`jobs`, a core migration).
  public var jobs: JobQueue
  /// Where the service's metrics go (shown on the admin port's `/metrics`).
  public var metrics: PlatformMetrics
  /// Trace ids for every call, and spans when OTLP export is configured. Wrap clients of other
  /// services in `TracedChannel(client, tracing: tracing)`.
  public var tracing: PlatformTracing
  public var logger: Logger
  /// Loops that run beside the RPCs while the server serves, and what to release when it stops.
  public var lifetime: ServiceLifetime
  /// Lines the admin port's `/readyz` shows under its verdict.
  public var healthDetails = HealthDetails()
}
