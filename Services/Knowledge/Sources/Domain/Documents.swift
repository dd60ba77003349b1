public import Foundation
public import Logging
public import PlatformCore

/// Documents: stored with their indexing job, read, listed, updated, reindexed and deleted by
/// their owner.
public struct Documents: Sendable {
  let store: DocumentStore
  let bases: KnowledgeBases
  let jobs: JobQueue
  let logger: Logger

  public init(store: DocumentStore, bases: KnowledgeBases, jobs: JobQueue, logger: Logger) {
    self.store = store
    self.bases = bases
    self.jobs = jobs
    self.logger = logger
  }

  /// The job type that extracts, chunks and embeds one generation of a document.
  public static let indexJobType = "knowledge.index-document"

  /// What a caller gives to create a document.
  public struct Draft: Sendable {
    public enum Source: Sendable {
      case text(String)
      case file([UInt8])
    }

    public var knowledgeBaseID: UUID
    public var title: String
    public var source: Source
    public var fileName: String?
    /// Empty: detected from the bytes.
    public var contentType: String
    public var metadata: JSONValue
    /// Nil: the knowledge base's.
    public var chunking: ChunkingOptions?
    public var tags: [String]

    public init(
      knowledgeBaseID: UUID, title: String, source: Source, fileName: String?, contentType: String, metadata: JSONValue,
      chunking: ChunkingOptions?, tags: [String]
    ) {
      self.knowledgeBaseID = knowledgeBaseID
      self.title = title
      self.source = source
      self.fileName = fileName
      self.contentType = contentType
      self.metadata = metadata
      self.chunking = chunking
      self.tags = tags
    }
  }

  /// Stores a document and, in the same transaction, the job that indexes it; returns it
  /// uploaded. Text other than plain text and Markdown (HTML) is kept as a file and extracted by
  /// the job, like uploaded files.
  public func create(_ draft: Draft, owner: UUID, requestID: UUID?, maxFileBytes: Int) async throws -> Document {
    let base = try await self.bases.base(draft.knowledgeBaseID, owner: owner)
    guard base.status == .active else {
      throw KnowledgeError.failedPrecondition("The knowledge base is archived and takes no new documents")
    }
    let title = try Self.checkedTitle(draft.title, field: "title")
    var format: DocumentFormat
    var content = ""
    var file: [UInt8]?
    switch draft.source {
    case .text(let text):
      guard text.utf8.count <= maxFileBytes else {
        throw KnowledgeError.invalidArgument(field: "content", reason: "must be at most \(maxFileBytes) bytes")
      }
      guard !text.utf8.contains(0) else { throw KnowledgeError.invalidArgument(field: "content", reason: "must not contain NUL characters") }
      format = draft.contentType.isEmpty ? .plainText : try Self.format(draft.contentType)
      guard format.isText else {
        throw KnowledgeError.invalidArgument(
          field: "content_type", reason: "\(format.rawValue) is a binary format: send its bytes as `file`, not as `content`")
      }
      if format == .html { file = Array(text.utf8) } else { content = text }
    case .file(let bytes):
      guard !bytes.isEmpty else { throw KnowledgeError.invalidArgument(field: "file", reason: "is empty") }
      guard bytes.count <= maxFileBytes else {
        throw KnowledgeError.invalidArgument(field: "file", reason: "must be at most \(maxFileBytes) bytes")
      }
      let detected = DocumentFormat.detect(bytes)
      if draft.contentType.isEmpty {
        guard let detected else {
          throw KnowledgeError.invalidArgument(field: "content_type", reason: "the file's type could not be recognised; name it")
        }
        format = detected
      } else {
        format = try Self.format(draft.contentType)
        do {
          try TextExtractor.checkFormat(of: bytes, declared: format)
        } catch {
          throw KnowledgeError.invalidArgument(
            field: "content_type",
            reason: "is \(format.rawValue) but the bytes are \(detected.map { "\($0.rawValue)" } ?? "of no supported type")")
        }
      }
      if format == .plainText || format == .markdown {
        // Plain text and Markdown need no extraction: checked as UTF-8 now.
        guard let text = String(validating: bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes, as: UTF8.self) else {
          throw KnowledgeError.invalidArgument(field: "file", reason: "is not UTF-8 text")
        }
        content = text
      } else {
        file = bytes
      }
    }
    let fileName = try draft.fileName.map(Self.checkedFileName)
    let metadata = try Self.checkedMetadata(draft.metadata, field: "metadata")
    let tags = try Self.checkedTags(draft.tags, field: "tags")
    let chunking = try self.checkedChunking(draft.chunking, base: base, field: "chunking")
    let original: [UInt8] = file ?? Array(content.utf8)
    let document = Document(
      id: UUID(), ownerID: owner, knowledgeBaseID: base.id, title: title, content: content, format: format, fileName: fileName,
      fileSize: Int64(original.count), contentHash: original.sha256Hex, metadata: metadata, tags: tags,
      chunking: chunking, status: .uploaded, statusMessage: nil, chunkCount: 0, chunksIndexed: 0, chunkTotal: 0, generation: 1, version: 1,
      indexedAt: nil, createdAt: Date(), updatedAt: Date(), deletedAt: nil)
    let jobs = self.jobs
    return try await self.store.insert(document, file: file, requestID: requestID) { connection, created in
      try await Self.enqueueIndexing(created, jobs: jobs, in: connection)
    }.document
  }

  static func enqueueIndexing(_ document: Document, jobs: JobQueue, in connection: DatabaseConnection) async throws {
    try await jobs.enqueue(
      Self.indexJobType,
      payload: .object(["document_id": .string(document.id.lowercasedString), "generation": .number(Double(document.generation))]),
      options: JobOptions(dedupKey: "document:\(document.id.lowercasedString):\(document.generation)", maxAttempts: 5), in: connection)
  }

  public func document(_ id: UUID, owner: UUID, content: Bool) async throws -> Document {
    guard let document = try await self.store.get(id, ownerID: owner, content: content) else {
      throw KnowledgeError.notFound("Document not found")
    }
    return document
  }

  public func list(
    owner: UUID, filter: DocumentStore.ListFilter, content: Bool, after: (Date, UUID)?, limit: Int
  ) async throws -> (documents: [Document], total: Int, more: Bool) {
    if let query = filter.query, query.utf8.count > 255 {
      throw KnowledgeError.invalidArgument(field: "query", reason: "must be at most 255 bytes")
    }
    if let base = filter.knowledgeBaseID { _ = try await self.bases.base(base, owner: owner) }
    return try await self.store.list(ownerID: owner, filter: filter, content: content, after: after, limit: limit)
  }

  /// What UpdateDocument may change.
  public struct Change: Sendable {
    public var title: String?
    public var content: String?
    public var metadata: JSONValue?
    public var chunking: ChunkingOptions?
    public var tags: [String]?

    public init() {}
  }

  /// Applies `change` if the document is still at `version`. A new title, text or chunking
  /// re-indexes it (the title is part of every chunk's keywords and embedding).
  public func update(_ id: UUID, owner: UUID, version: Int, change: Change) async throws -> Document {
    var document = try await self.document(id, owner: owner, content: true)
    guard document.version == version else {
      throw KnowledgeError.failedPrecondition("The document has changed since version \(version) (it is at \(document.version))")
    }
    var requeue = false
    if let title = change.title {
      let checked = try Self.checkedTitle(title, field: "document.title")
      requeue = requeue || checked != document.title
      document.title = checked
    }
    if let content = change.content {
      guard document.format == .plainText || document.format == .markdown else {
        throw KnowledgeError.invalidArgument(
          field: "document.content", reason: "only text/plain and text/markdown documents take new text; upload a new file instead")
      }
      guard content.utf8.count <= Document.maxInlineContentBytes, !content.utf8.contains(0) else {
        throw KnowledgeError.invalidArgument(
          field: "document.content", reason: "must be at most \(Document.maxInlineContentBytes) bytes, without NUL characters")
      }
      requeue = requeue || content != document.content
      document.content = content
      document.contentHash = content.sha256Hex
      document.fileSize = Int64(content.utf8.count)
    }
    if let metadata = change.metadata { document.metadata = try Self.checkedMetadata(metadata, field: "document.metadata") }
    if let tags = change.tags { document.tags = try Self.checkedTags(tags, field: "document.tags") }
    if let chunking = change.chunking {
      let base = try await self.bases.base(document.knowledgeBaseID, owner: owner)
      let checked = try self.checkedChunking(chunking, base: base, field: "document.chunking")
      requeue = requeue || checked != document.chunking
      document.chunking = checked
    }
    let jobs = self.jobs
    do {
      return try await self.store.update(document, expected: version, requeue: requeue) { connection, updated in
        try await Self.enqueueIndexing(updated, jobs: jobs, in: connection)
      }
    } catch DocumentStore.Failure.versionMismatch {
      throw KnowledgeError.failedPrecondition("The document has changed since version \(version)")
    } catch DocumentStore.Failure.busy {
      throw KnowledgeError.failedPrecondition("The document is being processed; change its text, title or chunking once it is indexed")
    }
  }

  /// Re-chunks and re-embeds the document (with new chunking options, if given).
  public func reindex(_ id: UUID, owner: UUID, chunking: ChunkingOptions?) async throws -> Document {
    let document = try await self.document(id, owner: owner, content: false)
    var checked: ChunkingOptions?
    if let chunking {
      let base = try await self.bases.base(document.knowledgeBaseID, owner: owner)
      checked = try self.checkedChunking(chunking, base: base, field: "chunking")
    }
    let jobs = self.jobs
    do {
      guard
        let requeued = try await self.store.requeue(id, ownerID: owner, chunking: checked, enqueue: { connection, document in
          try await Self.enqueueIndexing(document, jobs: jobs, in: connection)
        })
      else { throw KnowledgeError.notFound("Document not found") }
      return requeued
    } catch DocumentStore.Failure.busy {
      throw KnowledgeError.failedPrecondition("The document is being processed already")
    }
  }

  public func delete(_ id: UUID, owner: UUID, version: Int?) async throws {
    do {
      guard try await self.store.delete(id, ownerID: owner, version: version) else { throw KnowledgeError.notFound("Document not found") }
    } catch DocumentStore.Failure.versionMismatch {
      throw KnowledgeError.failedPrecondition("The document has changed since version \(version ?? 0)")
    }
  }

  // MARK: - Checks

  static func format(_ contentType: String) throws -> DocumentFormat {
    // Parameters (`; charset=utf-8`) and case do not matter.
    let bare = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    guard let format = DocumentFormat(rawValue: bare) else {
      throw KnowledgeError.invalidArgument(
        field: "content_type", reason: "must be one of \(DocumentFormat.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return format
  }

  static func checkedTitle(_ title: String, field: String) throws -> String {
    let title = title.trimmingCharacters(in: .whitespacesAndNewlines)
    guard (1...Document.maxTitleCharacters).contains(title.count), title.utf8.count <= 1020,
      !title.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    else {
      throw KnowledgeError.invalidArgument(field: field, reason: "must be 1 to \(Document.maxTitleCharacters) characters without control characters")
    }
    return title
  }

  /// The file name without any directory part.
  static func checkedFileName(_ name: String) throws -> String {
    let base = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
    guard base.count <= Document.maxFileNameCharacters, base.utf8.count <= 1020,
      !base.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    else {
      throw KnowledgeError.invalidArgument(field: "file_name", reason: "must be at most 255 characters without control characters")
    }
    return base
  }

  static func checkedMetadata(_ metadata: JSONValue, field: String) throws -> JSONValue {
    guard case .object = metadata else { throw KnowledgeError.invalidArgument(field: field, reason: "must be an object") }
    if let problem = metadata.problem(maxDepth: Document.maxMetadataDepth, maxBytes: Document.maxMetadataBytes) {
      throw KnowledgeError.invalidArgument(field: field, reason: problem)
    }
    return metadata
  }

  static func checkedTags(_ tags: [String], field: String) throws -> [String] {
    var seen = Set<String>()
    var checked: [String] = []
    for tag in tags {
      let tag = tag.trimmingCharacters(in: .whitespaces)
      guard (1...Document.maxTagCharacters).contains(tag.count), tag.utf8.count <= 256,
        !tag.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
      else {
        throw KnowledgeError.invalidArgument(field: field, reason: "each tag must be 1 to \(Document.maxTagCharacters) characters without control characters")
      }
      if seen.insert(tag).inserted { checked.append(tag) }
    }
    guard checked.count <= Document.maxTags else {
      throw KnowledgeError.invalidArgument(field: field, reason: "at most \(Document.maxTags) tags")
    }
    return checked
  }

  /// `options` with the knowledge base's defaults for what it leaves at zero, validated; nil is
  /// the knowledge base's own.
  func checkedChunking(_ options: ChunkingOptions?, base: KnowledgeBase, field: String) throws -> ChunkingOptions {
    guard let options else { return base.chunking }
    return try KnowledgeBases.completed(options, defaults: base.chunking, field: field)
  }
}
