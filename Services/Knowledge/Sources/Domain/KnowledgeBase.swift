public import Foundation

/// A knowledge base (seed 004 knowledge_bases): documents with one embedding model and default
/// chunking, searched together.
public struct KnowledgeBase: Sendable, Equatable {
  public enum Status: String, Sendable, CaseIterable {
    case active, archived
  }

  public var id: UUID
  public var ownerID: UUID
  public var name: String
  public var description: String
  public var embeddingModel: String
  public var dimension: Int
  public var chunking: ChunkingOptions
  /// The PostgreSQL text-search configuration of its keywords ("english" by default).
  public var language: String
  public var documentCount: Int
  public var chunkCount: Int64
  public var status: Status
  public var version: Int
  public var createdAt: Date
  public var updatedAt: Date

  /// Byte and character limits of the stored fields.
  public static let maxNameCharacters = 255
  public static let maxDescriptionCharacters = 4096
  public static let maxDescriptionBytes = 16384
}

/// What a search needs of a knowledge base: no counts (counting its documents reads their index,
/// a quarter of a millisecond at 4,000 documents, on every search).
public struct SearchedBase: Sendable {
  public var id: UUID
  public var embeddingModel: String
  /// The text-search configuration of its keywords.
  public var language: String
  /// The query's keyword statistics in this knowledge base, when the search ranks by keywords.
  public var keywords: ChunkStore.KeywordStatistics?
}

/// An embedding model the service can use, with its dimension.
public struct EmbeddingModel: Sendable, Equatable {
  public var name: String
  public var dimension: Int

  public init(name: String, dimension: Int) {
    self.name = name
    self.dimension = dimension
  }

  /// The offline deterministic default: feature hashing of words and character trigrams into 384
  /// dimensions (it says what it is in its name).
  public static let offline = EmbeddingModel(name: "offline-hash-384", dimension: 384)
}

/// What the knowledge service refuses or fails with; each case is one gRPC status.
public enum KnowledgeError: Error, Equatable, Sendable {
  case invalidArgument(field: String, reason: String)
  case notFound(String)
  case alreadyExists(String)
  case failedPrecondition(String)
  case unimplemented(String)
  /// A dependency (the embedding provider) is down.
  case unavailable(String)
}
