public import Foundation
internal import PlatformCore
public import Logging

/// Knowledge bases: created, read, listed, updated and deleted by their owner.
public struct KnowledgeBases: Sendable {
  let store: KnowledgeBaseStore
  /// The embedding models this service can use; the first is the default.
  let models: [EmbeddingModel]
  let logger: Logger

  public init(store: KnowledgeBaseStore, models: [EmbeddingModel], logger: Logger) {
    self.store = store
    self.models = models.isEmpty ? [.offline] : models
    self.logger = logger
  }

  /// What a caller gives to create or update a knowledge base; zero sizes mean the defaults.
  public struct Draft: Sendable, Equatable {
    public var name: String
    public var description: String
    public var embeddingModel: String
    public var chunking: ChunkingOptions
    public var status: KnowledgeBase.Status
    /// Empty: "english".
    public var language: String

    public init(
      name: String, description: String, embeddingModel: String, chunking: ChunkingOptions, status: KnowledgeBase.Status, language: String = ""
    ) {
      self.name = name
      self.description = description
      self.embeddingModel = embeddingModel
      self.chunking = chunking
      self.status = status
      self.language = language
    }
  }

  public func create(_ draft: Draft, owner: UUID, requestID: UUID?) async throws -> KnowledgeBase {
    let (draft, model) = try await self.checked(draft)
    let base = KnowledgeBase(
      id: UUID(), ownerID: owner, name: draft.name, description: draft.description, embeddingModel: model.name,
      dimension: model.dimension, chunking: draft.chunking, language: draft.language, documentCount: 0, chunkCount: 0, status: draft.status, version: 1,
      createdAt: Date(), updatedAt: Date())
    do {
      return try await self.store.insert(base, requestID: requestID).base
    } catch KnowledgeBaseStore.Failure.nameTaken {
      throw KnowledgeError.alreadyExists("A knowledge base named \(draft.name) exists")
    }
  }

  /// The owner's knowledge bases `ids` as a search needs them, in that order; NOT_FOUND naming
  /// the first that is not.
  /// The owner's knowledge bases `ids`, in order, with the keyword statistics of `keywordsOf`
  /// in each when given; NOT_FOUND for any that is not the owner's.
  public func searched(_ ids: [UUID], owner: UUID, keywordsOf text: String? = nil) async throws -> [SearchedBase] {
    let found = Dictionary(
      try await self.store.searched(ids, ownerID: owner, keywordsOf: text).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    return try ids.map { id in
      guard let base = found[id] else { throw KnowledgeError.notFound("Knowledge base \(id.lowercasedString) not found") }
      return base
    }
  }

  public func base(_ id: UUID, owner: UUID) async throws -> KnowledgeBase {
    guard let base = try await self.store.get(id, ownerID: owner) else { throw KnowledgeError.notFound("Knowledge base not found") }
    return base
  }

  public func list(
    owner: UUID, query: String?, includeArchived: Bool, after: (String, UUID)?, limit: Int
  ) async throws -> (bases: [KnowledgeBase], total: Int, more: Bool) {
    if let query, query.utf8.count > 255 { throw KnowledgeError.invalidArgument(field: "query", reason: "must be at most 255 bytes") }
    return try await self.store.list(ownerID: owner, query: query, includeArchived: includeArchived, after: after, limit: limit)
  }

  /// Applies `change` if the knowledge base is still at `version`. The embedding model changes
  /// only while it has no documents.
  public func update(_ id: UUID, owner: UUID, version: Int, change: (inout Draft) throws -> Void) async throws -> KnowledgeBase {
    let current = try await self.base(id, owner: owner)
    guard current.version == version else {
      throw KnowledgeError.failedPrecondition("The knowledge base has changed since version \(version) (it is at \(current.version))")
    }
    var draft = Draft(
      name: current.name, description: current.description, embeddingModel: current.embeddingModel, chunking: current.chunking,
      status: current.status, language: current.language)
    try change(&draft)
    let (checked, model) = try await self.checked(draft)
    if model.name != current.embeddingModel && current.documentCount > 0 {
      throw KnowledgeError.failedPrecondition("The embedding model is fixed once the knowledge base has documents")
    }
    if checked.language != current.language && current.documentCount > 0 {
      throw KnowledgeError.failedPrecondition("The language is fixed once the knowledge base has documents")
    }
    var updated = current
    updated.name = checked.name
    updated.description = checked.description
    updated.embeddingModel = model.name
    updated.dimension = model.dimension
    updated.chunking = checked.chunking
    updated.status = checked.status
    updated.language = checked.language
    do {
      return try await self.store.update(updated, expected: version)
    } catch KnowledgeBaseStore.Failure.nameTaken {
      throw KnowledgeError.alreadyExists("A knowledge base named \(checked.name) exists")
    } catch KnowledgeBaseStore.Failure.versionMismatch {
      throw KnowledgeError.failedPrecondition("The knowledge base has changed since version \(version)")
    }
  }

  public func delete(_ id: UUID, owner: UUID, version: Int?) async throws {
    do {
      guard try await self.store.delete(id, ownerID: owner, version: version) else {
        throw KnowledgeError.notFound("Knowledge base not found")
      }
    } catch KnowledgeBaseStore.Failure.versionMismatch {
      throw KnowledgeError.failedPrecondition("The knowledge base has changed since version \(version ?? 0)")
    }
  }

  /// `draft` with defaults filled in and its model, or INVALID_ARGUMENT naming the field.
  func checked(_ draft: Draft) async throws -> (Draft, EmbeddingModel) {
    var draft = draft
    draft.name = draft.name.trimmingCharacters(in: .whitespacesAndNewlines)
    guard (1...KnowledgeBase.maxNameCharacters).contains(draft.name.count), draft.name.utf8.count <= 1020,
      !draft.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    else {
      throw KnowledgeError.invalidArgument(
        field: "knowledge_base.name", reason: "must be 1 to \(KnowledgeBase.maxNameCharacters) characters without control characters")
    }
    guard draft.description.count <= KnowledgeBase.maxDescriptionCharacters, draft.description.utf8.count <= KnowledgeBase.maxDescriptionBytes
    else {
      throw KnowledgeError.invalidArgument(
        field: "knowledge_base.description",
        reason: "must be at most \(KnowledgeBase.maxDescriptionCharacters) characters and \(KnowledgeBase.maxDescriptionBytes) bytes")
    }
    let name = draft.embeddingModel.isEmpty ? self.models[0].name : draft.embeddingModel
    guard let model = self.models.first(where: { $0.name == name }) else {
      throw KnowledgeError.invalidArgument(
        field: "knowledge_base.embedding_model", reason: "is not available here; available: \(self.models.map(\.name).joined(separator: ", "))")
    }
    if draft.language.isEmpty { draft.language = "english" }
    guard draft.language.utf8.count <= 63, draft.language.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }),
      try await self.store.hasTextSearchConfiguration(draft.language)
    else {
      throw KnowledgeError.invalidArgument(
        field: "knowledge_base.language", reason: "is not a text-search configuration of this server (e.g. english, simple, german)")
    }
    draft.chunking = try Self.completed(draft.chunking, defaults: .default, field: "knowledge_base.chunking")
    return (draft, model)
  }

  /// `options` with `defaults` for what it leaves at zero (the contract's "0 = the default"; the
  /// overlap shrinks to fit small chunks), validated: INVALID_ARGUMENT names `field.<option>`.
  static func completed(_ options: ChunkingOptions, defaults: ChunkingOptions, field: String) throws -> ChunkingOptions {
    var options = options
    if options.size == 0 { options.size = defaults.size }
    if options.overlap == 0 { options.overlap = min(defaults.overlap, max(0, (options.size - 1) / 2)) }
    do {
      return try options.validated()
    } catch {
      switch error {
      case .invalid(let name, let reason): throw KnowledgeError.invalidArgument(field: "\(field).\(name)", reason: reason)
      }
    }
  }
}
