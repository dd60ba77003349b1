import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing
@testable import Knowledge

typealias KnowledgeClient = Platform_Knowledge_V1_KnowledgeServiceClient

@Suite("Knowledge: knowledge bases")
struct KnowledgeBaseTests {
  @Test("Create, get, list, update and delete, owner-scoped, with defaults, limits, request ids and versions")
  func lifecycle() async throws {
    try await PlatformTestService.run(KnowledgeService()) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let request = Platform_Knowledge_V1_CreateKnowledgeBaseRequest.with {
        $0.knowledgeBase = .with { $0.name = "Manuals"; $0.description_p = "Debian manual pages" }
        $0.requestID = UUID().uuidString
      }
      let created = try await client.createKnowledgeBase(request, options: options)
      // Seed 004's defaults, the offline model, HNSW and cosine.
      #expect(created.chunking.chunkSize == 512 && created.chunking.chunkOverlap == 50 && created.chunking.strategy == .paragraph)
      #expect(created.embeddingModel == "offline-hash-384" && created.embeddingDimension == 384)
      #expect(created.indexType == "hnsw" && created.metric == "cosine" && created.status == .active && created.version == 1)
      #expect(try await client.createKnowledgeBase(request, options: options).id == created.id, "a retried create")
      await expectStatus(.alreadyExists) {
        _ = try await client.createKnowledgeBase(.with { $0.knowledgeBase = .with { $0.name = "MANUALS" } }, options: options)
      }
      for (base, field) in [
        (Platform_Knowledge_V1_KnowledgeBase.with { $0.name = "" }, "knowledge_base.name"),
        (.with { $0.name = String(repeating: "n", count: 256) }, "knowledge_base.name"),
        (.with { $0.name = "d"; $0.description_p = String(repeating: "é", count: 4097) }, "knowledge_base.description"),
        (.with { $0.name = "d"; $0.description_p = String(repeating: "👩‍👩‍👧‍👦", count: 1000) }, "knowledge_base.description"),
        (.with { $0.name = "m"; $0.embeddingModel = "text-embedding-3-large" }, "knowledge_base.embedding_model"),
        (.with { $0.name = "c"; $0.chunking = .with { $0.chunkSize = 8 } }, "knowledge_base.chunking.chunk_size"),
        (.with { $0.name = "c"; $0.chunking = .with { $0.chunkSize = 100; $0.chunkOverlap = 60 } }, "knowledge_base.chunking.chunk_overlap"),
      ] {
        let message = await expectStatus(.invalidArgument) {
          _ = try await client.createKnowledgeBase(.with { $0.knowledgeBase = base }, options: options)
        }
        #expect(message.contains(field), "\(message)")
      }
      let small = try await client.createKnowledgeBase(
        .with { $0.knowledgeBase = .with { $0.name = "notes"; $0.chunking = .with { $0.chunkSize = 40; $0.strategy = .sentence } } },
        options: options)
      #expect(small.chunking.chunkSize == 40 && small.chunking.chunkOverlap == 19 && small.chunking.strategy == .sentence)

      // Owner scoping.
      let stranger = try await service.options(for: UUID())
      await expectStatus(.notFound) { _ = try await client.getKnowledgeBase(.with { $0.id = created.id }, options: stranger) }
      #expect(try await client.listKnowledgeBases(.init(), options: stranger).knowledgeBases.isEmpty)
      let listed = try await client.listKnowledgeBases(.with { $0.pageSize = 1 }, options: options)
      #expect(listed.knowledgeBases.map(\.name) == ["Manuals"] && listed.totalSize == 2 && !listed.nextPageToken.isEmpty)
      let next = try await client.listKnowledgeBases(.with { $0.pageSize = 1; $0.pageToken = listed.nextPageToken }, options: options)
      #expect(next.knowledgeBases.map(\.name) == ["notes"] && next.nextPageToken.isEmpty)
      await expectStatus(.invalidArgument) {
        _ = try await client.listKnowledgeBases(.with { $0.query = "x"; $0.pageToken = listed.nextPageToken }, options: options)
      }
      #expect(try await client.listKnowledgeBases(.with { $0.query = "MAN" }, options: options).knowledgeBases.map(\.name) == ["Manuals"])

      // Updates: the mask and the version; archived ones leave the default listing.
      let archived = try await client.updateKnowledgeBase(
        .with {
          $0.knowledgeBase = .with { $0.id = created.id; $0.status = .archived; $0.description_p = "man pages" }
          $0.updateMask = .with { $0.paths = ["status", "description"] }
          $0.version = 1
        }, options: options)
      #expect(archived.status == .archived && archived.description_p == "man pages" && archived.version == 2)
      #expect(try await client.listKnowledgeBases(.init(), options: options).knowledgeBases.map(\.name) == ["notes"])
      #expect(try await client.listKnowledgeBases(.with { $0.includeArchived = true }, options: options).knowledgeBases.count == 2)
      await expectStatus(.failedPrecondition) {
        _ = try await client.updateKnowledgeBase(
          .with { $0.knowledgeBase = .with { $0.id = created.id; $0.name = "x" }; $0.updateMask = .with { $0.paths = ["name"] }; $0.version = 1 },
          options: options)
      }
      await expectStatus(.invalidArgument) {
        _ = try await client.updateKnowledgeBase(
          .with { $0.knowledgeBase = .with { $0.id = created.id }; $0.updateMask = .with { $0.paths = ["chunk_count"] }; $0.version = 2 },
          options: options)
      }
      await expectStatus(.failedPrecondition) { _ = try await client.deleteKnowledgeBase(.with { $0.id = created.id; $0.version = 1 }, options: options) }
      _ = try await client.deleteKnowledgeBase(.with { $0.id = created.id; $0.version = 2 }, options: options)
      await expectStatus(.notFound) { _ = try await client.getKnowledgeBase(.with { $0.id = created.id }, options: options) }
      // A viewer reads but does not write.
      let viewer = try await service.options(for: UUID(), roles: [.viewer])
      await expectStatus(.permissionDenied) {
        _ = try await client.createKnowledgeBase(.with { $0.knowledgeBase = .with { $0.name = "v" } }, options: viewer)
      }
      let noBases = await expectStatus(.invalidArgument) { _ = try await client.search(.with { $0.query = "x" }, options: options) }
      #expect(noBases.contains("knowledge_base_ids"))
      // The language is a text-search configuration of the server.
      let german = try await client.createKnowledgeBase(.with { $0.knowledgeBase = .with { $0.name = "de"; $0.language = "german" } }, options: options)
      #expect(german.language == "german")
      #expect(small.language == "english")
      let language = await expectStatus(.invalidArgument) {
        _ = try await client.createKnowledgeBase(.with { $0.knowledgeBase = .with { $0.name = "xx"; $0.language = "klingon'; --" } }, options: options)
      }
      #expect(language.contains("knowledge_base.language"))
    }
  }
}
