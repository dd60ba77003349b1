internal import Foundation
public import GRPCRuntime
internal import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

extension KnowledgeAPI {
  // MARK: - Documents

  public func createDocument(
    _ request: Platform_Knowledge_V1_CreateDocumentRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_Document {
    let caller = try context.requireCaller()
    let source: Documents.Draft.Source
    switch request.source {
    case .content(let text): source = .text(text)
    case .file(let data): source = .file(Array(data))
    case nil: throw KnowledgeError.invalidArgument(field: "content", reason: "set content (text) or file (bytes)")
    }
    return try await self.create(request, source: source, owner: caller.userID, maxBytes: Document.maxInlineBytes)
  }

  /// The header's document with `source`.
  private func create(
    _ header: Platform_Knowledge_V1_CreateDocumentRequest, source: Documents.Draft.Source, owner: UUID, maxBytes: Int
  ) async throws -> Platform_Knowledge_V1_Document {
    let draft = Documents.Draft(
      knowledgeBaseID: try Self.id(header.knowledgeBaseID, field: "knowledge_base_id"), title: header.title, source: source,
      fileName: header.fileName.isEmpty ? nil : header.fileName, contentType: header.contentType,
      metadata: header.hasMetadata ? JSONValue(header.metadata) : .object([:]),
      chunking: header.hasChunking ? try Self.chunking(header.chunking, field: "chunking") : nil, tags: header.tags)
    let requestID = header.requestID.isEmpty ? nil : try Self.id(header.requestID, field: "request_id")
    return Self.message(try await self.documents.create(draft, owner: owner, requestID: requestID, maxFileBytes: maxBytes), content: false)
  }

  /// The largest piece UploadDocument takes.
  static let maxUploadPiece = 1 << 20

  public func uploadDocument(
    _ requests: RequestStream<Platform_Knowledge_V1_UploadDocumentRequest>, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_Document {
    let caller = try context.requireCaller()
    var header: Platform_Knowledge_V1_CreateDocumentRequest?
    var bytes: [UInt8] = []
    for try await request in requests {
      switch request.part {
      case .header(let first):
        guard header == nil else { throw KnowledgeError.invalidArgument(field: "header", reason: "must be sent once, first") }
        // Checked before any byte is taken: a wrong knowledge base fails at once.
        _ = try await self.bases.base(try Self.id(first.knowledgeBaseID, field: "header.knowledge_base_id"), owner: caller.userID)
        header = first
      case .data(let piece):
        guard header != nil else { throw KnowledgeError.invalidArgument(field: "header", reason: "must come before the data") }
        guard piece.count <= Self.maxUploadPiece else {
          throw KnowledgeError.invalidArgument(field: "data", reason: "each piece must be at most 1 MiB")
        }
        guard bytes.count + piece.count <= self.maxUploadBytes else {
          throw RPCError(.resourceExhausted, "The file is larger than KNOWLEDGE_MAX_FILE_MB (\(self.maxUploadBytes >> 20) MiB)")
        }
        bytes.append(contentsOf: piece)
      case nil:
        throw KnowledgeError.invalidArgument(field: "part", reason: "each message is the header or data")
      }
    }
    guard let header else { throw KnowledgeError.invalidArgument(field: "header", reason: "is missing") }
    return try await self.create(header, source: .file(bytes), owner: caller.userID, maxBytes: self.maxUploadBytes)
  }

  public func getDocument(
    _ request: Platform_Knowledge_V1_GetDocumentRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_Document {
    let caller = try context.requireCaller()
    let full = request.view != .basic
    let document = try await self.documents.document(try Self.id(request.id, field: "id"), owner: caller.userID, content: full)
    return Self.message(document, content: full)
  }

  /// How often WatchDocument looks at the document, and for how long at most.
  static let watchInterval = Duration.milliseconds(200)
  static let watchLimit = Duration.seconds(3600)

  public func watchDocument(
    _ request: Platform_Knowledge_V1_WatchDocumentRequest, responses: ResponseStreamWriter<Platform_Knowledge_V1_Document>,
    context: ServerContext
  ) async throws {
    let caller = try context.requireCaller()
    let id = try Self.id(request.id, field: "id")
    var document = try await self.documents.document(id, owner: caller.userID, content: false)
    try await responses.write(Self.message(document, content: false))
    let deadline = ContinuousClock.now + Self.watchLimit
    while document.status == .uploaded || document.status == .processing {
      guard ContinuousClock.now < deadline else { throw RPCError(.deadlineExceeded, "WatchDocument ends after an hour; call it again") }
      try await Task.sleep(for: Self.watchInterval)
      guard let next = try? await self.documents.document(id, owner: caller.userID, content: false) else { return }  // deleted
      if next.status != document.status || next.chunksIndexed != document.chunksIndexed || next.chunkTotal != document.chunkTotal
        || next.version != document.version
      {
        try await responses.write(Self.message(next, content: false))
      }
      document = next
    }
  }

  struct DocumentCursor: Codable {
    var updated: Date
    var id: UUID
    var filter: String
  }

  public func listDocuments(
    _ request: Platform_Knowledge_V1_ListDocumentsRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_ListDocumentsResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 1000) else {
      throw KnowledgeError.invalidArgument(field: "page_size", reason: "must be 0 to 1000")
    }
    var filter = DocumentStore.ListFilter()
    if !request.knowledgeBaseID.isEmpty { filter.knowledgeBaseID = try Self.id(request.knowledgeBaseID, field: "knowledge_base_id") }
    filter.status = try Self.status(request.status)
    if !request.contentType.isEmpty { filter.contentType = try Documents.format(request.contentType).rawValue }
    let query = request.query.trimmingCharacters(in: .whitespaces)
    if !query.isEmpty { filter.query = query }
    if request.hasFilter { filter.matching = try Self.filter(request.filter) }
    let fingerprint = PageToken.fingerprint(
      "\(request.knowledgeBaseID)/\(request.status.rawValue)/\(request.contentType)/\(query)/\(filter.matching.fingerprint)")
    var after: (Date, UUID)?
    if !request.pageToken.isEmpty {
      guard let cursor = PageToken.decode(request.pageToken, as: DocumentCursor.self), cursor.filter == fingerprint else {
        throw KnowledgeError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
      }
      after = (cursor.updated, cursor.id)
    }
    let full = request.view == .full
    let page = try await self.documents.list(owner: caller.userID, filter: filter, content: full, after: after, limit: limit)
    // A page of full documents is bounded by bytes too.
    let documents = Self.fitting(page.documents.map { Self.message($0, content: full) })
    let more = page.more || documents.count < page.documents.count
    return .with {
      $0.documents = documents
      $0.totalSize = Int32(clamping: page.total)
      if more, let last = page.documents.prefix(documents.count).last {
        $0.nextPageToken = PageToken.encode(DocumentCursor(updated: last.updatedAt, id: last.id, filter: fingerprint))
      }
    }
  }

  public func updateDocument(
    _ request: Platform_Knowledge_V1_UpdateDocumentRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_Document {
    let caller = try context.requireCaller()
    let message = request.document
    let id = try Self.id(message.id, field: "document.id")
    guard !request.updateMask.paths.isEmpty else { throw KnowledgeError.invalidArgument(field: "update_mask", reason: "names no field") }
    var change = Documents.Change()
    for path in request.updateMask.paths {
      switch path {
      case "title": change.title = message.title
      case "content": change.content = message.content
      case "metadata": change.metadata = message.hasMetadata ? JSONValue(message.metadata) : .object([:])
      case "chunking": change.chunking = try Self.chunking(message.chunking, field: "document.chunking")
      case "tags": change.tags = message.tags
      default: throw KnowledgeError.invalidArgument(field: "update_mask", reason: "\(path) is not an updatable field")
      }
    }
    return Self.message(try await self.documents.update(id, owner: caller.userID, version: Int(request.version), change: change), content: true)
  }

  public func deleteDocument(
    _ request: Platform_Knowledge_V1_DeleteDocumentRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    try await self.documents.delete(
      try Self.id(request.id, field: "id"), owner: caller.userID, version: request.version == 0 ? nil : Int(request.version))
    return Google_Protobuf_Empty()
  }

  public func reindexDocument(
    _ request: Platform_Knowledge_V1_ReindexDocumentRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_Document {
    let caller = try context.requireCaller()
    let chunking = request.hasChunking ? try Self.chunking(request.chunking, field: "chunking") : nil
    return Self.message(try await self.documents.reindex(try Self.id(request.id, field: "id"), owner: caller.userID, chunking: chunking), content: false)
  }

  struct ChunkCursor: Codable {
    var index: Int
    var document: UUID
    var embeddings: Bool
  }

  public func listChunks(
    _ request: Platform_Knowledge_V1_ListChunksRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_ListChunksResponse {
    let caller = try context.requireCaller()
    let id = try Self.id(request.documentID, field: "document_id")
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 1000) else {
      throw KnowledgeError.invalidArgument(field: "page_size", reason: "must be 0 to 1000")
    }
    var after: Int?
    if !request.pageToken.isEmpty {
      guard let cursor = PageToken.decode(request.pageToken, as: ChunkCursor.self), cursor.document == id,
        cursor.embeddings == request.includeEmbeddings
      else { throw KnowledgeError.invalidArgument(field: "page_token", reason: "is not a token of this listing") }
      after = cursor.index
    }
    _ = try await self.documents.document(id, owner: caller.userID, content: false)
    let page = try await self.chunks.chunks(of: id, afterIndex: after, limit: limit, embeddings: request.includeEmbeddings)
    let chunks = Self.fitting(page.chunks.map(Self.message))
    let more = page.more || chunks.count < page.chunks.count
    return .with {
      $0.chunks = chunks
      $0.totalSize = Int32(clamping: page.total)
      if more, let last = page.chunks.prefix(chunks.count).last {
        $0.nextPageToken = PageToken.encode(ChunkCursor(index: last.index, document: id, embeddings: request.includeEmbeddings))
      }
    }
  }

  // MARK: - Search

  public func search(
    _ request: Platform_Knowledge_V1_SearchRequest, context: ServerContext
  ) async throws -> Platform_Knowledge_V1_SearchResponse {
    let caller = try context.requireCaller()
    let text = request.query.trimmingCharacters(in: .whitespacesAndNewlines)
    guard (1...2000).contains(text.count), !text.utf8.contains(0) else {
      throw KnowledgeError.invalidArgument(field: "query", reason: "must be 1 to 2000 characters")
    }
    guard (1...32).contains(request.knowledgeBaseIds.count) else {
      throw KnowledgeError.invalidArgument(field: "knowledge_base_ids", reason: "name 1 to 32 knowledge bases")
    }
    var ids: [UUID] = []
    for text in request.knowledgeBaseIds {
      let id = try Self.id(text, field: "knowledge_base_ids")
      if !ids.contains(id) { ids.append(id) }
    }
    var query = Search.Query(knowledgeBaseIDs: ids, text: text)
    switch request.mode {
    case .unspecified, .hybrid: query.mode = .hybrid
    case .vector: query.mode = .vector
    case .keyword: query.mode = .keyword
    case .UNRECOGNIZED: throw KnowledgeError.invalidArgument(field: "mode", reason: "is not a search mode")
    }
    switch request.fusion {
    case .unspecified, .rrf: query.fusion = .rrf
    case .weighted: query.fusion = .weighted
    case .UNRECOGNIZED: throw KnowledgeError.invalidArgument(field: "fusion", reason: "is not a fusion method")
    }
    guard (0...100).contains(request.topK) else { throw KnowledgeError.invalidArgument(field: "top_k", reason: "must be 0 to 100") }
    query.topK = request.topK == 0 ? 5 : Int(request.topK)
    guard (0...1).contains(request.minScore) else { throw KnowledgeError.invalidArgument(field: "min_score", reason: "must be 0 to 1") }
    query.minScore = request.minScore
    guard (0...1).contains(request.hybridAlpha) else {
      throw KnowledgeError.invalidArgument(field: "hybrid_alpha", reason: "must be 0 to 1")
    }
    query.alpha = request.hybridAlpha == 0 ? 0.7 : request.hybridAlpha
    guard (0...1000).contains(request.rrfK) else { throw KnowledgeError.invalidArgument(field: "rrf_k", reason: "must be 0 to 1000") }
    query.rrfK = request.rrfK == 0 ? 60 : Int(request.rrfK)
    guard (0...3).contains(request.neighbors) else { throw KnowledgeError.invalidArgument(field: "neighbors", reason: "must be 0 to 3") }
    query.neighbors = Int(request.neighbors)
    query.distinctDocuments = request.distinctDocuments
    query.filter = try Self.filter(request.filter)
    let outcome = try await self.searcher.search(query, owner: caller.userID)
    let results = Self.fitting(outcome.hits.map(Self.message))
    return .with {
      $0.results = results
      $0.mode = switch outcome.mode {
      case .vector: .vector
      case .keyword: .keyword
      case .hybrid: .hybrid
      }
      $0.embeddingModel = outcome.embeddingModel
      if let fusion = outcome.fusion { $0.fusion = fusion == .rrf ? .rrf : .weighted }
      $0.embeddingTimeMs = Int32(clamping: outcome.embeddingTime.components.seconds * 1000 + outcome.embeddingTime.components.attoseconds / 1_000_000_000_000_000)
    }
  }

  static func filter(_ message: Platform_Knowledge_V1_SearchFilter) throws -> ChunkFilter {
    var filter = ChunkFilter()
    guard message.documentIds.count <= 1000, message.contentTypes.count <= 16 else {
      throw KnowledgeError.invalidArgument(field: "filter", reason: "at most 1000 document ids and 16 content types")
    }
    filter.documentIDs = try message.documentIds.map { try Self.id($0, field: "filter.document_ids") }
    filter.contentTypes = try message.contentTypes.map { try Documents.format($0).rawValue }
    filter.tagsAny = try Documents.checkedTags(message.tagsAny, field: "filter.tags_any")
    if message.hasMetadata {
      let metadata = JSONValue(message.metadata)
      if let problem = metadata.problem(maxDepth: Document.maxMetadataDepth, maxBytes: Document.maxMetadataBytes) {
        throw KnowledgeError.invalidArgument(field: "filter.metadata", reason: problem)
      }
      filter.metadata = metadata.objectValue ?? [:]
    }
    if message.hasCreatedAfter { filter.createdAfter = message.createdAfter.date }
    if message.hasCreatedBefore { filter.createdBefore = message.createdBefore.date }
    return filter
  }

  // MARK: - Messages

  /// The leading messages that fit in a response (`ResponseBudget`).
  static func fitting<Item: SwiftProtobuf.Message>(_ messages: [Item]) -> [Item] {
    let count = ResponseBudget.fittingCount(messages) { message in
      ResponseBudget.fieldSize(((try? message.serializedBytes()) as [UInt8]?)?.count ?? 0)
    }
    return Array(messages.prefix(count))
  }

  static func status(_ status: Platform_Knowledge_V1_DocumentStatus) throws -> DocumentStatus? {
    switch status {
    case .unspecified: nil
    case .pending: .uploaded
    case .processing: .processing
    case .ready: .indexed
    case .failed: .failed
    case .UNRECOGNIZED: throw KnowledgeError.invalidArgument(field: "status", reason: "is not a document status")
    }
  }

  static func chunkingMessage(_ options: ChunkingOptions) -> Platform_Knowledge_V1_ChunkingOptions {
    .with {
      $0.strategy =
        switch options.strategy {
        case .fixed: .fixedSize
        case .sentence: .sentence
        case .paragraph: .paragraph
        }
      $0.chunkSize = Int32(options.size)
      $0.chunkOverlap = Int32(options.overlap)
    }
  }

  static func message(_ document: Document, content: Bool) -> Platform_Knowledge_V1_Document {
    .with {
      $0.id = document.id.lowercasedString
      $0.userID = document.ownerID.lowercasedString
      $0.knowledgeBaseID = document.knowledgeBaseID.lowercasedString
      $0.title = document.title
      if content { $0.content = document.content }
      $0.contentType = document.format.rawValue
      if let fileName = document.fileName { $0.fileName = fileName }
      $0.fileSize = document.fileSize
      $0.contentHash = document.contentHash
      if case .object = document.metadata { $0.metadata = document.metadata.protobufStruct }
      $0.tags = document.tags
      $0.chunking = Self.chunkingMessage(document.chunking)
      $0.status =
        switch document.status {
        case .uploaded: .pending
        case .processing: .processing
        case .indexed: .ready
        case .failed: .failed
        }
      if let message = document.statusMessage { $0.statusMessage = message }
      $0.chunkCount = Int32(clamping: document.chunkCount)
      $0.chunksIndexed = Int32(clamping: document.chunksIndexed)
      $0.chunkTotal = Int32(clamping: document.chunkTotal)
      $0.version = Int32(clamping: document.version)
      if let indexed = document.indexedAt { $0.indexTime = Google_Protobuf_Timestamp(date: indexed) }
      $0.createTime = Google_Protobuf_Timestamp(date: document.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: document.updatedAt)
      if let deleted = document.deletedAt { $0.deleteTime = Google_Protobuf_Timestamp(date: deleted) }
    }
  }

  static func message(_ chunk: StoredChunk) -> Platform_Knowledge_V1_DocumentChunk {
    .with {
      $0.id = chunk.id.lowercasedString
      $0.documentID = chunk.documentID.lowercasedString
      $0.chunkIndex = Int32(clamping: chunk.index)
      $0.content = chunk.content
      $0.contentLength = Int32(clamping: chunk.contentLength)
      if case .object = chunk.metadata { $0.metadata = chunk.metadata.protobufStruct }
      if let embedding = chunk.embedding { $0.embedding = embedding }
      $0.createTime = Google_Protobuf_Timestamp(date: chunk.createdAt)
    }
  }

  static func message(_ hit: Search.Hit) -> Platform_Knowledge_V1_SearchResult {
    .with {
      $0.chunk = Self.message(hit.chunk)
      $0.documentID = hit.chunk.documentID.lowercasedString
      $0.documentTitle = hit.documentTitle
      $0.knowledgeBaseID = hit.chunk.knowledgeBaseID.lowercasedString
      $0.score = hit.score
      if let score = hit.vectorScore { $0.vectorScore = score }
      if let score = hit.keywordScore { $0.keywordScore = score }
      if let rank = hit.vectorRank { $0.vectorRank = Int32(rank) }
      if let rank = hit.keywordRank { $0.keywordRank = Int32(rank) }
      if let match = hit.termMatch { $0.termMatch = match }
      $0.neighbors = hit.neighbors.map(Self.message)
    }
  }
}
