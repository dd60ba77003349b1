internal import Foundation
public import GRPCRuntime
public import PlatformCore

/// The persona service as the platform server runs it: persona_db's migrations, the
/// PersonaService RPCs and their permissions.
public struct PersonaService: PlatformServiceDefinition {
  public var name: PlatformServiceName { .persona }
  /// The judge for GPT4_JUDGE validations (default: the offline deterministic judge).
  public var judge: any PersonaJudge
  public var limits: PersonaLimits

  public init(judge: any PersonaJudge = OfflineHeuristicJudge(), limits: PersonaLimits = PersonaLimits()) {
    self.judge = judge
    self.limits = limits
  }

  public func migrations() throws -> [Migration] {
    try Migration.load(bundle: .module)
  }

  public var accessPolicy: AccessPolicy { PersonaAPI.accessPolicy }

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
    var limits = self.limits
    limits.maxRenderCharacters = try resources.configuration.environment.int(
      "PERSONA_RENDER_MAX_CHARS", default: limits.maxRenderCharacters, range: 1...(16 << 20))
    limits.maxNestingDepth = resources.configuration.maxNestingDepth
    let store = PersonaStore(database: resources.database, logger: resources.logger)
    // PERSONA_CACHE_TTL_SECONDS=0 turns the cache off.
    let ttl = try resources.configuration.environment.seconds("PERSONA_CACHE_TTL_SECONDS", default: .seconds(3600))
    let cache = ttl > .zero ? PersonaCache.personas(
      redis: resources.redis, timeToLive: ttl, logger: resources.logger, metrics: resources.metrics.factory) : nil
    return [PersonaAPI(catalog: PersonaCatalog(store: store, cache: cache, judge: self.judge, limits: limits))]
  }
}
