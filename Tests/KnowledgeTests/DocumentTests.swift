import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing
@testable import Knowledge

/// Waits until the document is READY or FAILED (at most `seconds`) and returns it.
func settled(
  _ client: KnowledgeClient, _ id: String, options: CallOptions, seconds: Double = 30
) async throws -> Platform_Knowledge_V1_Document {
  let deadline = Date().addingTimeInterval(seconds)
  while true {
    let document = try await client.getDocument(.with { $0.id = id; $0.view = .basic }, options: options)
    if document.status == .ready || document.status == .failed || Date() > deadline { return document }
    try await Task.sleep(for: .milliseconds(50))
  }
}

/// A knowledge base of `user`'s with small chunks.
func makeBase(
  _ client: KnowledgeClient, _ options: CallOptions, name: String = "kb", chunkSize: Int32 = 40
) async throws -> Platform_Knowledge_V1_KnowledgeBase {
  try await client.createKnowledgeBase(
    .with { $0.knowledgeBase = .with { $0.name = name; $0.chunking = .with { $0.chunkSize = chunkSize; $0.chunkOverlap = 5 } } },
    options: options)
}

/// Creates a text document and waits for it to be indexed.
@discardableResult
func addDocument(
  _ client: KnowledgeClient, _ options: CallOptions, base: String, title: String, content: String, type: String = "text/plain",
  tags: [String] = [], metadata: Google_Protobuf_Struct? = nil
) async throws -> Platform_Knowledge_V1_Document {
  let created = try await client.createDocument(
    .with {
      $0.knowledgeBaseID = base
      $0.title = title
      $0.content = content
      $0.contentType = type
      $0.tags = tags
      if let metadata { $0.metadata = metadata }
    }, options: options)
  let document = try await settled(client, created.id, options: options)
  #expect(document.status == .ready, "\(title): \(document.statusMessage)")
  return document
}

/// UploadDocument with `messages`.
func uploadDocument(
  _ client: KnowledgeClient, _ messages: [Platform_Knowledge_V1_UploadDocumentRequest], options: CallOptions
) async throws -> Platform_Knowledge_V1_Document {
  try await client.uploadDocument(options: options) { writer in
    for message in messages { try await writer.write(message) }
  }
}

@Suite("Knowledge: documents")
struct DocumentTests {
  @Test("The document lifecycle is a state machine")
  func lifecycle() throws {
    #expect(try DocumentLifecycle.next(after: .uploaded, on: .start) == .processing)
    #expect(try DocumentLifecycle.next(after: .processing, on: .start) == .processing, "a crashed worker's job runs again")
    #expect(try DocumentLifecycle.next(after: .processing, on: .finish) == .indexed)
    #expect(try DocumentLifecycle.next(after: .processing, on: .fail) == .failed)
    #expect(try DocumentLifecycle.next(after: .indexed, on: .requeue) == .uploaded)
    #expect(try DocumentLifecycle.next(after: .failed, on: .requeue) == .uploaded)
    for (status, event) in [(DocumentStatus.uploaded, DocumentEvent.finish), (.indexed, .start), (.indexed, .fail), (.processing, .requeue), (.failed, .finish)] {
      #expect(throws: DocumentLifecycle.InvalidTransition.self) { try DocumentLifecycle.next(after: status, on: event) }
    }
    #expect(Set(DocumentLifecycle.sources(of: .requeue)) == [.uploaded, .indexed, .failed])
  }

  @Test("ListDocuments applies Search's filter: tags, metadata equality, content types, ids; pages keep it; bad filters change nothing")
  func listFiltered() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options)
      func run(_ id: String) -> Google_Protobuf_Struct { .with { $0.fields["execution_id"] = .init(stringValue: id) } }
      let first = try await addDocument(client, options, base: base.id, title: "a", content: "alpha text", tags: ["execution-file"], metadata: run("r1"))
      let second = try await addDocument(
        client, options, base: base.id, title: "b", content: "# beta", type: "text/markdown", tags: ["execution-file"], metadata: run("r1"))
      let other = try await addDocument(client, options, base: base.id, title: "c", content: "gamma text", tags: ["execution-file"], metadata: run("r2"))
      let untagged = try await addDocument(client, options, base: base.id, title: "d", content: "delta text", metadata: run("r1"))
      func listed(_ filter: Platform_Knowledge_V1_SearchFilter, pageSize: Int32 = 0) async throws -> Platform_Knowledge_V1_ListDocumentsResponse {
        try await client.listDocuments(.with { $0.filter = filter; $0.pageSize = pageSize }, options: options)
      }

      let runOne = Platform_Knowledge_V1_SearchFilter.with { $0.tagsAny = ["execution-file"]; $0.metadata = run("r1") }
      let found = try await listed(runOne)
      #expect(Set(found.documents.map(\.id)) == [first.id, second.id] && found.totalSize == 2)
      #expect(Set(try await listed(.with { $0.metadata = run("r1") }).documents.map(\.id)) == [first.id, second.id, untagged.id])
      #expect(try await listed(.with { $0.tagsAny = ["execution-file"]; $0.metadata = run("r2") }).documents.map(\.id) == [other.id])
      #expect(try await listed(.with { $0.contentTypes = ["text/markdown"] }).documents.map(\.id) == [second.id])
      #expect(try await listed(.with { $0.documentIds = [first.id, other.id]; $0.metadata = run("r2") }).documents.map(\.id) == [other.id])
      #expect(try await listed(.with { $0.metadata = run("r3") }).documents.isEmpty)
      // A key must equal as a whole: {"execution_id": "r1"} is not matched by a document whose value differs.
      #expect(try await listed(.with { $0.metadata = .with { $0.fields["execution_id"] = .init(listValue: .with { $0.values = [.init(stringValue: "r1")] }) } }).documents.isEmpty)
      // Another user's documents never match.
      let stranger = try await service.options(for: UUID())
      #expect(try await client.listDocuments(.with { $0.filter = runOne }, options: stranger).documents.isEmpty)

      // Pages keep the filter, and a page token is bound to it.
      let page = try await listed(runOne, pageSize: 1)
      #expect(page.documents.count == 1 && !page.nextPageToken.isEmpty && page.totalSize == 2)
      let next = try await client.listDocuments(.with { $0.filter = runOne; $0.pageSize = 1; $0.pageToken = page.nextPageToken }, options: options)
      #expect(Set((page.documents + next.documents).map(\.id)) == [first.id, second.id] && next.nextPageToken.isEmpty)
      let otherFilter = await expectStatus(.invalidArgument) {
        _ = try await client.listDocuments(
          .with { $0.filter = .with { $0.tagsAny = ["execution-file"]; $0.metadata = run("r2") }; $0.pageSize = 1; $0.pageToken = page.nextPageToken },
          options: options)
      }
      #expect(otherFilter.contains("page_token"), "\(otherFilter)")

      // Bad filters are INVALID_ARGUMENT naming the field.
      let badID = await expectStatus(.invalidArgument) { _ = try await listed(.with { $0.documentIds = ["not-a-uuid"] }) }
      #expect(badID.contains("filter.document_ids"), "\(badID)")
      let tooDeep = await expectStatus(.invalidArgument) {
        var deep = Google_Protobuf_Value(stringValue: "x")
        for _ in 0..<(Document.maxMetadataDepth + 1) { deep = .init(listValue: .with { $0.values = [deep] }) }
        _ = try await listed(.with { $0.metadata = .with { $0.fields["k"] = deep } })
      }
      #expect(tooDeep.contains("filter.metadata"), "\(tooDeep)")
    }
  }

  @Test("Create, watch, get, list, chunk, update, reindex and delete; owner-scoped; bad input changes nothing")
  func documents() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options)
      let markdown = """
        # Install

        Run the installer and answer its questions. The installer copies the base system.

        ## Network

        Configure the network interface with a static address or with DHCP before the mirror is chosen.

        # Usage

        Log in and start working. Every user has a home directory.
        """
      let request = Platform_Knowledge_V1_CreateDocumentRequest.with {
        $0.knowledgeBaseID = base.id
        $0.title = "Guide"
        $0.content = markdown
        $0.contentType = "text/markdown"
        $0.tags = ["manual", "debian", "manual"]
        $0.metadata = .with { $0.fields["lang"] = .init(stringValue: "en") }
        $0.requestID = UUID().uuidString
      }
      let created = try await client.createDocument(request, options: options)
      #expect(created.status == .pending && created.version == 1 && created.knowledgeBaseID == base.id && created.tags == ["manual", "debian"])
      #expect(created.contentHash == Array(markdown.utf8).sha256Hex && created.fileSize == Int64(markdown.utf8.count))
      #expect(try await client.createDocument(request, options: options).id == created.id, "a retried create")

      // WatchDocument streams the progress and ends when it is ready.
      let statuses = try await client.watchDocument(.with { $0.id = created.id }, options: options) { stream in
        var statuses: [Platform_Knowledge_V1_DocumentStatus] = []
        for try await update in stream { statuses.append(update.status) }
        return statuses
      }
      #expect(statuses.last == .ready, "\(statuses)")
      let ready = try await client.getDocument(.with { $0.id = created.id }, options: options)
      #expect(ready.status == .ready && ready.content == markdown && ready.chunkCount > 1 && ready.chunksIndexed == ready.chunkCount && ready.hasIndexTime)
      #expect(try await client.getKnowledgeBase(.with { $0.id = base.id }, options: options).chunkCount == Int64(ready.chunkCount))

      // Chunks keep seed 004's metadata: heading path, offsets, token count.
      let chunks = try await client.listChunks(.with { $0.documentID = created.id; $0.includeEmbeddings = true }, options: options)
      #expect(chunks.chunks.count == Int(ready.chunkCount) && chunks.chunks.map(\.chunkIndex) == Array(0..<Int32(chunks.chunks.count)))
      let network = try #require(chunks.chunks.first { $0.content.contains("DHCP") })
      #expect(network.metadata.fields["heading_path"]?.listValue.values.map(\.stringValue) == ["Install", "Network"])
      #expect(network.metadata.fields["token_count"]?.numberValue ?? 0 > 0 && network.metadata.fields["end_char"] != nil)
      #expect(network.embedding.count == 384)
      let paged = try await client.listChunks(.with { $0.documentID = created.id; $0.pageSize = 1 }, options: options)
      #expect(paged.chunks.count == 1 && paged.chunks[0].embedding.isEmpty && !paged.nextPageToken.isEmpty)
      let second = try await client.listChunks(.with { $0.documentID = created.id; $0.pageSize = 1; $0.pageToken = paged.nextPageToken }, options: options)
      #expect(second.chunks.map(\.chunkIndex) == [1])

      // Lists: BASIC leaves the text out; filters; another user sees nothing.
      let listed = try await client.listDocuments(.with { $0.knowledgeBaseID = base.id }, options: options)
      #expect(listed.documents.map(\.id) == [created.id] && listed.documents[0].content.isEmpty && listed.totalSize == 1)
      #expect(try await client.listDocuments(.with { $0.status = .failed }, options: options).documents.isEmpty)
      #expect(try await client.listDocuments(.with { $0.query = "gui" }, options: options).documents.count == 1)
      let stranger = try await service.options(for: UUID())
      #expect(try await client.listDocuments(.init(), options: stranger).documents.isEmpty)
      await expectStatus(.notFound) { _ = try await client.getDocument(.with { $0.id = created.id }, options: stranger) }
      await expectStatus(.notFound) { _ = try await client.listChunks(.with { $0.documentID = created.id }, options: stranger) }
      await expectStatus(.notFound) {
        _ = try await client.createDocument(.with { $0.knowledgeBaseID = base.id; $0.title = "x"; $0.content = "x" }, options: stranger)
      }
      await expectStatus(.notFound) {
        _ = try await client.search(.with { $0.knowledgeBaseIds = [base.id]; $0.query = "installer" }, options: stranger)
      }

      // Metadata and tags change without re-indexing; text re-indexes (new chunks, same document).
      let retagged = try await client.updateDocument(
        .with {
          $0.document = .with { $0.id = created.id; $0.tags = ["guide"] }
          $0.updateMask = .with { $0.paths = ["tags"] }
          $0.version = ready.version
        }, options: options)
      #expect(retagged.status == .ready && retagged.tags == ["guide"] && retagged.version == ready.version + 1)
      await expectStatus(.failedPrecondition) {
        _ = try await client.updateDocument(
          .with { $0.document = .with { $0.id = created.id; $0.title = "x" }; $0.updateMask = .with { $0.paths = ["title"] }; $0.version = ready.version },
          options: options)
      }
      let rewritten = try await client.updateDocument(
        .with {
          $0.document = .with { $0.id = created.id; $0.content = "A single short paragraph about penguins." }
          $0.updateMask = .with { $0.paths = ["content"] }
          $0.version = retagged.version
        }, options: options)
      #expect(rewritten.status == .pending)
      let reindexed = try await settled(client, created.id, options: options)
      #expect(reindexed.status == .ready && reindexed.chunkCount == 1)
      let search = Platform_Knowledge_V1_SearchRequest.with { $0.knowledgeBaseIds = [base.id]; $0.query = "penguins"; $0.mode = .keyword }
      #expect(try await client.search(search, options: options).results.map(\.documentID) == [created.id])
      #expect(try await client.search(.with { $0 = search; $0.query = "installer" }, options: options).results.isEmpty, "old chunks are gone")

      // ReindexDocument with other chunking.
      let again = try await client.reindexDocument(
        .with { $0.id = created.id; $0.chunking = .with { $0.strategy = .fixedSize; $0.chunkSize = 16; $0.chunkOverlap = 2 } }, options: options)
      #expect(again.status == .pending && again.chunking.strategy == .fixedSize && again.chunking.chunkSize == 16)
      #expect(try await settled(client, created.id, options: options).status == .ready)

      // Bad input: INVALID_ARGUMENT naming the field, and nothing stored.
      let before = try await client.listDocuments(.init(), options: options).totalSize
      let deep = (0..<18).reduce(Google_Protobuf_Value(stringValue: "x")) { inner, _ in
        Google_Protobuf_Value(structValue: .with { $0.fields["a"] = inner })
      }
      for (bad, field) in [
        (Platform_Knowledge_V1_CreateDocumentRequest.with { $0.title = ""; $0.content = "x" }, "title"),
        (.with { $0.title = String(repeating: "t", count: 256); $0.content = "x" }, "title"),
        (.with { $0.title = "t"; $0.content = "x"; $0.contentType = "application/zip" }, "content_type"),
        (.with { $0.title = "t"; $0.content = "x"; $0.contentType = "application/pdf" }, "content_type"),
        (.with { $0.title = "t"; $0.file = Data("%PDF-1.7 but not really".utf8); $0.contentType = "text/plain" }, "content_type"),
        (.with { $0.title = "t"; $0.file = Data("plain words".utf8); $0.contentType = "application/pdf" }, "content_type"),
        (.with { $0.title = "t"; $0.file = Data() }, "file"),
        (.with { $0.title = "t" }, "content"),
        (.with { $0.title = "t"; $0.content = "x"; $0.tags = [String(repeating: "g", count: 65)] }, "tags"),
        (.with { $0.title = "t"; $0.content = "x"; $0.tags = (0..<33).map { "t\($0)" } }, "tags"),
        (.with { $0.title = "t"; $0.content = "x"; $0.metadata = .with { $0.fields["deep"] = deep } }, "metadata"),
        (.with { $0.title = "t"; $0.content = "x"; $0.chunking = .with { $0.chunkSize = 100_000 } }, "chunking.chunk_size"),
        (.with { $0.title = "t"; $0.content = String(repeating: "a", count: 4_000_001) }, "content"),
      ] {
        var request = bad
        request.knowledgeBaseID = base.id
        let message = await expectStatus(.invalidArgument) { _ = try await client.createDocument(request, options: options) }
        #expect(message.contains(field), "\(field): \(message)")
      }
      #expect(try await client.listDocuments(.init(), options: options).totalSize == before)

      // Delete is soft: the document and its chunks leave at once.
      await expectStatus(.failedPrecondition) { _ = try await client.deleteDocument(.with { $0.id = created.id; $0.version = 1 }, options: options) }
      _ = try await client.deleteDocument(.with { $0.id = created.id }, options: options)
      await expectStatus(.notFound) { _ = try await client.getDocument(.with { $0.id = created.id }, options: options) }
      #expect(try await client.search(search, options: options).results.isEmpty)
      let rows = try await service.database.query("SELECT count(*)::int8 FROM document_chunks", logger: TestPostgres.logger)
      for try await count in rows.decode(Int64.self) { #expect(count == 0) }
      let kept = try await service.database.query("SELECT deleted_at IS NOT NULL FROM documents", logger: TestPostgres.logger)
      for try await deleted in kept.decode(Bool.self) { #expect(deleted) }
      #expect(try await client.getKnowledgeBase(.with { $0.id = base.id }, options: options).chunkCount == 0)
    }
  }

  @Test("UploadDocument takes a header and pieces, refuses a wrong order, pieces over 1 MiB and files over KNOWLEDGE_MAX_FILE_MB")
  func streamedUpload() async throws {
    try await PlatformTestService.run(KnowledgeService(), configure: { $0.environment.values["KNOWLEDGE_MAX_FILE_MB"] = "1" }) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options)
      let header = Platform_Knowledge_V1_CreateDocumentRequest.with {
        $0.knowledgeBaseID = base.id
        $0.title = "Streamed"
        $0.fileName = "../../etc/notes.txt"
      }
      let text = String(repeating: "Streaming uploads arrive in pieces. ", count: 3000)
      let bytes = Array(text.utf8)
      let stride = 32 * 1024
      let pieces = Swift.stride(from: 0, to: bytes.count, by: stride).map { Data(bytes[$0..<min($0 + stride, bytes.count)]) }
      let uploaded = try await uploadDocument(client, 
        [Platform_Knowledge_V1_UploadDocumentRequest.with { $0.header = header }] + pieces.map { piece in .with { $0.data = piece } },
        options: options)
      #expect(uploaded.fileName == "notes.txt" && uploaded.fileSize == Int64(bytes.count) && uploaded.contentType == "text/plain")
      let ready = try await settled(client, uploaded.id, options: options)
      #expect(ready.status == .ready)
      #expect(try await client.getDocument(.with { $0.id = uploaded.id }, options: options).content == text)

      await expectStatus(.invalidArgument) {
        _ = try await uploadDocument(client, [.with { $0.data = Data("x".utf8) }, .with { $0.header = header }], options: options)
      }
      await expectStatus(.invalidArgument) {
        _ = try await uploadDocument(client, [.with { $0.header = header }, .with { $0.data = Data(count: (1 << 20) + 1) }], options: options)
      }
      await expectStatus(.resourceExhausted) {
        _ = try await uploadDocument(client, 
          [.with { $0.header = header }] + (0..<3).map { _ in .with { $0.data = Data(repeating: 0x61, count: 512 * 1024) } }, options: options)
      }
      await expectStatus(.invalidArgument) { _ = try await uploadDocument(client, [.with { $0.data = Data("x".utf8) }], options: options) }
      #expect(try await client.listDocuments(.init(), options: options).totalSize == 1)
    }
  }
}
