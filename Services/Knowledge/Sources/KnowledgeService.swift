public import GRPCRuntime
public import PlatformCore

/// The knowledge service: knowledge bases in knowledge_db (documents, ingestion and search come
/// with the rest of its issue).
public struct KnowledgeService: PlatformServiceDefinition {
  public var name: PlatformServiceName { .knowledge }

  public init() {}

  public static let definition = KnowledgeService()

  public func migrations() throws -> [Migration] {
    try Migration.load(bundle: .module)
  }

  public var accessPolicy: AccessPolicy { KnowledgeAPI.accessPolicy }

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
    let bases = KnowledgeBases(
      store: KnowledgeBaseStore(database: resources.database, logger: resources.logger), models: [.offline], logger: resources.logger)
    return [KnowledgeAPI(bases: bases)]
  }
}
