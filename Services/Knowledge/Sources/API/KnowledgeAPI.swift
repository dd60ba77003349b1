internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

extension KnowledgeError: RPCErrorConvertible {
  public var rpcError: RPCError {
    switch self {
    case .invalidArgument(let field, let reason): RPCError(.invalidArgument, "\(field): \(reason)")
    case .notFound(let what): RPCError(.notFound, what)
    case .alreadyExists(let what): RPCError(.alreadyExists, what)
    case .failedPrecondition(let why): RPCError(.failedPrecondition, why)
    case .unimplemented(let why): RPCError(.unimplemented, why)
    case .unavailable(let why): RPCError(.unavailable, why)
    }
  }
}

/// `platform.knowledge.v1.KnowledgeService` over protobuf: knowledge bases here, documents and
/// search in the extensions beside this file.
public struct KnowledgeAPI: Platform_Knowledge_V1_KnowledgeServiceHandler {
  let bases: KnowledgeBases
  let documents: Documents
  let chunks: ChunkStore
  let searcher: Search
  /// UploadDocument's limit (KNOWLEDGE_MAX_FILE_MB).
  let maxUploadBytes: Int

  public init(bases: KnowledgeBases, documents: Documents, chunks: ChunkStore, search: Search, maxUploadBytes: Int) {
    self.bases = bases
    self.documents = documents
    self.chunks = chunks
    self.searcher = search
    self.maxUploadBytes = maxUploadBytes
  }

  typealias Method = Platform_Knowledge_V1_KnowledgeService.Method

  public static let accessPolicy = AccessPolicy([
    Method.createKnowledgeBase: "knowledge:write", Method.getKnowledgeBase: "knowledge:read",
    Method.listKnowledgeBases: "knowledge:read", Method.updateKnowledgeBase: "knowledge:write",
    Method.deleteKnowledgeBase: "knowledge:write", Method.uploadDocument: "knowledge:write", Method.watchDocument: "knowledge:read",
    Method.createDocument: "knowledge:write", Method.getDocument: "knowledge:read", Method.listDocuments: "knowledge:read",
    Method.updateDocument: "knowledge:write", Method.deleteDocument: "knowledge:write", Method.listChunks: "knowledge:read",
    Method.search: "knowledge:read", Method.reindexDocument: "knowledge:write",
  ])

  // MARK: - Knowledge bases

  public func createKnowledgeBase(
    _ request: Platform_Knowledge_V1_CreateKnowledgeBaseRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_KnowledgeBase {
    let caller = try context.requireCaller()
    let message = request.knowledgeBase
    let draft = KnowledgeBases.Draft(
      name: message.name, description: message.description_p, embeddingModel: message.embeddingModel,
      chunking: try Self.chunking(message.chunking, field: "knowledge_base.chunking"), status: try Self.status(message.status),
      language: message.language)
    let requestID = request.requestID.isEmpty ? nil : try Self.id(request.requestID, field: "request_id")
    return Self.message(try await self.bases.create(draft, owner: caller.userID, requestID: requestID))
  }

  public func getKnowledgeBase(
    _ request: Platform_Knowledge_V1_GetKnowledgeBaseRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_KnowledgeBase {
    let caller = try context.requireCaller()
    return Self.message(try await self.bases.base(try Self.id(request.id, field: "id"), owner: caller.userID))
  }

  struct ListCursor: Codable {
    var name: String
    var id: UUID
    var filter: String
  }

  public func listKnowledgeBases(
    _ request: Platform_Knowledge_V1_ListKnowledgeBasesRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_ListKnowledgeBasesResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 1000) else {
      throw KnowledgeError.invalidArgument(field: "page_size", reason: "must be 0 to 1000")
    }
    let query = request.query.trimmingCharacters(in: .whitespaces)
    let filter = "\(query)/\(request.includeArchived)"
    var after: (String, UUID)?
    if !request.pageToken.isEmpty {
      guard let cursor = PageToken.decode(request.pageToken, as: ListCursor.self), cursor.filter == filter else {
        throw KnowledgeError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
      }
      after = (cursor.name, cursor.id)
    }
    let page = try await self.bases.list(
      owner: caller.userID, query: query.isEmpty ? nil : query, includeArchived: request.includeArchived, after: after, limit: limit)
    return .with {
      $0.knowledgeBases = page.bases.map(Self.message)
      $0.totalSize = Int32(clamping: page.total)
      if page.more, let last = page.bases.last {
        $0.nextPageToken = PageToken.encode(ListCursor(name: last.name.lowercased(), id: last.id, filter: filter))
      }
    }
  }

  public func updateKnowledgeBase(
    _ request: Platform_Knowledge_V1_UpdateKnowledgeBaseRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_KnowledgeBase {
    let caller = try context.requireCaller()
    let message = request.knowledgeBase
    let id = try Self.id(message.id, field: "knowledge_base.id")
    guard !request.updateMask.paths.isEmpty else { throw KnowledgeError.invalidArgument(field: "update_mask", reason: "names no field") }
    let chunking = try Self.chunking(message.chunking, field: "knowledge_base.chunking")
    let status = try Self.status(message.status)
    let updated = try await self.bases.update(id, owner: caller.userID, version: Int(request.version)) { draft in
      for path in request.updateMask.paths {
        switch path {
        case "name": draft.name = message.name
        case "description": draft.description = message.description_p
        case "embedding_model": draft.embeddingModel = message.embeddingModel
        case "chunking": draft.chunking = chunking
        case "status": draft.status = status
        case "language": draft.language = message.language
        default: throw KnowledgeError.invalidArgument(field: "update_mask", reason: "\(path) is not an updatable field")
        }
      }
    }
    return Self.message(updated)
  }

  public func deleteKnowledgeBase(
    _ request: Platform_Knowledge_V1_DeleteKnowledgeBaseRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    try await self.bases.delete(
      try Self.id(request.id, field: "id"), owner: caller.userID, version: request.version == 0 ? nil : Int(request.version))
    return Google_Protobuf_Empty()
  }

  // MARK: - Messages

  static func id(_ text: String, field: String) throws -> UUID {
    guard let id = UUID(strict: text) else { throw KnowledgeError.invalidArgument(field: field, reason: "must be a UUID") }
    return id
  }

  static func chunking(_ message: Platform_Knowledge_V1_ChunkingOptions, field: String) throws -> ChunkingOptions {
    let strategy: ChunkingOptions.Strategy
    switch message.strategy {
    case .unspecified, .paragraph: strategy = .paragraph
    case .fixedSize: strategy = .fixed
    case .sentence: strategy = .sentence
    case .UNRECOGNIZED: throw KnowledgeError.invalidArgument(field: "\(field).strategy", reason: "is not a chunking strategy")
    }
    guard message.chunkSize >= 0, message.chunkOverlap >= 0 else {
      throw KnowledgeError.invalidArgument(field: field, reason: "sizes may not be negative")
    }
    return ChunkingOptions(strategy: strategy, size: Int(message.chunkSize), overlap: Int(message.chunkOverlap))
  }

  static func status(_ status: Platform_Knowledge_V1_KnowledgeBaseStatus) throws -> KnowledgeBase.Status {
    switch status {
    case .unspecified, .active: .active
    case .archived: .archived
    case .UNRECOGNIZED: throw KnowledgeError.invalidArgument(field: "knowledge_base.status", reason: "is not a status")
    }
  }

  static func message(_ base: KnowledgeBase) -> Platform_Knowledge_V1_KnowledgeBase {
    .with {
      $0.id = base.id.lowercasedString
      $0.userID = base.ownerID.lowercasedString
      $0.name = base.name
      $0.description_p = base.description
      $0.embeddingModel = base.embeddingModel
      $0.embeddingDimension = Int32(base.dimension)
      $0.chunking = .with {
        $0.strategy =
          switch base.chunking.strategy {
          case .fixed: .fixedSize
          case .sentence: .sentence
          case .paragraph: .paragraph
          }
        $0.chunkSize = Int32(base.chunking.size)
        $0.chunkOverlap = Int32(base.chunking.overlap)
      }
      $0.language = base.language
      $0.indexType = "hnsw"
      $0.metric = "cosine"
      $0.documentCount = Int32(clamping: base.documentCount)
      $0.chunkCount = base.chunkCount
      $0.status = base.status == .archived ? .archived : .active
      $0.version = Int32(base.version)
      $0.createTime = Google_Protobuf_Timestamp(date: base.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: base.updatedAt)
    }
  }
}
