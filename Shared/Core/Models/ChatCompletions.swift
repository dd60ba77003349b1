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

/// The chat-completions API of an OpenAI-compatible provider (`POST {base}/chat/completions`).
/// The provider is the operator's choice, so its host is allowed whatever its address (a model
/// server on the same machine is common); responses are bounded like every egress response.
public struct ChatCompletionsClient: Sendable {
  public let provider: ModelProvider.OpenAICompatible
  private let http: EgressHTTPClient

  public init(provider: ModelProvider.OpenAICompatible) {
    self.provider = provider
    let host = provider.baseURL.host ?? ""
    self.http = EgressHTTPClient(policy: EgressPolicy(rules: [.host(host.lowercased())], variable: "LLM_BASE_URL"), maxResponseBytes: 4 << 20)
  }

  public struct Message: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
      self.role = role
      self.content = content
    }
  }

  public struct Completion: Sendable, Equatable {
    public var content: String
    public var promptTokens: Int
    public var completionTokens: Int
  }

  public enum Failure: Error, Equatable, CustomStringConvertible {
    /// The provider could not be reached or answered with an error status.
    case unavailable(String)
    /// It answered with something that is not a chat completion.
    case malformed(String)

    public var description: String {
      switch self {
      case .unavailable(let why): why
      case .malformed(let why): "The provider's answer is not a chat completion: \(why)"
      }
    }
  }

  /// One completion of `messages` at temperature 0; with `json`, asks for a JSON object.
  public func complete(_ messages: [Message], json: Bool, maxTokens: Int = 1024) async throws(Failure) -> Completion {
    var body: [String: Any] = [
      "model": self.provider.model, "temperature": 0, "max_tokens": maxTokens,
      "messages": messages.map { ["role": $0.role, "content": $0.content] },
    ]
    if json { body["response_format"] = ["type": "json_object"] }
    let data: Data
    do {
      data = try JSONSerialization.data(withJSONObject: body)
    } catch {
      throw .malformed("the request could not be encoded")
    }
    var headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
    if !self.provider.apiKey.isEmpty { headers.append(("Authorization", "Bearer \(self.provider.apiKey)")) }
    let url = self.provider.baseURL.appendingPathComponent("chat/completions")
    let response: EgressHTTPClient.Response
    do {
      response = try await self.http.send("POST", url, headers: headers, body: data, timeout: self.provider.timeout)
    } catch {
      throw .unavailable(error.description)
    }
    guard (200..<300).contains(response.status) else {
      // The provider's own message, short; never the request (it holds the schema).
      let detail = String(decoding: response.body.prefix(300), as: UTF8.self)
      throw .unavailable("HTTP \(response.status) from the model provider: \(detail)")
    }
    guard let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any],
      let choices = object["choices"] as? [[String: Any]], let message = choices.first?["message"] as? [String: Any],
      let content = message["content"] as? String
    else { throw .malformed("no choices[0].message.content") }
    let usage = object["usage"] as? [String: Any]
    return Completion(
      content: content, promptTokens: usage?["prompt_tokens"] as? Int ?? 0, completionTokens: usage?["completion_tokens"] as? Int ?? 0)
  }
}
