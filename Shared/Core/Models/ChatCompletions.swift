public import Foundation

/// Which model provider a service uses (DESIGN.md "Models"): the offline deterministic default,
/// or an OpenAI-compatible HTTP API, chosen by `LLM_PROVIDER` (`offline`, `openai`) with
/// `LLM_BASE_URL` (e.g. `https://api.openai.com/v1`), `LLM_API_KEY`, `LLM_MODEL` and
/// `LLM_TIMEOUT_SECONDS` (default 60).
public enum ModelProvider: Sendable, Equatable {
  case offline
  case openAI(OpenAICompatible)

  public struct OpenAICompatible: Sendable, Equatable {
    public var baseURL: URL
    public var apiKey: String
    public var model: String
    public var timeout: Duration

    public init(baseURL: URL, apiKey: String, model: String, timeout: Duration) {
      self.baseURL = baseURL
      self.apiKey = apiKey
      self.model = model
      self.timeout = timeout
    }
  }

  /// - Throws: `Environment.InvalidValue` naming the variable.
  public init(environment: Environment) throws {
    let values = environment.values
    switch (values["LLM_PROVIDER"] ?? "offline").lowercased() {
    case "", "offline":
      self = .offline
    case "openai":
      guard let text = values["LLM_BASE_URL"], let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
        throw Environment.InvalidValue(variable: "LLM_BASE_URL", value: values["LLM_BASE_URL"] ?? "", expected: "an http(s) URL such as https://api.openai.com/v1")
      }
      guard let model = values["LLM_MODEL"], !model.isEmpty else {
        throw Environment.InvalidValue(variable: "LLM_MODEL", value: "", expected: "a model name")
      }
      let seconds = Int(values["LLM_TIMEOUT_SECONDS"] ?? "60") ?? 0
      guard (1...600).contains(seconds) else {
        throw Environment.InvalidValue(variable: "LLM_TIMEOUT_SECONDS", value: values["LLM_TIMEOUT_SECONDS"] ?? "", expected: "1 to 600")
      }
      self = .openAI(OpenAICompatible(baseURL: url, apiKey: values["LLM_API_KEY"] ?? "", model: model, timeout: .seconds(seconds)))
    case let other:
      throw Environment.InvalidValue(variable: "LLM_PROVIDER", value: other, expected: "offline or openai")
    }
  }
}

/// The chat-completions API of an OpenAI-compatible provider (`POST {base}/chat/completions`):
/// whole answers, or streamed ones (server-sent events) with tool calls. A 429 is retried after
/// its `Retry-After` (at most `maxRetryWait`), a 5xx or a refused connection with backoff, up to
/// `attempts` tries; a stream that has begun is never retried (its tokens were handed on).
/// The provider is the operator's choice, so its host is allowed whatever its address (a model
/// server on the same machine is common); responses are bounded like every egress response.
public struct ChatCompletionsClient: Sendable {
  public let provider: ModelProvider.OpenAICompatible
  private let http: EgressHTTPClient
  let attempts: Int
  let maxRetryWait: Duration

  public init(provider: ModelProvider.OpenAICompatible, attempts: Int = 3, maxRetryWait: Duration = .seconds(20)) {
    self.provider = provider
    self.attempts = max(1, attempts)
    self.maxRetryWait = maxRetryWait
    self.http = EgressHTTPClient(policy: .operatorChosen(provider.baseURL, variable: "LLM_BASE_URL"), maxResponseBytes: 4 << 20)
  }

  public struct Message: Sendable, Equatable {
    public var role: String
    public var content: String
    /// An assistant message's tool calls.
    public var toolCalls: [ToolCall]
    /// A `tool` message answers this call.
    public var toolCallID: String?

    public init(role: String, content: String, toolCalls: [ToolCall] = [], toolCallID: String? = nil) {
      self.role = role
      self.content = content
      self.toolCalls = toolCalls
      self.toolCallID = toolCallID
    }

    var json: JSONValue {
      var object: [String: JSONValue] = ["role": .string(self.role), "content": .string(self.content)]
      if !self.toolCalls.isEmpty {
        object["tool_calls"] = .array(self.toolCalls.map {
          .object(["id": .string($0.id), "type": .string("function"), "function": .object(["name": .string($0.name), "arguments": .string($0.arguments)])])
        })
      }
      if let id = self.toolCallID { object["tool_call_id"] = .string(id) }
      return .object(object)
    }
  }

  /// A function the model may call: its name, what it does, its parameters as JSON Schema.
  public struct Tool: Sendable, Equatable {
    public var name: String
    public var description: String
    public var parameters: JSONValue

    public init(name: String, description: String, parameters: JSONValue) {
      self.name = name
      self.description = description
      self.parameters = parameters
    }
  }

  /// A call the model asked for; `arguments` is JSON text as the model wrote it (unchecked).
  public struct ToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
      self.id = id
      self.name = name
      self.arguments = arguments
    }
  }

  /// How to sample: the model's name and its settings.
  public struct Sampling: Sendable, Equatable {
    public var model: String?
    public var temperature: Double
    public var topP: Double?
    public var maxTokens: Int

    public init(model: String? = nil, temperature: Double = 0, topP: Double? = nil, maxTokens: Int = 1024) {
      self.model = model
      self.temperature = temperature
      self.topP = topP
      self.maxTokens = maxTokens
    }
  }

  public struct Completion: Sendable, Equatable {
    public var content: String
    public var toolCalls: [ToolCall] = []
    public var promptTokens: Int
    public var completionTokens: Int
    public var finishReason: String?
  }

  public enum Failure: Error, Equatable, CustomStringConvertible {
    /// The provider could not be reached, kept failing (5xx, 429) or cut the stream off: worth
    /// trying again later.
    case unavailable(String)
    /// It refused the request (4xx other than 408 and 429): trying again changes nothing.
    case rejected(String)
    /// It answered with something that is not a chat completion.
    case malformed(String)

    public var description: String {
      switch self {
      case .unavailable(let why), .rejected(let why): why
      case .malformed(let why): "The provider's answer is not a chat completion: \(why)"
      }
    }

    public var isTransient: Bool { if case .unavailable = self { true } else { false } }
  }

  /// The longest line of a stream, and the most tool calls and argument bytes one answer takes.
  static let maxEventBytes = 1 << 20
  static let maxToolCalls = 16

  /// One completion of `messages` at temperature 0; with `json`, asks for a JSON object.
  public func complete(_ messages: [Message], json: Bool, maxTokens: Int = 1024) async throws(Failure) -> Completion {
    var body = self.body(messages, tools: [], sampling: Sampling(maxTokens: maxTokens), stream: false)
    if json { body["response_format"] = .object(["type": .string("json_object")]) }
    let response = try await self.post(body)
    var data: [UInt8] = []
    do {
      for try await part in response.body { data += part }
    } catch {
      throw .unavailable("The model provider's answer was cut off: \(EgressHTTPClient.failure(error).description)")
    }
    guard let object = try? JSONValue(jsonText: String(decoding: data, as: UTF8.self), maxDepth: 32).objectValue,
      case .array(let choices)? = object["choices"], let message = choices.first?.objectValue?["message"]?.objectValue
    else { throw .malformed("no choices[0].message") }
    let toolCalls: [ToolCall] =
      if case .array(let calls)? = message["tool_calls"] {
        calls.compactMap { call in
          guard let call = call.objectValue, let function = call["function"]?.objectValue, let name = function["name"]?.stringValue else { return nil }
          return ToolCall(id: call["id"]?.stringValue ?? "", name: name, arguments: function["arguments"]?.stringValue ?? "")
        }
      } else { [] }
    guard let content = message["content"]?.stringValue ?? (toolCalls.isEmpty ? nil : "") else { throw .malformed("no choices[0].message.content") }
    let usage = object["usage"]?.objectValue
    return Completion(
      content: content, toolCalls: toolCalls, promptTokens: usage?["prompt_tokens"]?.intValue ?? 0,
      completionTokens: usage?["completion_tokens"]?.intValue ?? 0, finishReason: choices.first?.objectValue?["finish_reason"]?.stringValue)
  }

  /// One completion streamed (server-sent events): `onContent` gets each piece of the answer as
  /// it arrives; tool calls are assembled from their fragments. A stream that ends before
  /// `[DONE]` is `unavailable`; an event that is not JSON is `malformed`.
  public func stream(
    _ messages: [Message], tools: [Tool], sampling: Sampling, onContent: @Sendable (String) async -> Void
  ) async throws(Failure) -> Completion {
    var body = self.body(messages, tools: tools, sampling: sampling, stream: true)
    body["stream_options"] = .object(["include_usage": .bool(true)])
    let response = try await self.post(body)
    var events = ServerSentEvents(maxEventBytes: Self.maxEventBytes)
    var completion = Completion(content: "", promptTokens: 0, completionTokens: 0, finishReason: nil)
    var calls: [Int: ToolCall] = [:]
    var done = false
    do {
      reading: for try await part in response.body {
        for data in try events.feed(part) {
          if data == "[DONE]" {
            done = true
            break reading
          }
          guard let chunk = try? JSONValue(jsonText: data, maxDepth: 32).objectValue else {
            throw Failure.malformed("an event is not JSON: \(data.truncated(toUTF8Bytes: 120))")
          }
          if let error = chunk["error"]?.objectValue {
            throw Failure.unavailable("The model provider failed mid-answer: \(error["message"]?.stringValue ?? "unknown error")")
          }
          if let usage = chunk["usage"]?.objectValue {
            completion.promptTokens = usage["prompt_tokens"]?.intValue ?? completion.promptTokens
            completion.completionTokens = usage["completion_tokens"]?.intValue ?? completion.completionTokens
          }
          guard case .array(let choices)? = chunk["choices"], let choice = choices.first?.objectValue else { continue }
          if let reason = choice["finish_reason"]?.stringValue { completion.finishReason = reason }
          guard let delta = choice["delta"]?.objectValue else { continue }
          if let piece = delta["content"]?.stringValue, !piece.isEmpty {
            completion.content += piece
            await onContent(piece)
          }
          if case .array(let fragments)? = delta["tool_calls"] {
            for fragment in fragments {
              guard let fragment = fragment.objectValue, let index = fragment["index"]?.intValue, (0..<Self.maxToolCalls).contains(index) else {
                throw Failure.malformed("a tool call without a usable index")
              }
              var call = calls[index] ?? ToolCall(id: "", name: "", arguments: "")
              if let id = fragment["id"]?.stringValue { call.id = id }
              let function = fragment["function"]?.objectValue
              if let name = function?["name"]?.stringValue { call.name += name }
              if let arguments = function?["arguments"]?.stringValue { call.arguments += arguments }
              guard call.arguments.utf8.count <= Self.maxEventBytes else { throw Failure.malformed("a tool call's arguments are too long") }
              calls[index] = call
            }
          }
        }
      }
    } catch let failure as Failure {
      throw failure
    } catch let failure as ServerSentEvents.TooLong {
      throw .malformed("an event is longer than \(failure.limit) bytes")
    } catch {
      throw .unavailable("The model provider's stream was cut off: \(EgressHTTPClient.failure(error).description)")
    }
    guard done else { throw .unavailable("The model provider's stream ended before [DONE]") }
    completion.toolCalls = calls.sorted { $0.key < $1.key }.map(\.value)
    if let nameless = completion.toolCalls.first(where: { $0.name.isEmpty }) {
      throw .malformed("tool call \(nameless.id) has no function name")
    }
    return completion
  }

  private func body(_ messages: [Message], tools: [Tool], sampling: Sampling, stream: Bool) -> [String: JSONValue] {
    var body: [String: JSONValue] = [
      "model": .string(sampling.model ?? self.provider.model), "temperature": .number(sampling.temperature),
      "max_tokens": .number(Double(sampling.maxTokens)), "messages": .array(messages.map(\.json)), "stream": .bool(stream),
    ]
    if let topP = sampling.topP { body["top_p"] = .number(topP) }
    if !tools.isEmpty {
      body["tools"] = .array(tools.map {
        .object([
          "type": .string("function"),
          "function": .object(["name": .string($0.name), "description": .string($0.description), "parameters": $0.parameters]),
        ])
      })
    }
    return body
  }

  /// POSTs `body` and returns the response once its status is 2xx, retrying as described above.
  private func post(_ body: [String: JSONValue]) async throws(Failure) -> EgressHTTPClient.StreamedResponse {
    let data = Data(JSONValue.object(body).jsonText.utf8)
    var headers = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
    if !self.provider.apiKey.isEmpty { headers.append(("Authorization", "Bearer \(self.provider.apiKey)")) }
    let url = self.provider.baseURL.appendingPathComponent("chat/completions")
    var attempt = 0
    while true {
      attempt += 1
      let wait: Duration
      let failure: Failure
      do {
        let response = try await self.http.open("POST", url, headers: headers, body: data, timeout: self.provider.timeout)
        if (200..<300).contains(response.status) { return response }
        // The provider's own message, short; never the request (it holds the prompt).
        var detail: [UInt8] = []
        do {
          for try await part in response.body where detail.count < 300 { detail += part }
        } catch {}
        let message = "HTTP \(response.status) from the model provider: \(String(decoding: detail.prefix(300), as: UTF8.self))"
        switch response.status {
        case 429:
          failure = .unavailable(message)
          let seconds = response.header("Retry-After").flatMap { Double($0.trimmingCharacters(in: .whitespaces)) } ?? 1
          wait = .milliseconds(Int64(max(0, seconds) * 1000))
        case 408, 500...:
          failure = .unavailable(message)
          wait = .milliseconds(250 << (attempt - 1))
        default:
          throw Failure.rejected(message)
        }
      } catch let failure as Failure {
        throw failure
      } catch let error as EgressHTTPClient.Failure {
        switch error {
        case .connection, .timedOut:
          failure = .unavailable("The model provider could not be reached: \(error.description)")
          wait = .milliseconds(250 << (attempt - 1))
        default:
          throw .unavailable("The model provider could not be reached: \(error.description)")
        }
      } catch {
        throw .unavailable("\(error)")
      }
      guard attempt < self.attempts, wait <= self.maxRetryWait else { throw failure }
      do {
        try await Task.sleep(for: wait)
      } catch {
        throw .unavailable("cancelled")
      }
    }
  }
}

/// Server-sent events (HTML §9.2) read from a byte stream: each event's `data` lines, joined.
/// Comments and other fields are skipped; a line longer than `maxEventBytes` throws.
struct ServerSentEvents {
  struct TooLong: Error { var limit: Int }

  let maxEventBytes: Int
  private var line: [UInt8] = []
  private var data: [String] = []
  private var afterCarriageReturn = false

  init(maxEventBytes: Int) { self.maxEventBytes = maxEventBytes }

  /// The events `bytes` completes, in order.
  mutating func feed(_ bytes: [UInt8]) throws(TooLong) -> [String] {
    var events: [String] = []
    for byte in bytes {
      if byte == UInt8(ascii: "\n") && self.afterCarriageReturn {
        self.afterCarriageReturn = false
        continue
      }
      self.afterCarriageReturn = byte == UInt8(ascii: "\r")
      guard byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") else {
        self.line.append(byte)
        guard self.line.count <= self.maxEventBytes else { throw TooLong(limit: self.maxEventBytes) }
        continue
      }
      if self.line.isEmpty {
        if !self.data.isEmpty { events.append(self.data.joined(separator: "\n")) }
        self.data = []
      } else if self.line.starts(with: Array("data".utf8)) {
        var value = self.line.dropFirst(4)
        if value.first == UInt8(ascii: ":") {
          value = value.dropFirst()
          if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
          self.data.append(String(decoding: value, as: UTF8.self))
        } else if value.isEmpty {
          self.data.append("")
        }
      }
      self.line = []
    }
    return events
  }
}
