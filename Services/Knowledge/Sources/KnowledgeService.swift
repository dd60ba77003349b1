public import GRPCRuntime
public import PlatformCore
internal import Logging

/// The knowledge service: knowledge bases of documents in knowledge_db, indexed by a durable job
/// (extract → chunk → embed) and searched by vector, keyword or both.
///
/// Configuration: `EMBEDDING_PROVIDER` and friends (`EmbeddingProviders`), `KNOWLEDGE_MAX_FILE_MB`
/// (UploadDocument's limit, default 50), `KNOWLEDGE_INDEX_CONCURRENCY` (documents indexed at once
/// per replica, default 2), `KNOWLEDGE_EXTRACT_TIMEOUT_SECONDS` (30) and
/// `KNOWLEDGE_EXTRACT_MEMORY_MB` (1024) for the out-of-process text extraction,
/// `EMBEDDING_CACHE_RETENTION_DAYS` (30: cached embeddings no lookup used for that long are
/// pruned, hourly), `KNOWLEDGE_KEYWORD_CACHE_MB` (128: the keyword postings KEYWORD and HYBRID
/// searches rank in memory, PostingsCache; 0 ranks every search in PostgreSQL).
public struct KnowledgeService: PlatformServiceDefinition {
  public var name: PlatformServiceName { .knowledge }

  public init() {}

  public static let definition = KnowledgeService()

  public func migrations() throws -> [Migration] {
    try Migration.load(bundle: .module)
  }

  public var accessPolicy: AccessPolicy { KnowledgeAPI.accessPolicy }

  public func databaseSessionSettings(_ environment: Environment) throws -> [String: String] {
    VectorIndexes.sessionSettings(efSearch: try environment.int("KNOWLEDGE_HNSW_EF_SEARCH", default: VectorIndexes.defaultEFSearch, range: 10...1000))
  }

  struct Parts {
    var bases: KnowledgeBases
    var baseStore: KnowledgeBaseStore
    var documents: DocumentStore
    var chunks: ChunkStore
    var providers: EmbeddingProviders
  }

  func parts(_ resources: ServiceResources) throws -> Parts {
    let providers = try EmbeddingProviders(environment: resources.configuration.environment)
    let baseStore = KnowledgeBaseStore(database: resources.database, logger: resources.logger)
    return Parts(
      bases: KnowledgeBases(store: baseStore, models: providers.models, logger: resources.logger), baseStore: baseStore,
      documents: DocumentStore(database: resources.database, logger: resources.logger),
      chunks: ChunkStore(database: resources.database, logger: resources.logger), providers: providers)
  }

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
    let parts = try self.parts(resources)
    try await VectorIndexes.ensure(dimensions: Set(parts.providers.models.map(\.dimension)), database: resources.database, logger: resources.logger)
    let maxFileMB = try resources.configuration.environment.int("KNOWLEDGE_MAX_FILE_MB", default: 50, range: 1...1024)
    let documents = Documents(store: parts.documents, bases: parts.bases, jobs: resources.jobs, logger: resources.logger)
    let postingsMB = try resources.configuration.environment.int("KNOWLEDGE_KEYWORD_CACHE_MB", default: 128, range: 0...65536)
    let search = Search(
      chunks: parts.chunks, bases: parts.bases, providers: parts.providers, postings: PostingsCache(budget: postingsMB << 20, metrics: resources.metrics.factory),
      logger: resources.logger)
    let retentionDays = try resources.configuration.environment.int("EMBEDDING_CACHE_RETENTION_DAYS", default: 30, range: 1...3650)
    let cache = EmbeddingCache(database: resources.database, logger: resources.logger)
    resources.lifetime.run { await cache.run(retention: .seconds(retentionDays * 86_400)) }
    return [KnowledgeAPI(bases: parts.bases, documents: documents, chunks: parts.chunks, search: search, maxUploadBytes: maxFileMB << 20)]
  }

  public func makeJobHandlers(_ resources: ServiceResources) async throws -> [JobHandler] {
    let parts = try self.parts(resources)
    let environment = resources.configuration.environment
    var limits = ExtractionLimits()
    limits.timeout = .seconds(try environment.int("KNOWLEDGE_EXTRACT_TIMEOUT_SECONDS", default: 30, range: 1...600))
    limits.memoryBytes = try environment.int("KNOWLEDGE_EXTRACT_MEMORY_MB", default: 1024, range: 64...65536) << 20
    if case .rlimitsOnly(let reason) = TextExtractor.isolation {
      resources.logger.warning(
        "Text extraction runs without bubblewrap: the tools keep the network (rlimits and timeouts still hold)",
        metadata: ["reason": "\(reason)"])
    }
    let ingestion = Ingestion(
      documents: parts.documents, chunks: parts.chunks, bases: parts.baseStore,
      cache: EmbeddingCache(database: resources.database, logger: resources.logger), providers: parts.providers,
      extractor: TextExtractor(limits: limits), logger: resources.logger)
    return [ingestion.handler(concurrency: try environment.int("KNOWLEDGE_INDEX_CONCURRENCY", default: 2, range: 1...64))]
  }
}
