internal import Foundation
public import Logging
public import PlatformCore

/// The indexing job of one generation of a document: extract the text (out of process, for
/// files), chunk it, embed the chunks in batches (through the embedding cache), then write all
/// chunks and mark the document indexed in one transaction. A crash anywhere before that commit
/// leaves the old chunks (or none) searchable; the job runs again and finds the embeddings it had
/// made in the cache, so a document is never half-indexed and never embedded twice.
public struct Ingestion: Sendable {
  let documents: DocumentStore
  let chunks: ChunkStore
  let bases: KnowledgeBaseStore
  let cache: EmbeddingCache
  let providers: EmbeddingProviders
  let extractor: TextExtractor
  let logger: Logger

  public init(
    documents: DocumentStore, chunks: ChunkStore, bases: KnowledgeBaseStore, cache: EmbeddingCache, providers: EmbeddingProviders,
    extractor: TextExtractor, logger: Logger
  ) {
    self.documents = documents
    self.chunks = chunks
    self.bases = bases
    self.cache = cache
    self.providers = providers
    self.extractor = extractor
    self.logger = logger
  }

  /// Texts per embedding batch (and per progress update).
  static let batchSize = 64
  /// A document makes at most this many chunks (a larger chunk_size takes a bigger document).
  public static let maxChunks = 50_000

  /// The job handler.
  public func handler(concurrency: Int) -> JobHandler {
    JobHandler(type: Documents.indexJobType, concurrency: concurrency, retryBackoff: (.seconds(1), .seconds(60))) { job, logger in
      guard let payload = try? JSONValue(jsonText: job.payload).objectValue, let id = payload["document_id"]?.stringValue.flatMap(UUID.init(strict:)),
        case .number(let generation)? = payload["generation"]
      else { throw PermanentJobFailure("The job's payload names no document and generation") }
      do {
        try await self.index(id, generation: Int(generation), logger: logger)
      } catch let failure as PermanentJobFailure {
        try await self.documents.fail(id, generation: Int(generation), message: failure.description)
        throw failure
      } catch {
        // A transient failure (the embedding provider, the database): retried with backoff; the
        // last attempt fails the document with the reason.
        if job.attempts >= job.maxAttempts {
          try? await self.documents.fail(id, generation: Int(generation), message: Self.message(for: error))
        }
        throw error
      }
    }
  }

  static func message(for error: any Error) -> String {
    switch error {
    case EmbeddingError.unavailable(let why): "Embedding failed: \(why)"
    default: "Indexing failed: \(String(describing: error).prefix(200))"
    }
  }

  /// Indexes generation `generation` of document `id`; does nothing when that generation is no
  /// longer current.
  func index(_ id: UUID, generation: Int, logger: Logger) async throws {
    guard let document = try await self.documents.start(id, generation: generation) else {
      logger.debug("Skipping an indexing job of an older generation", metadata: ["document_id": "\(id)"])
      return
    }
    guard let base = try await self.bases.get(document.knowledgeBaseID, ownerID: document.ownerID) else { return }
    guard let embedder = self.providers.embedder(for: base.embeddingModel) else {
      throw PermanentJobFailure("The knowledge base's embedding model \(base.embeddingModel) is not configured on this server")
    }
    var text = document.content
    var extracted: String?
    if let file = try await self.documents.file(of: id) {
      do {
        text = try await self.extractor.extract(file, declared: document.format).text
      } catch {
        throw PermanentJobFailure(Self.describe(error))
      }
      extracted = text
    }
    guard text.utf8.count <= Document.maxContentBytes else {
      throw PermanentJobFailure("The document's text is larger than \(Document.maxContentBytes >> 20) MiB")
    }
    guard text.contains(where: { $0.isLetter || $0.isNumber }) else {
      throw PermanentJobFailure("The document has no text (a scanned PDF needs OCR first)")
    }
    var options = document.chunking
    options.markdown = document.format == .markdown || document.format == .html || document.format == .docx
    let pieces = Chunker.chunks(of: text, options: options, maxChunks: Self.maxChunks + 1)
    guard pieces.count <= Self.maxChunks else {
      throw PermanentJobFailure("The document makes more than \(Self.maxChunks) chunks; use a larger chunk_size")
    }
    try await self.documents.progress(id, generation: generation, indexed: 0, total: pieces.count)
    var vectors: [[Float]] = []
    vectors.reserveCapacity(pieces.count)
    var start = 0
    while start < pieces.count {
      let batch = pieces[start..<min(start + Self.batchSize, pieces.count)]
      vectors += try await self.embed(batch.map { Self.embeddingText(title: document.title, chunk: $0.text) }, with: embedder)
      start += batch.count
      try await self.documents.progress(id, generation: generation, indexed: start, total: pieces.count)
    }
    let rows = zip(pieces, vectors).map { piece, vector in
      ChunkStore.NewChunk(index: piece.index, content: piece.text, metadata: Self.metadata(of: piece), embedding: vector)
    }
    let written = try await self.chunks.finish(document, generation: generation, content: extracted, chunks: rows, language: base.language)
    logger.info(
      "Indexed a document",
      metadata: ["document_id": "\(id)", "chunks": "\(rows.count)", "written": "\(written)", "model": "\(embedder.model.name)"])
  }

  /// What is embedded for a chunk: the document title, then the chunk, so that a chunk deep in a
  /// document still says what it belongs to.
  static func embeddingText(title: String, chunk: String) -> String {
    title + "\n\n" + chunk
  }

  /// Embeds `texts`, taking what the cache has and caching what it makes.
  func embed(_ texts: [String], with embedder: any Embedder) async throws -> [[Float]] {
    let model = embedder.model.name
    let hashes = texts.map(\.sha256Hex)
    let cached = (try? await self.cache.lookup(model: model, hashes: hashes)) ?? [:]
    let missing = texts.indices.filter { cached[hashes[$0]]?.count != embedder.model.dimension }
    var made: [String: [Float]] = [:]
    if !missing.isEmpty {
      let vectors = try await embedder.embed(missing.map { texts[$0] })
      guard vectors.count == missing.count, vectors.allSatisfy({ $0.count == embedder.model.dimension }) else {
        throw EmbeddingError.unavailable("the provider returned vectors of the wrong count or dimension")
      }
      for (index, vector) in zip(missing, vectors) { made[hashes[index]] = vector }
      do {
        try await self.cache.store(model: model, made.map { ($0.key, $0.value) })
      } catch {
        self.logger.warning("Could not cache embeddings", metadata: ["error": "\(error)"])
      }
    }
    return hashes.map { made[$0] ?? cached[$0] ?? [] }
  }

  /// Seed 004's chunk metadata: heading path, page, character offsets, token count.
  static func metadata(of chunk: Chunk) -> JSONValue {
    var members: [String: JSONValue] = [
      "start_char": .number(Double(chunk.startOffset)), "end_char": .number(Double(chunk.endOffset)),
      "token_count": .number(Double(chunk.tokenCount)),
    ]
    if !chunk.headingPath.isEmpty { members["heading_path"] = .array(chunk.headingPath.map { .string(String($0.prefix(512))) }) }
    if let page = chunk.page { members["page"] = .number(Double(page)) }
    return .object(members)
  }

  static func describe(_ error: ExtractionError) -> String {
    switch error {
    case .formatMismatch(let declared, let detected):
      "The file is not \(declared.rawValue)\(detected.map { " (it is \($0.rawValue))" } ?? "")"
    case .unreadable(let why): why.prefix(1).uppercased() + why.dropFirst()
    case .toolMissing(let why): "The server cannot read this format: \(why)"
    }
  }
}
