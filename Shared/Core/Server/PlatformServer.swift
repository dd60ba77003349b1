internal import Foundation
internal import GRPCRuntime
internal import GRPCRuntimeServices
public import Logging
internal import PlatformProtos
internal import PlatformRedis
internal import PostgresNIO
public import ServiceLifecycle
internal import Synchronization

/// Runs one platform service: connects its database (waiting for it at start-up), applies its
/// migrations, and serves its RPCs with the platform's interceptors (tracing, error mapping,
/// auth), health (Check and Watch, following the database) and reflection. A graceful
/// shutdown (SIGTERM) turns health NOT_SERVING, drains in-flight calls, then closes the pool.
public final class PlatformServer: Service, Sendable {
  public let configuration: ServiceConfiguration
  private let definition: any PlatformServiceDefinition
  private let logger: Logger
  private let state = Mutex<State>(.starting([]))

  private enum State {
    case starting([CheckedContinuation<RPCServer, any Error>])
    case serving(RPCServer)
    case failed(any Error)
  }

  /// How often health re-checks the database.
  private let databaseCheckInterval: Duration
  /// The service's metrics (`/metrics` on the admin port).
  public let metrics = PlatformMetrics()
  private let boundAdminPort = Mutex<Int?>(nil)

  /// - Parameters:
  ///   - definition: the service to run.
  ///   - configuration: where to listen, the database, auth.
  ///   - logger: the service's logger.
  ///   - databaseCheckInterval: how often health re-checks the database (default 5 s).
  public init(
    definition: any PlatformServiceDefinition, configuration: ServiceConfiguration, logger: Logger,
    databaseCheckInterval: Duration = .seconds(5)
  ) {
    self.definition = definition
    self.configuration = configuration
    self.logger = logger
    self.databaseCheckInterval = databaseCheckInterval
  }

  /// The port the server listens on, once start-up has bound it.
  /// - Throws: the start-up error if it failed.
  public var listeningPort: Int {
    get async throws {
      let server = try await withCheckedThrowingContinuation { continuation in
        let ready = self.state.withLock { state -> Result<RPCServer, any Error>? in
          switch state {
          case .starting(var waiters):
            waiters.append(continuation)
            state = .starting(waiters)
            return nil
          case .serving(let server): return .success(server)
          case .failed(let error): return .failure(error)
          }
        }
        if let ready { continuation.resume(with: ready) }
      }
      return try await server.listeningPort
    }
  }

  /// The admin port, once bound (it is bound before the RPC server is handed out).
  /// - Throws: the start-up error if it failed.
  public var adminPort: Int {
    get async throws {
      _ = try await self.listeningPort
      return self.boundAdminPort.withLock { $0 } ?? 0
    }
  }

  public func run() async throws {
    do {
      try await self.serve()
    } catch {
      self.resolveWaiters(.failure(error))
      throw error
    }
  }

  private func serve() async throws {
    let configuration = self.configuration
    let logger = self.logger
    if configuration.auth.usesDevelopmentKeys {
      logger.warning(
        "JWT_PUBLIC_KEYS is not set: using the development token keys, whose private half is public. Never do this in production.")
    }
    // Spans go to the OTLP collector when one is configured; the exporter runs outside the
    // graceful-shutdown scope too, and flushes after the last call has ended.
    let otlp = try PlatformTracing.otlpBackend(configuration.tracing, serviceName: configuration.service.rawValue, logger: logger)
    let tracing = otlp?.tracing ?? .idsOnly
    let exporter = otlp.map { ServiceGroup(configuration: .init(services: [$0.exporter], logger: logger)) }
    let exporting = exporter.map { exporter in Task.detached { try? await exporter.run() } }
    defer { exporting?.cancel() }
    var databaseConfiguration = configuration.database
    databaseConfiguration.sessionSettings.merge(try self.definition.databaseSessionSettings(configuration.environment)) { current, _ in current }
    let pool = PostgresClient(configuration: databaseConfiguration, logger: logger)
    let database = Database(client: pool, configuration: databaseConfiguration, tracing: tracing, metrics: self.metrics.factory)
    // Health checks on a connection of their own: a pool busy with requests is not a database
    // that is down.
    var healthConfiguration = databaseConfiguration
    healthConfiguration.poolSize = 1
    let healthDatabase = PostgresClient(configuration: healthConfiguration, logger: logger)
    // The job worker's LISTEN holds a connection for good: one of its own, so that the pool
    // keeps all of DATABASE_POOL_SIZE for statements (opened only when the service has jobs).
    var notificationsConfiguration = databaseConfiguration
    notificationsConfiguration.poolSize = 1
    notificationsConfiguration.minimumConnections = 0
    let notifications = PostgresClient(configuration: notificationsConfiguration, logger: logger)
    let metrics = self.metrics
    let redis = try RedisClient(
      configuration: configuration.redis, group: RuntimeEventLoops.shared, logger: logger, metrics: metrics.factory,
      tracer: tracing.tracer)
    // postgres-nio's `run()` ends at a graceful shutdown, but calls still draining after SIGTERM
    // (and the job worker's grace period) need the database until the server and the worker
    // are done: the pools run outside the graceful-shutdown scope and close after them.
    // Each pool's `run()` begins before the first lease (a lease before it makes PostgresNIO log
    // a warning at every start): each task says so as it calls `run()`, whose first step marks
    // the pool running.
    let (started, starting) = AsyncStream.makeStream(of: Void.self)
    let clients = [pool, healthDatabase, notifications]
    let pools = Task.detached {
      await withDiscardingTaskGroup { pools in
        for client in clients {
          pools.addTask {
            starting.yield()
            await client.run()
          }
        }
      }
    }
    defer { pools.cancel() }
    for await _ in started.prefix(clients.count) {}
    try await withThrowingTaskGroup(of: Void.self) { group in
      defer { group.cancelAll() }

      try await pool.waitUntilReachable(configuration.database, timeout: configuration.database.connectTimeout, logger: logger)
      let applied = try await MigrationRunner(client: pool, logger: logger, lockTimeout: configuration.migrationLockTimeout)
        .apply(CoreMigrations.all + self.definition.migrations())
      logger.info("Database ready", metadata: ["database": "\(configuration.database)", "migrations_applied": "\(applied.count)"])

      let lifetime = ServiceLifetime()
      let resources = ServiceResources(
        configuration: configuration, database: database, redis: redis, jobs: JobQueue(database: database, logger: logger),
        metrics: metrics, tracing: tracing, logger: logger, lifetime: lifetime)
      let (services, jobHandlers) = try await self.definition.makeServicesAndJobs(resources)
      let serviceNames = Array(RPCRouter(services: services).serviceNames).sorted()
      let health = HealthService(services: serviceNames)
      let reflection = try ReflectionService(
        descriptorSet: Array(Data(base64Encoded: PlatformDescriptors.fileDescriptorSetBase64) ?? Data()),
        serviceNames: serviceNames + ["grpc.health.v1.Health"])
      let verifier = await TokenVerifier(configuration: configuration.auth)
      // API keys: the agent service says what a key stands for (remembered in Redis up to 30 s).
      var agentClient: RPCClient?
      var apiKeys = try await self.definition.makeApiKeyVerifier(resources)
      if apiKeys == nil, let agentAddress = configuration.peers[.agent] {
        let client = try RPCClient(configuration: .defaults(targets: [agentAddress]))
        agentClient = client
        apiKeys = AgentApiKeyVerifier(
          agent: TracedChannel(client, tracing: tracing), redis: redis,
          cacheFor: try configuration.environment.seconds("API_KEY_CACHE_SECONDS", default: .seconds(30)), logger: logger)
      }
      // Refusals are written by one task, after the call has its answer.
      let auditRecorder = AuditRecorder(
        log: AuditLog(database: database, logger: logger), logger: logger, metrics: metrics.factory)
      let auditing = Task { await auditRecorder.run() }
      defer { auditRecorder.finish() }
      let server = RPCServer(
        configuration: .defaults {
          $0.host = configuration.host
          $0.port = configuration.port
          $0.shutdownGracePeriod = configuration.shutdownGracePeriod
          $0.maxMessageDepth = NestingLimit.messageDepth(forNesting: configuration.maxNestingDepth)
        },
        services: services + [health, reflection],
        interceptors: [
          TracingServerInterceptor(tracing: tracing),
          MetricsInterceptor(factory: metrics.factory),
          ErrorMappingInterceptor(logger: logger),
          AuthInterceptor(
            verifier: verifier, policy: self.definition.accessPolicy,
            sessions: SessionCheck(
              redis: redis, outagePolicy: configuration.sessionOutagePolicy, logger: logger, metrics: metrics.factory),
            audit: auditRecorder, apiKeys: apiKeys,
            limiter: RateLimiter(redis: redis, outagePolicy: configuration.rateLimitOutagePolicy, logger: logger, metrics: metrics.factory)),
        ] + (self.definition.accessPolicy.auditedServices.isEmpty ? [] : [
          RefusalAuditInterceptor(audit: auditRecorder, services: self.definition.accessPolicy.auditedServices)
        ]) + (configuration.rateLimits.isEnabled
          ? [RateLimitInterceptor(
              limiter: RateLimiter(
                redis: redis, outagePolicy: configuration.rateLimitOutagePolicy, logger: logger, metrics: metrics.factory),
              policy: self.definition.accessPolicy, limits: configuration.rateLimits)]
          : []),
        logger: logger
      )
      // Bound before the server is handed out: a port in use fails start-up, not a waiter.
      let admin = AdminServer(
        host: configuration.host, port: configuration.resolvedAdminPort, metrics: metrics, details: resources.healthDetails, logger: logger
      ) {
        health.status(forService: "") == .serving
      }
      let adminPort = try await admin.bind()
      self.boundAdminPort.withLock { $0 = adminPort }
      group.addTask { try await admin.serve() }
      self.resolveWaiters(.success(server))

      group.addTask {
        await Self.followDatabaseHealth(
          healthDatabase, every: self.databaseCheckInterval, health: health, services: serviceNames, logger: logger)
      }
      var worker: JobWorker?
      if !jobHandlers.isEmpty {
        var workerConfiguration = JobWorkerConfiguration()
        workerConfiguration.shutdownGracePeriod = configuration.shutdownGracePeriod
        worker = JobWorker(
          database: database, notifications: notifications, handlers: jobHandlers, configuration: workerConfiguration, logger: logger, metrics: metrics.factory)
      }
      group.addTask {
        let port = try await server.listeningPort
        logger.info(
          "Serving", metadata: ["address": "\(configuration.host):\(port)", "services": "\(serviceNames.joined(separator: ","))"])
      }
      let background = lifetime.start()
      // The service's loops stop first, then its resources are released, then Redis and the
      // database close.
      func stopService() async {
        background.cancel()
        await background.value
        await lifetime.stop()
      }
      do {
        // The RPC server and the job worker shut down side by side (each drains within the grace
        // period); Redis and the database close only after both.
        try await withGracefulShutdownHandler {
          try await withThrowingTaskGroup(of: Void.self) { serving in
            serving.addTask { try await server.run() }
            if let worker { serving.addTask { try await worker.run() } }
            try await serving.waitForAll()
          }
        } onGracefulShutdown: {
          logger.info("Shutting down: draining in-flight calls")
          health.enterShutdown()
        }
      } catch {
        await stopService()
        auditRecorder.finish()
        await auditing.value
        await agentClient?.close()
        await redis.close()
        throw error
      }
      await stopService()
      auditRecorder.finish()
      await auditing.value
      await agentClient?.close()
      await redis.close()
      pools.cancel()
      await pools.value
      if let exporter, let exporting {
        await exporter.triggerGracefulShutdown()
        await exporting.value
      }
      logger.info("Stopped")
    }
  }

  private func resolveWaiters(_ result: Result<RPCServer, any Error>) {
    let waiters = self.state.withLock { state -> [CheckedContinuation<RPCServer, any Error>] in
      guard case .starting(let waiters) = state else { return [] }
      switch result {
      case .success(let server): state = .serving(server)
      case .failure(let error): state = .failed(error)
      }
      return waiters
    }
    for waiter in waiters { waiter.resume(with: result) }
  }

  /// Health follows the database: NOT_SERVING while `SELECT 1` fails, SERVING again once it
  /// answers.
  private static func followDatabaseHealth(
    _ database: PostgresClient, every interval: Duration, health: HealthService, services: [String], logger: Logger
  ) async {
    var healthy = true
    while !Task.isCancelled && !Task.isShuttingDownGracefully {
      do {
        try await Task.sleep(for: interval)
      } catch {
        return
      }
      let reachable: Bool
      do {
        try await database.ping(timeout: .seconds(2), logger: logger)
        reachable = true
      } catch {
        reachable = false
        if healthy { logger.error("Database check failed", metadata: ["error": "\(DatabaseErrors.describe(error))"]) }
      }
      guard reachable != healthy, !Task.isShuttingDownGracefully else { continue }
      healthy = reachable
      if reachable { logger.info("Database reachable again") }
      for service in [""] + services { health.setStatus(reachable ? .serving : .notServing, forService: service) }
    }
  }
}
