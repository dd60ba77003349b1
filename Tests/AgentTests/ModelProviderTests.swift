import Foundation
@testable import PlatformCore
import PlatformTesting
import Testing

/// The OpenAI-compatible provider against a real local HTTP server speaking the API
/// (model_server.py): streamed answers and tool calls, and each way a provider fails.
@Suite("Chat completions provider")
struct ModelProviderTests {
  static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("model_server.py")

  func withModelServer(attempts: Int = 3, _ body: (ChatCompletionsClient, ScriptServer) async throws -> Void) async throws {
    let server = try ScriptServer(script: Self.script)
    defer { server.stop() }
    let client = ChatCompletionsClient(
      provider: .init(baseURL: URL(string: "http://127.0.0.1:\(server.port)/v1")!, apiKey: "sk-test", model: "fake-model", timeout: .seconds(10)),
      attempts: attempts)
    try await body(client, server)
  }

  func requests(_ server: ScriptServer) async throws -> [[String: Any]] {
    (try await server.json("/_requests") as? [String: Any])?["chat"] as? [[String: Any]] ?? []
  }

  static let tools = [
    ChatCompletionsClient.Tool(
      name: "search_knowledge", description: "Searches",
      parameters: .object(["type": .string("object"), "properties": .object(["query": .object(["type": .string("string")])])])),
    ChatCompletionsClient.Tool(
      name: "query_database", description: "Asks",
      parameters: .object(["type": .string("object"), "properties": .object(["question": .object(["type": .string("string")])])])),
  ]

  /// Collects what `onContent` is handed.
  actor Pieces {
    var all: [String] = []
    func add(_ piece: String) { self.all.append(piece) }
  }

  @Test("A streamed answer arrives piece by piece; streamed tool calls are put together from their fragments")
  func streamed() async throws {
    try await withModelServer { client, server in
      _ = try await server.json(
        "/_script", method: "POST",
        body: [
          ["tool_calls": [["name": "search_knowledge", "arguments": ["query": "capital of Atlantis"]], ["name": "query_database", "arguments": ["question": "How many \"customers\"?"]]]],
          ["content": "Poseidonia is the capital; there are 50 customers."],
        ])
      let pieces = Pieces()
      let first = try await client.stream(
        [.init(role: "system", content: "Be brief."), .init(role: "user", content: "Tell me")], tools: Self.tools,
        sampling: .init(model: "fake-model", temperature: 0.5, topP: 0.9, maxTokens: 300), onContent: { await pieces.add($0) })
      #expect(first.toolCalls.map(\.name) == ["search_knowledge", "query_database"] && first.finishReason == "tool_calls")
      let arguments = first.toolCalls.map { try? JSONValue(jsonText: $0.arguments) }
      #expect(arguments == [.object(["query": .string("capital of Atlantis")]), .object(["question": .string("How many \"customers\"?")])])
      #expect(first.toolCalls.allSatisfy { $0.id.hasPrefix("call_") } && first.promptTokens > 0 && first.completionTokens > 0)

      let second = try await client.stream(
        [
          .init(role: "user", content: "Tell me"), .init(role: "assistant", content: "", toolCalls: first.toolCalls),
          .init(role: "tool", content: "Poseidonia", toolCallID: first.toolCalls[0].id),
        ], tools: Self.tools, sampling: .init(), onContent: { await pieces.add($0) })
      #expect(second.content == "Poseidonia is the capital; there are 50 customers." && second.toolCalls.isEmpty && second.finishReason == "stop")
      let streamed = await pieces.all
      #expect(streamed.count > 5 && streamed.joined() == second.content, "\(streamed)")

      let sent = try await self.requests(server)
      #expect(sent.count == 2)
      let body = sent.first?["body"] as? [String: Any] ?? [:]
      #expect(body["stream"] as? Bool == true && body["model"] as? String == "fake-model" && body["temperature"] as? Double == 0.5)
      #expect(body["top_p"] as? Double == 0.9 && body["max_tokens"] as? Int == 300)
      #expect(((body["tools"] as? [[String: Any]])?.compactMap { ($0["function"] as? [String: Any])?["name"] as? String }) == ["search_knowledge", "query_database"])
      #expect((sent.first?["headers"] as? [String: String])?["authorization"] == "Bearer sk-test")
      let replayed = (sent.last?["body"] as? [String: Any])?["messages"] as? [[String: Any]] ?? []
      #expect(replayed.last?["role"] as? String == "tool" && replayed.last?["tool_call_id"] as? String == first.toolCalls[0].id)
      #expect(((replayed[1]["tool_calls"] as? [[String: Any]])?.first?["function"] as? [String: Any])?["name"] as? String == "search_knowledge")
    }
  }

  @Test("A 429 is tried again after its Retry-After; a 500 with backoff; a provider that keeps failing is unavailable (transient)")
  func retried() async throws {
    try await withModelServer { client, server in
      _ = try await server.json("/_script", method: "POST", body: [["status": 429, "retry_after": 1], ["status": 500], ["content": "fine"]])
      let began = ContinuousClock.now
      let answer = try await client.stream([.init(role: "user", content: "hi")], tools: [], sampling: .init(), onContent: { _ in })
      #expect(answer.content == "fine" && ContinuousClock.now - began >= .seconds(1))
      #expect(try await self.requests(server).count == 3)

      _ = try await server.json("/_reset", method: "POST", body: [:])
      _ = try await server.json("/_script", method: "POST", body: [["status": 500], ["status": 503], ["status": 502], ["content": "too late"]])
      do {
        _ = try await client.stream([.init(role: "user", content: "hi")], tools: [], sampling: .init(), onContent: { _ in })
        Issue.record("Three 5xx answers must fail")
      } catch let error as ChatCompletionsClient.Failure {
        #expect(error.isTransient && error.description.contains("HTTP 502"), "\(error)")
      }
      #expect(try await self.requests(server).count == 3)

      // A Retry-After longer than the client waits is not waited for.
      _ = try await server.json("/_reset", method: "POST", body: [:])
      _ = try await server.json("/_script", method: "POST", body: [["status": 429, "retry_after": 3600]])
      await #expect(throws: ChatCompletionsClient.Failure.self) {
        _ = try await client.stream([.init(role: "user", content: "hi")], tools: [], sampling: .init(), onContent: { _ in })
      }
      #expect(try await self.requests(server).count == 1)
    }
  }

  @Test("A refused request (4xx) is not tried again and is not transient")
  func rejected() async throws {
    try await withModelServer { client, server in
      _ = try await server.json("/_script", method: "POST", body: [["status": 400], ["content": "never"]])
      do {
        _ = try await client.stream([.init(role: "user", content: "hi")], tools: [], sampling: .init(), onContent: { _ in })
        Issue.record("A 400 must fail")
      } catch let error as ChatCompletionsClient.Failure {
        #expect(!error.isTransient && error.description.contains("HTTP 400") && error.description.contains("The server had an error"), "\(error)")
      }
      #expect(try await self.requests(server).count == 1)
    }
  }

  @Test("An event that is not JSON is malformed; a stream cut off before [DONE] is unavailable, its first pieces handed on")
  func broken() async throws {
    try await withModelServer { client, server in
      _ = try await server.json("/_script", method: "POST", body: [["malformed": true], ["drop": true]])
      do {
        _ = try await client.stream([.init(role: "user", content: "hi")], tools: [], sampling: .init(), onContent: { _ in })
        Issue.record("Broken JSON must fail")
      } catch let error as ChatCompletionsClient.Failure {
        #expect(!error.isTransient && error.description.contains("not JSON"), "\(error)")
      }
      let pieces = Pieces()
      do {
        _ = try await client.stream([.init(role: "user", content: "hi")], tools: [], sampling: .init(), onContent: { await pieces.add($0) })
        Issue.record("A dropped stream must fail")
      } catch let error as ChatCompletionsClient.Failure {
        #expect(error.isTransient && error.description.contains("cut off"), "\(error)")
      }
      #expect(await pieces.all.joined() == "Partial answer")
      // Neither is tried again: the stream had begun.
      #expect(try await self.requests(server).count == 2)
    }
  }

  @Test("A provider that cannot be reached is unavailable; a whole (unstreamed) completion still works")
  func unreachableAndWhole() async throws {
    let nobody = ChatCompletionsClient(
      provider: .init(baseURL: URL(string: "http://127.0.0.1:9/v1")!, apiKey: "", model: "m", timeout: .seconds(2)), attempts: 2)
    do {
      _ = try await nobody.complete([.init(role: "user", content: "hi")], json: false)
      Issue.record("Nobody listens on port 9")
    } catch {
      #expect(error.isTransient, "\(error)")
    }
    try await withModelServer { client, server in
      _ = try await server.json("/_script", method: "POST", body: [["content": "{\"sql\": \"SELECT 1\"}"]])
      let whole = try await client.complete([.init(role: "user", content: "hi")], json: true)
      #expect(whole.content == "{\"sql\": \"SELECT 1\"}" && whole.completionTokens > 0)
      let body = try await self.requests(server).first?["body"] as? [String: Any] ?? [:]
      #expect(body["stream"] as? Bool == false && (body["response_format"] as? [String: Any])?["type"] as? String == "json_object")
    }
  }

  @Test("Server-sent events: data lines joined, comments and other fields skipped, CRLF and split lines handled, long lines refused")
  func serverSentEvents() throws {
    var events = ServerSentEvents(maxEventBytes: 64)
    var seen: [String] = []
    for part in [": comment\r\nevent: x\r\nda", "ta: one\r\n\r", "\ndata:two\ndata: three\n\nid: 4\n\n", "data: [DONE]\n\n"] {
      seen += try events.feed(Array(part.utf8))
    }
    #expect(seen == ["one", "two\nthree", "[DONE]"])
    var small = ServerSentEvents(maxEventBytes: 8)
    #expect(throws: ServerSentEvents.TooLong.self) { _ = try small.feed(Array("data: 0123456789".utf8)) }
  }
}
