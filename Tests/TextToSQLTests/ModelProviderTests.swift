import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing
@testable import TextToSQL

/// A real HTTP server speaking the chat-completions API (Tests/TextToSQLTests/fake_chat_completions.py).
struct FakeChatServer {
  let server: ScriptServer
  var port: Int { self.server.port }

  init() throws {
    self.server = try ScriptServer(
      script: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("fake_chat_completions.py"))
  }

  func requests() async throws -> [[String: Any]] {
    try await self.server.json("/requests") as? [[String: Any]] ?? []
  }

  func stop() { self.server.stop() }
}

@Suite("Text-to-SQL: an OpenAI-compatible provider")
struct ModelProviderTests {
  @Test("Prompts carry the schema and past questions; a rejected statement is retried with the error; provider failures are UNAVAILABLE")
  func provider() async throws {
    let server = try FakeChatServer()
    defer { server.stop() }
    #expect(server.port > 0)
    try await TargetServer.with(setup: smallSchema) { target in
      let settings = [
        "LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://127.0.0.1:\(server.port)/v1", "LLM_MODEL": "test-model", "LLM_API_KEY": "sk-test",
      ]
      try await withTextToSQL(settings) { _, databases, queries, options in
        let id = try await registerAndSync(target, databases, options)
        // Descriptions the model writes, for tables without a comment; the schema says so.
        _ = try await databases.syncSchema(.with { $0.databaseID = id; $0.enhanceDescriptions = true }, options: options)
        let tables = try await databases.listTables(.with { $0.databaseID = id }, options: options).tables
        #expect(tables.map(\.description_p) == ["Company departments", "Rows of public.employees, described by the model."])
        #expect(try await databases.listSchemas(.with { $0.databaseID = id }, options: options).schemas.first?.isEnhanced == true)
        let counted = try await queries.askQuestion(.with { $0.databaseID = id; $0.question = "count departments please" }, options: options)
        #expect(counted.result.rows.first?.values.first?.numberValue == 3, "\(counted)")
        #expect(counted.query.usage.promptTokens == 120 && counted.query.explanation == "Counts the departments.")
        // A second, similar question gets the first as an example.
        _ = try await queries.askQuestion(.with { $0.databaseID = id; $0.question = "count departments again" }, options: options)
        let retried = try await queries.askQuestion(.with { $0.databaseID = id; $0.question = "retry: how many employees" }, options: options)
        #expect(retried.query.sql == "SELECT count(*) FROM employees" && retried.result.rows.first?.values.first?.numberValue == 30)
        let fenced = try await queries.generateSql(.with { $0.databaseID = id; $0.question = "fenced department names" }, options: options)
        #expect(fenced.sql == "SELECT name FROM departments ORDER BY name" && fenced.validation.isSafe)
        await expectStatus(.unavailable, containing: "HTTP 500") {
          _ = try await queries.generateSql(.with { $0.databaseID = id; $0.question = "broken" }, options: options)
        }
        let requests = try await server.requests()
        let asking = requests.filter { !((($0["messages"] as? [[String: Any]])?.first?["content"] as? String ?? "").hasPrefix("You describe")) }
        let system = (asking.first?["messages"] as? [[String: Any]])?.first?["content"] as? String ?? ""
        #expect(system.contains("TABLE public.employees") && system.contains("FOREIGN KEY (department_id) REFERENCES public.departments(id)"))
        #expect(system.contains("'Engineering'"), "sample values of short text columns reach the prompt")
        #expect(requests.allSatisfy { ($0["authorization"] as? String) == "Bearer sk-test" && ($0["model"] as? String) == "test-model" })
        let second = (asking[1]["messages"] as? [[String: Any]]) ?? []
        #expect(second.contains { ($0["content"] as? String) == "count departments please" }, "a past question is an example")
        let retries = requests.filter { (($0["messages"] as? [[String: Any]]) ?? []).contains { ($0["content"] as? String ?? "").contains("was rejected") } }
        #expect(retries.count == 1 && String(describing: retries[0]).contains("pg_sleep"))
      }
    }
  }
}
