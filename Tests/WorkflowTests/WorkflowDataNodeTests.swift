import Foundation
import GRPCRuntime
import Knowledge
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing
import TextToSQL

@testable import Workflow

/// knowledge_retrieval and text_to_sql nodes against real knowledge and text-to-SQL services.
struct WorkflowDataNodeTests {
  /// A SQLite database `shop.db` (3 customers) in a directory of its own.
  static func shop() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("workflow-shop-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let create = Process()
    create.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    create.arguments = [
      directory.appendingPathComponent("shop.db").path,
      "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT); INSERT INTO customers VALUES (1, 'Ada', 'France'), (2, 'Bo', 'Chile'), (3, 'Cy', 'France');",
    ]
    try create.run()
    create.waitUntilExit()
    return directory
  }

  @Test func knowledgeAndSQLNodesReadAsTheCaller() async throws {
    let shop = try Self.shop()
    defer { try? FileManager.default.removeItem(at: shop) }
    try await PlatformTestService.run(KnowledgeService()) { knowledge in
      try await PlatformTestService.run(
        TextToSQLService(),
        configure: {
          $0.environment = Environment([
            "SQL_ENCRYPTION_KEY": "test:" + Data(repeating: 9, count: 32).base64EncodedString(), "SQL_SQLITE_DIR": shop.path,
          ])
        }
      ) { textToSQL in
        try await PlatformTestService.run(
          WorkflowService(),
          configure: {
            $0.peers[.knowledge] = "127.0.0.1:\(knowledge.port)"
            $0.peers[.textToSQL] = "127.0.0.1:\(textToSQL.port)"
          }
        ) { workflowService in
          var options = try await knowledge.options(for: UUID())
          options.timeout = .seconds(60)
          let knowledgeClient = Platform_Knowledge_V1_KnowledgeServiceClient(channel: knowledge.client)
          let base = try await knowledgeClient.createKnowledgeBase(.with { $0.knowledgeBase = .with { $0.name = "facts" } }, options: options)
          let document = try await knowledgeClient.createDocument(
            .with {
              $0.knowledgeBaseID = base.id
              $0.title = "Atlantis"
              $0.content = "Atlantis is an island. The capital of Atlantis is Poseidonia."
              $0.contentType = "text/plain"
            }, options: options)
          let deadline = Date().addingTimeInterval(30)
          while try await knowledgeClient.getDocument(.with { $0.id = document.id }, options: options).status != .ready, Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
          }
          let databases = Platform_Texttosql_V1_DatabaseServiceClient(channel: textToSQL.client)
          let database = try await databases.registerDatabase(
            .with { $0.database = .with { $0.name = "shop"; $0.databaseType = .sqlite; $0.connection = .with { $0.databaseName = "shop.db" } } },
            options: options)
          _ = try await databases.syncSchema(.with { $0.databaseID = database.id }, options: options)

          let client = WorkflowClient(channel: workflowService.client)
          let created = try await client.createWorkflow(
            .with {
              $0.workflow = workflow(
                "Data",
                nodes: [
                  try node("start", "start"),
                  try node("search", "knowledge_retrieval", #"{"knowledge_base_ids": ["\#(base.id)"], "query": "{{input.question}}", "top_k": 3, "mode": "keyword"}"#),
                  try node("count", "text_to_sql", #"{"database_id": "\#(database.id)", "sql": "SELECT count(*) AS n FROM customers WHERE country = 'France'"}"#),
                  try node("end", "end", #"{"output": {"found": "{{nodes.search.output.count}}", "top": "{{nodes.search.output.results[0].content}}", "rows": "{{nodes.count.output.rows}}"}}"#),
                ], edges: [edge("start", "search"), edge("start", "count"), edge("search", "end"), edge("count", "end")])
            }, options: options)
          let run = try await client.runWorkflow(
            .with {
              $0.workflowID = created.id
              $0.inputs = try inputs(#"{"question": "capital of Atlantis"}"#)
              $0.sync = true
            }, options: options)
          #expect(run.status == .completed, "\(run.error)")
          let output = JSONValue(run.output).objectValue ?? [:]
          #expect((output["found"]?.intValue ?? 0) >= 1)
          #expect(output["top"]?.stringValue?.contains("Poseidonia") == true)
          #expect(output["rows"] == .array([.array([.number(2)])]))

          // Another user's knowledge base is not theirs to search: the node fails, NOT_FOUND.
          var stranger = try await knowledge.options(for: UUID())
          stranger.timeout = .seconds(60)
          let theirs = try await client.createWorkflow(
            .with {
              $0.workflow = workflow(
                "Not mine",
                nodes: [
                  try node("start", "start"), try node("search", "knowledge_retrieval", #"{"knowledge_base_ids": ["\#(base.id)"], "query": "Atlantis"}"#),
                  try node("end", "end"),
                ], edges: [edge("start", "search"), edge("search", "end")])
            }, options: stranger)
          let refused = try await client.runWorkflow(.with { $0.workflowID = theirs.id; $0.sync = true }, options: stranger)
          #expect(refused.status == .failed)
          #expect(refused.nodeExecutions.first { $0.nodeID == "search" }?.error.code == "not_found")
        }
      }
    }
  }
}
