internal import Foundation
public import GRPCRuntime
internal import Logging
public import PlatformCore
internal import PlatformProtos

/// The agent service as the platform server runs it: identity (AuthService, UserService; the
/// only issuer of access tokens), agents and their plugins (AgentService) and their executions
/// (ExecutionService), which call persona, knowledge, text-to-SQL and the code sandbox.
public struct AgentService: PlatformServiceDefinition {
  public var name: PlatformServiceName { .agent }
  /// The password hashing cost (OWASP's by default; tests may lower it).
  public var passwordParameters: PasswordHasher.Parameters

  public init(passwordParameters: PasswordHasher.Parameters = .owasp) {
    self.passwordParameters = passwordParameters
  }

  public static let definition = AgentService()

  public func migrations() throws -> [Migration] {
    try Migration.load(bundle: .module)
  }

  public var accessPolicy: AccessPolicy {
    var policy = AuthAPI.accessPolicy
    for (method, permission) in UserAPI.requirements { policy.requirements[method.path] = permission }
    for (method, permission) in AgentAPI.requirements { policy.requirements[method.path] = permission }
    for (method, permission) in ExecutionAPI.requirements { policy.requirements[method.path] = permission }
    // Identity: every refused call is a security event.
    policy.auditedServices = [Platform_Agent_V1_AuthService.serviceName, Platform_Agent_V1_UserService.serviceName]
    return policy
  }

  /// The agent service checks keys itself, in its own database.
  public func makeApiKeyVerifier(_ resources: ServiceResources) async throws -> (any ApiKeyVerifying)? {
    LocalApiKeyVerifier(apiKeys: Self.apiKeys(resources))
  }

  static func apiKeys(_ resources: ServiceResources) -> ApiKeys {
    ApiKeys(
      keys: ApiKeyStore(database: resources.database, logger: resources.logger),
      identity: IdentityStore(database: resources.database, logger: resources.logger),
      audit: AuditLog(database: resources.database, logger: resources.logger), logger: resources.logger)
  }

  static func revocation(_ resources: ServiceResources) -> SessionRevocation {
    SessionRevocation(sessions: SessionStore(redis: resources.redis), jobs: resources.jobs, logger: resources.logger)
  }

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
    try await self.makeServicesAndJobs(resources).services
  }

  /// One set of parts: executions are run by calls and by jobs, and cancelled by either.
  public func makeServicesAndJobs(_ resources: ServiceResources) async throws -> (services: [any RPCService], jobs: [JobHandler]) {
    let environment = resources.configuration.environment
    var configuration = try AccountsConfiguration(environment: environment)
    configuration.passwordParameters = self.passwordParameters
    let issuer: TokenIssuer
    do {
      issuer = try await TokenIssuer(configuration: resources.configuration.auth)
    } catch {
      throw Environment.InvalidValue(
        variable: "JWT_PRIVATE_KEY", value: "<unset>", expected: "the agent service's signing key: \(error.description)")
    }
    let accounts = Accounts(
      store: IdentityStore(database: resources.database, logger: resources.logger),
      hasher: try PasswordHasher(parameters: configuration.passwordParameters),
      issuer: issuer,
      sessions: SessionStore(redis: resources.redis), revocation: Self.revocation(resources),
      limiter: RateLimiter(redis: resources.redis, logger: resources.logger, metrics: resources.metrics.factory),
      redis: resources.redis,
      audit: AuditLog(database: resources.database, logger: resources.logger),
      configuration: configuration, logger: resources.logger)
    if let email = environment["BOOTSTRAP_ADMIN_EMAIL"], let password = environment["BOOTSTRAP_ADMIN_PASSWORD"] {
      if try await accounts.bootstrapAdmin(email: email, password: password) {
        resources.logger.notice("Created the first admin from BOOTSTRAP_ADMIN_EMAIL", metadata: ["email": "\(email)"])
      }
    }
    let admin = UserAdmin(
      store: IdentityStore(database: resources.database, logger: resources.logger), revocation: Self.revocation(resources),
      audit: AuditLog(database: resources.database, logger: resources.logger), logger: resources.logger)
    let roles = RoleAdmin(
      store: RoleStore(database: resources.database, logger: resources.logger),
      audit: AuditLog(database: resources.database, logger: resources.logger))
    // Agents: personas are checked with the persona service, as the caller.
    let provider = try ModelProvider(environment: environment)
    let models = try ModelCatalog(provider: provider, environment: environment)
    let channels = try PeerChannels(
      [.persona, .knowledge, .textToSQL, .codeSandbox], configuration: resources.configuration, tracing: resources.tracing,
      lifetime: resources.lifetime)
    let agentStore = AgentStore(database: resources.database, models: models, logger: resources.logger)
    // web_search plugins search a SearxNG instance (WEB_SEARCH_URL); without one they are refused.
    let webSearch = try SearxNGSearch(environment: environment)
    let agents = Agents(
      store: agentStore, personas: PersonaServiceDirectory(channel: channels.channel(.persona)), models: models,
      webSearchEnabled: webSearch != nil, logger: resources.logger)
    // Executions: run by the caller's call (sync) or by durable jobs, each plugin a call to its
    // service as the user who started it.
    let executionStore = ExecutionStore(database: resources.database, logger: resources.logger)
    let cache = ExecutionCache(redis: resources.redis, logger: resources.logger)
    let chat: ChatCompletionsClient? = if case .openAI(let settings) = provider { ChatCompletionsClient(provider: settings) } else { nil }
    // Callbacks: to public addresses only unless CALLBACK_ALLOWED_HOSTS says otherwise; their
    // secrets sealed with AGENT_ENCRYPTION_KEY (without it, callbacks are refused).
    let callbacks = ExecutionCallbacks(
      jobs: resources.jobs, store: executionStore,
      policy: try EgressPolicy(parsing: environment["CALLBACK_ALLOWED_HOSTS"] ?? "", variable: "CALLBACK_ALLOWED_HOSTS"),
      secrets: try environment["AGENT_ENCRYPTION_KEY"].map { try SecretBox(parsing: $0, variable: "AGENT_ENCRYPTION_KEY") },
      logger: resources.logger)
    let executionTimeout = try environment.seconds("AGENT_EXECUTION_TIMEOUT_SECONDS", default: .seconds(300))
    let peers = PlatformPeers(channels)
    let documents = ExecutionDocuments(jobs: resources.jobs, peers: peers, issuer: issuer, logger: resources.logger)
    let runner = ExecutionRunner(
      store: executionStore, agents: agentStore, peers: peers, documents: documents, cache: cache, callbacks: callbacks, models: models, chat: chat,
      webSearch: webSearch, pluginTimeout: try environment.seconds("AGENT_PLUGIN_TIMEOUT_SECONDS", default: .seconds(60)), executionTimeout: executionTimeout,
      logger: resources.logger)
    let running = RunningTasks(redis: resources.redis, channel: Executions.cancelChannel, logger: resources.logger)
    resources.lifetime.run { await running.follow() }
    let executions = Executions(
      store: executionStore, agents: agentStore, runner: runner, cache: cache, callbacks: callbacks, jobs: resources.jobs,
      locks: DistributedLocks(redis: resources.redis), running: running, issuer: issuer,
      identity: IdentityStore(database: resources.database, logger: resources.logger), logger: resources.logger)
    // Executions a crash left behind fail as interrupted, a minute after they could have ended.
    resources.lifetime.run { await executions.failInterrupted(olderThan: executionTimeout + .seconds(60)) }
    // Execution logs are partitioned by month: this month's and the next two exist before the
    // first write, and months past EXECUTION_LOG_RETENTION_MONTHS are dropped (seed 002 §6.2).
    let partitions = try MonthlyPartitions(
      table: "execution_logs", monthsAhead: 2,
      retentionMonths: try environment.int("EXECUTION_LOG_RETENTION_MONTHS", default: 6, range: 1...120), database: resources.database,
      logger: resources.logger)
    try await partitions.maintain()
    resources.lifetime.run { await partitions.run() }
    let services: [any RPCService] = [
      AuthAPI(accounts: accounts, apiKeys: Self.apiKeys(resources)), UserAPI(admin: admin, roles: roles), AgentAPI(agents: agents, executions: executions),
      ExecutionAPI(executions: executions),
    ]
    return (services, [Self.revocation(resources).handler, executions.handler, callbacks.handler, documents.handler])
  }
}

/// The agent service's own API key check: its database, no cache.
struct LocalApiKeyVerifier: ApiKeyVerifying {
  let apiKeys: ApiKeys

  func identity(of key: String) async throws -> ApiKeyIdentity? {
    let verified: VerifiedApiKey
    do {
      verified = try await self.apiKeys.verify(key)
    } catch ApiKeyError.invalid {
      return nil
    }
    return ApiKeyIdentity(
      caller: Caller(
        userID: verified.userID, roles: verified.roles.compactMap(Role.init(storedName:)),
        extraPermissions: verified.permissions.map(Permission.init(rawValue:)), apiKeyID: verified.keyID.lowercasedString),
      rateLimitPerMinute: verified.rateLimit)
  }
}
