public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of documents and their files in knowledge_db. Every status change is one statement
/// guarded by the statuses `DocumentLifecycle` allows it from and by the document's generation.
public struct DocumentStore: Sendable {
  let database: Database
  let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  public enum Failure: Error, Equatable {
    case versionMismatch
    /// The document is being processed (or is not in a status the change may leave from).
    case busy(DocumentStatus)
  }

  private static func columns(content: Bool) -> String {
    """
    d.id, d.user_id, d.knowledge_base_id, d.title, \(content ? "d.content" : "''"), d.content_type, d.file_name, d.file_size,
    d.content_hash, d.metadata::text, d.tags, d.chunk_strategy, d.chunk_size, d.chunk_overlap, d.status, d.status_message,
    d.chunk_count, d.chunks_indexed, d.chunk_total, d.generation, d.version, d.indexed_at, d.created_at, d.updated_at, d.deleted_at
    """
  }

  private static func row(_ row: PostgresRow) throws -> Document {
    let (id, owner, base, title, content, type, fileName, fileSize, hash, metadata, tags, strategy, size, overlap) = try row.decode(
      (UUID, UUID, UUID, String, String, String, String?, Int64, String, String, [String], String, Int, Int).self)
    let tail = try row.decode(
      (String, String?, Int, Int, Int, Int, Int, Date?, Date, Date, Date?).self, startingAt: 14)
    return Document(
      id: id, ownerID: owner, knowledgeBaseID: base, title: title, content: content, format: DocumentFormat(rawValue: type) ?? .plainText,
      fileName: fileName, fileSize: fileSize, contentHash: hash, metadata: (try? JSONValue(jsonText: metadata)) ?? .object([:]),
      tags: tags, chunking: ChunkingOptions(strategy: ChunkingOptions.Strategy(rawValue: strategy) ?? .paragraph, size: size, overlap: overlap),
      status: DocumentStatus(rawValue: tail.0) ?? .failed, statusMessage: tail.1, chunkCount: tail.2, chunksIndexed: tail.3,
      chunkTotal: tail.4, generation: tail.5, version: tail.6, indexedAt: tail.7, createdAt: tail.8, updatedAt: tail.9, deletedAt: tail.10)
  }

  /// Inserts `document` (with the original `file`, if any) and, in the same transaction, its
  /// indexing job (`enqueue`); with a request id this owner already used, the first document
  /// (`created` false) and nothing else.
  public func insert(
    _ document: Document, file: [UInt8]?, requestID: UUID?, enqueue: @Sendable (DatabaseConnection, Document) async throws -> Void
  ) async throws -> (document: Document, created: Bool) {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        INSERT INTO documents AS d (id, user_id, knowledge_base_id, title, content, content_type, file_name, file_size, content_hash,
          metadata, tags, chunk_strategy, chunk_size, chunk_overlap, request_id)
        VALUES (\(document.id), \(document.ownerID), \(document.knowledgeBaseID), \(document.title), \(document.content),
          \(document.format.rawValue), \(document.fileName), \(document.fileSize), \(document.contentHash), \(document.metadata.jsonText)::jsonb,
          \(document.tags), \(document.chunking.strategy.rawValue), \(document.chunking.size), \(document.chunking.overlap), \(requestID))
        ON CONFLICT (user_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
        RETURNING \(unescaped: Self.columns(content: false))
        """, logger: self.logger)
      guard let inserted = rows.first else {
        let existing = try await connection.query(
          "SELECT \(unescaped: Self.columns(content: false)) FROM documents d WHERE d.user_id = \(document.ownerID) AND d.request_id = \(requestID)",
          logger: self.logger)
        guard let first = existing.first else { throw KnowledgeError.failedPrecondition("The request id was used and its document is gone") }
        return (try Self.row(first), false)
      }
      if let file {
        try await connection.query(
          "INSERT INTO document_files (document_id, data) VALUES (\(document.id), \(ByteBuffer(bytes: file)))", logger: self.logger)
      }
      let created = try Self.row(inserted)
      try await enqueue(connection, created)
      return (created, true)
    }
  }

  /// The owner's document, unless it is deleted.
  public func get(_ id: UUID, ownerID: UUID, content: Bool) async throws -> Document? {
    try await self.database.query(
      """
      SELECT \(unescaped: Self.columns(content: content)) FROM documents d
      WHERE d.id = \(id) AND d.user_id = \(ownerID) AND d.deleted_at IS NULL
      """, logger: self.logger
    ).first.map(Self.row)
  }

  /// The document for its indexing job: any owner, deleted ones included (the job then stops).
  public func document(_ id: UUID) async throws -> Document? {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns(content: true)) FROM documents d WHERE d.id = \(id)", logger: self.logger
    ).first.map(Self.row)
  }

  /// The original upload, nil when the document was created from text.
  public func file(of id: UUID) async throws -> [UInt8]? {
    guard let row = try await self.database.query("SELECT data FROM document_files WHERE document_id = \(id)", logger: self.logger).first
    else { return nil }
    var buffer = try row.decode(ByteBuffer.self)
    return buffer.readBytes(length: buffer.readableBytes)
  }

  public struct ListFilter: Sendable, Equatable {
    public var knowledgeBaseID: UUID?
    public var status: DocumentStatus?
    public var contentType: String?
    /// A case-insensitive substring of the title.
    public var query: String?
    /// What Search's filter would let through.
    public var matching: ChunkFilter

    public init(
      knowledgeBaseID: UUID? = nil, status: DocumentStatus? = nil, contentType: String? = nil, query: String? = nil,
      matching: ChunkFilter = ChunkFilter()
    ) {
      self.knowledgeBaseID = knowledgeBaseID
      self.status = status
      self.contentType = contentType
      self.query = query
      self.matching = matching
    }
  }

  /// The owner's documents, most recently updated first, after `after` (updated_at, id).
  public func list(
    ownerID: UUID, filter: ListFilter, content: Bool, after: (Date, UUID)?, limit: Int
  ) async throws -> (documents: [Document], total: Int, more: Bool) {
    let pattern = filter.query.map(LikePattern.containing)
    let base = filter.knowledgeBaseID
    let status = filter.status?.rawValue
    let type = filter.contentType
    let listing: PostgresQuery = """
      SELECT \(unescaped: Self.columns(content: content)) FROM documents d
      WHERE d.user_id = \(ownerID) AND d.deleted_at IS NULL AND (\(base)::uuid IS NULL OR d.knowledge_base_id = \(base))
        AND (\(status)::text IS NULL OR d.status = \(status)) AND (\(type)::text IS NULL OR d.content_type = \(type))
        AND (\(pattern)::text IS NULL OR d.title ILIKE \(pattern))\(conditionsOf: filter.matching)
        AND (\(after?.0)::timestamptz IS NULL OR (d.updated_at, d.id) < (\(after?.0), \(after?.1)))
      ORDER BY d.updated_at DESC, d.id DESC LIMIT \(limit + 1)
      """
    let counting: PostgresQuery = """
      SELECT count(*)::int8 FROM documents d
      WHERE d.user_id = \(ownerID) AND d.deleted_at IS NULL AND (\(base)::uuid IS NULL OR d.knowledge_base_id = \(base))
        AND (\(status)::text IS NULL OR d.status = \(status)) AND (\(type)::text IS NULL OR d.content_type = \(type))
        AND (\(pattern)::text IS NULL OR d.title ILIKE \(pattern))\(conditionsOf: filter.matching)
      """
    let rows = try await self.database.query(listing, logger: self.logger)
    let total = try await self.database.query(counting, logger: self.logger).first?.decode(Int64.self) ?? 0
    return (try rows.prefix(limit).map(Self.row), Int(total), rows.count > limit)
  }

  /// Writes the updatable fields of `document` if it is still at `expected`; with `requeue`, also
  /// queues it for indexing again (new generation, its job enqueued in the same transaction).
  /// - Throws: `Failure.versionMismatch`, `Failure.busy` (requeue while processing).
  public func update(
    _ document: Document, expected: Int, requeue: Bool, enqueue: @Sendable (DatabaseConnection, Document) async throws -> Void
  ) async throws -> Document {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let sources = DocumentLifecycle.sources(of: .requeue).map(\.rawValue)
      let rows = try await connection.query(
        """
        UPDATE documents d SET title = \(document.title), content = \(document.content), metadata = \(document.metadata.jsonText)::jsonb,
          tags = \(document.tags), chunk_strategy = \(document.chunking.strategy.rawValue), chunk_size = \(document.chunking.size),
          chunk_overlap = \(document.chunking.overlap), version = d.version + 1, updated_at = now(),
          status = CASE WHEN \(requeue) THEN 'uploaded' ELSE d.status END,
          status_message = CASE WHEN \(requeue) THEN NULL ELSE d.status_message END,
          generation = d.generation + CASE WHEN \(requeue) THEN 1 ELSE 0 END,
          chunks_indexed = CASE WHEN \(requeue) THEN 0 ELSE d.chunks_indexed END,
          chunk_total = CASE WHEN \(requeue) THEN 0 ELSE d.chunk_total END
        WHERE d.id = \(document.id) AND d.user_id = \(document.ownerID) AND d.deleted_at IS NULL AND d.version = \(expected)
          AND (NOT \(requeue) OR d.status = ANY(\(sources)))
        RETURNING \(unescaped: Self.columns(content: true))
        """, logger: self.logger)
      guard let first = rows.first else {
        let current = try await connection.query(
          "SELECT status, version FROM documents WHERE id = \(document.id) AND user_id = \(document.ownerID) AND deleted_at IS NULL",
          logger: self.logger
        ).first?.decode((String, Int).self)
        if let current, current.1 == expected, let status = DocumentStatus(rawValue: current.0) { throw Failure.busy(status) }
        throw Failure.versionMismatch
      }
      let updated = try Self.row(first)
      if requeue { try await enqueue(connection, updated) }
      return updated
    }
  }

  /// Queues the document for indexing again with `chunking` (new generation, its job enqueued in
  /// the same transaction).
  /// - Returns: nil when there is no such document. - Throws: `Failure.busy` while it is processed.
  public func requeue(
    _ id: UUID, ownerID: UUID, chunking: ChunkingOptions?, enqueue: @Sendable (DatabaseConnection, Document) async throws -> Void
  ) async throws -> Document? {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let sources = DocumentLifecycle.sources(of: .requeue).map(\.rawValue)
      let rows = try await connection.query(
        """
        UPDATE documents d SET status = 'uploaded', status_message = NULL, generation = d.generation + 1, chunks_indexed = 0,
          chunk_total = 0, version = d.version + 1, updated_at = now(),
          chunk_strategy = coalesce(\(chunking?.strategy.rawValue), d.chunk_strategy), chunk_size = coalesce(\(chunking?.size), d.chunk_size),
          chunk_overlap = coalesce(\(chunking?.overlap), d.chunk_overlap)
        WHERE d.id = \(id) AND d.user_id = \(ownerID) AND d.deleted_at IS NULL AND d.status = ANY(\(sources))
        RETURNING \(unescaped: Self.columns(content: false))
        """, logger: self.logger)
      guard let first = rows.first else {
        let status = try await connection.query(
          "SELECT status FROM documents WHERE id = \(id) AND user_id = \(ownerID) AND deleted_at IS NULL", logger: self.logger
        ).first?.decode(String.self)
        guard let status else { return nil }
        throw Failure.busy(DocumentStatus(rawValue: status) ?? .processing)
      }
      let document = try Self.row(first)
      try await enqueue(connection, document)
      return document
    }
  }

  /// Soft-deletes the document: its chunks leave search and its file is dropped in the same
  /// transaction, and a running job's work is discarded (new generation).
  /// - Returns: false when there is no such document. - Throws: `Failure.versionMismatch`.
  public func delete(_ id: UUID, ownerID: UUID, version: Int?) async throws -> Bool {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        SELECT version FROM documents WHERE id = \(id) AND user_id = \(ownerID) AND deleted_at IS NULL FOR UPDATE
        """, logger: self.logger)
      guard let current = try rows.first?.decode(Int.self) else { return false }
      if let version, version != current { throw Failure.versionMismatch }
      try await connection.query("DELETE FROM document_chunks WHERE document_id = \(id)", logger: self.logger)
      try await connection.query("DELETE FROM document_files WHERE document_id = \(id)", logger: self.logger)
      try await connection.query(
        """
        UPDATE documents SET deleted_at = now(), updated_at = now(), generation = generation + 1, chunk_count = 0, version = version + 1
        WHERE id = \(id)
        """, logger: self.logger)
      return true
    }
  }

  // MARK: - Indexing

  /// Marks generation `generation` of the document as processing.
  /// - Returns: the document, or nil when that generation is no longer current (reindexed,
  ///   deleted) or it cannot start.
  public func start(_ id: UUID, generation: Int) async throws -> Document? {
    let sources = DocumentLifecycle.sources(of: .start).map(\.rawValue)
    return try await self.database.query(
      """
      UPDATE documents d SET status = 'processing', status_message = NULL, chunks_indexed = 0, chunk_total = 0, updated_at = now()
      WHERE d.id = \(id) AND d.generation = \(generation) AND d.deleted_at IS NULL AND d.status = ANY(\(sources))
      RETURNING \(unescaped: Self.columns(content: true))
      """, logger: self.logger
    ).first.map(Self.row)
  }

  /// Records how far processing has got.
  public func progress(_ id: UUID, generation: Int, indexed: Int, total: Int) async throws {
    try await self.database.query(
      """
      UPDATE documents SET chunks_indexed = \(indexed), chunk_total = \(total), updated_at = now()
      WHERE id = \(id) AND generation = \(generation) AND status = 'processing'
      """, logger: self.logger)
  }

  /// Fails generation `generation` of the document with `message`.
  public func fail(_ id: UUID, generation: Int, message: String) async throws {
    let sources = DocumentLifecycle.sources(of: .fail).map(\.rawValue)
    try await self.database.query(
      """
      UPDATE documents SET status = 'failed', status_message = \(message.truncated(toUTF8Bytes: 1000)), updated_at = now()
      WHERE id = \(id) AND generation = \(generation) AND deleted_at IS NULL AND status = ANY(\(sources))
      """, logger: self.logger)
  }
}
