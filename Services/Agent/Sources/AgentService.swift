internal import Foundation
public import GRPCRuntime
internal import Logging
public import PlatformCore
internal import PlatformProtos

/// The agent service as the platform server runs it. Today: identity (AuthService: register,
/// login, token refresh, logout, the current user, API keys; UserService: administration and
/// the audit log), the only issuer of access tokens. Agents, plugins and executions come with
/// their own issue.
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

  public func makeJobHandlers(_ resources: ServiceResources) async throws -> [JobHandler] {
    [Self.revocation(resources).handler]
  }

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
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
    let models = try ModelCatalog(environment: environment)
    let peers = try PeerChannels([.persona], configuration: resources.configuration, tracing: resources.tracing, lifetime: resources.lifetime)
    let agents = Agents(
      store: AgentStore(database: resources.database, models: models, logger: resources.logger),
      personas: PersonaServiceDirectory(channel: peers.channel(.persona)), models: models,
      webSearchAvailable: environment["WEB_SEARCH_URL"] != nil, logger: resources.logger)
    // Execution logs are partitioned by month: this month's and the next two exist before the
    // first write, and months past EXECUTION_LOG_RETENTION_MONTHS are dropped (seed 002 §6.2).
    let partitions = try MonthlyPartitions(
      table: "execution_logs", monthsAhead: 2,
      retentionMonths: try environment.int("EXECUTION_LOG_RETENTION_MONTHS", default: 6, range: 1...120), database: resources.database,
      logger: resources.logger)
    try await partitions.maintain()
    resources.lifetime.run { await partitions.run() }
    return [AuthAPI(accounts: accounts, apiKeys: Self.apiKeys(resources)), UserAPI(admin: admin, roles: roles), AgentAPI(agents: agents)]
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
