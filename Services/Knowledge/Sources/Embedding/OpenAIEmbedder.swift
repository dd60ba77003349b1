public import Foundation
public import PlatformCore

/// An OpenAI-compatible `/v1/embeddings` provider: OpenAI, Azure OpenAI's compatible endpoint,
/// Ollama, vLLM, text-embeddings-inference, and the platform's local MiniLM server
/// (`scripts/embedding_server.py`). Texts go in batches; 429 and 5xx answers and connection
/// failures are retried with exponential backoff (honouring Retry-After); every response is
/// bounded and checked (one vector per text, each of the configured dimension).
public struct OpenAIEmbedder: Embedder {
  public struct Configuration: Sendable, Equatable {
    /// The API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:50070/v1`.
    public var baseURL: URL
    public var apiKey: String
    public var model: String
    public var dimension: Int
    /// Texts per request.
    public var batchSize: Int = 64
    /// Attempts per batch (the first included).
    public var attempts: Int = 5
    public var timeout: Duration = .seconds(60)
    /// The first retry's wait; doubled each time up to 8 s.
    public var initialBackoff: Duration = .milliseconds(250)

    public init(baseURL: URL, apiKey: String, model: String, dimension: Int) {
      self.baseURL = baseURL
      self.apiKey = apiKey
      self.model = model
      self.dimension = dimension
    }
  }

  public let configuration: Configuration
  public var model: EmbeddingModel { EmbeddingModel(name: self.configuration.model, dimension: self.configuration.dimension) }
  private let http: EgressHTTPClient

  /// The provider is the operator's choice, so its host is allowed whatever its address (a model
  /// server on the same machine is common).
  public init(configuration: Configuration) {
    self.configuration = configuration
    self.http = EgressHTTPClient(
      policy: .operatorChosen(configuration.baseURL, variable: "EMBEDDING_BASE_URL"),
      maxResponseBytes: max(1 << 20, configuration.batchSize * configuration.dimension * 32 + 65536))
  }

  public func embed(_ texts: [String]) async throws(EmbeddingError) -> [[Float]] {
    var vectors: [[Float]] = []
    vectors.reserveCapacity(texts.count)
    var start = 0
    while start < texts.count {
      let batch = Array(texts[start..<min(start + self.configuration.batchSize, texts.count)])
      vectors += try await self.embedBatch(batch)
      start += batch.count
    }
    return vectors
  }

  private func embedBatch(_ texts: [String]) async throws(EmbeddingError) -> [[Float]] {
    // An empty input is refused by OpenAI; a space embeds as "nothing" everywhere.
    let inputs = texts.map { $0.isEmpty ? " " : $0 }
    let body: Data
    do {
      body = try JSONSerialization.data(withJSONObject: ["model": self.configuration.model, "input": inputs, "encoding_format": "float"])
    } catch {
      throw .unavailable("the embedding request could not be encoded")
    }
    var headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
    if !self.configuration.apiKey.isEmpty { headers.append(("Authorization", "Bearer \(self.configuration.apiKey)")) }
    let url = self.configuration.baseURL.appendingPathComponent("embeddings")
    var wait = self.configuration.initialBackoff
    var lastProblem = ""
    for attempt in 1...max(1, self.configuration.attempts) {
      if attempt > 1 {
        try? await Task.sleep(for: wait * Double.random(in: 0.8...1.2))
        wait = min(wait * 2, .seconds(8))
      }
      if Task.isCancelled { throw .unavailable("cancelled") }
      let response: EgressHTTPClient.Response
      do {
        response = try await self.http.send("POST", url, headers: headers, body: body, timeout: self.configuration.timeout)
      } catch {
        lastProblem = error.description
        continue
      }
      if response.status == 429 || response.status >= 500 {
        lastProblem = "HTTP \(response.status) from the embedding provider"
        if let retryAfter = response.headers.first(where: { $0.0.lowercased() == "retry-after" }).flatMap({ Int($0.1) }) {
          wait = .seconds(min(max(retryAfter, 0), 30))
        }
        continue
      }
      guard (200..<300).contains(response.status) else {
        let detail = String(decoding: response.body.prefix(300), as: UTF8.self)
        throw .unavailable("HTTP \(response.status) from the embedding provider: \(detail)")
      }
      return try self.vectors(in: response.body, count: texts.count)
    }
    throw .unavailable("The embedding provider failed \(self.configuration.attempts) times: \(lastProblem)")
  }

  /// The `data[].embedding` of a response, in `index` order.
  private func vectors(in body: Data, count: Int) throws(EmbeddingError) -> [[Float]] {
    guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let data = object["data"] as? [[String: Any]],
      data.count == count
    else { throw .unavailable("The embedding provider's answer has no data with one embedding per input") }
    var vectors = [[Float]?](repeating: nil, count: count)
    for (position, item) in data.enumerated() {
      let index = item["index"] as? Int ?? position
      guard (0..<count).contains(index), vectors[index] == nil, let numbers = item["embedding"] as? [Any],
        numbers.count == self.configuration.dimension
      else {
        throw .unavailable("The embedding provider's answer is not one \(self.configuration.dimension)-dimensional embedding per input")
      }
      var vector = [Float]()
      vector.reserveCapacity(numbers.count)
      for number in numbers {
        guard let value = (number as? NSNumber)?.floatValue, value.isFinite else {
          throw .unavailable("The embedding provider's answer holds a value that is not a finite number")
        }
        vector.append(value)
      }
      vectors[index] = vector
    }
    return vectors.map { $0 ?? [] }
  }
}

/// The embedding models this service offers, from the environment: the offline default always,
/// and with `EMBEDDING_PROVIDER=openai` an OpenAI-compatible one (`EMBEDDING_BASE_URL`,
/// `EMBEDDING_API_KEY`, `EMBEDDING_MODEL`, `EMBEDDING_DIMENSION`, `EMBEDDING_BATCH_SIZE` (64),
/// `EMBEDDING_TIMEOUT_SECONDS` (60)), which then becomes the default for new knowledge bases.
public struct EmbeddingProviders: Sendable {
  /// By model name; `default` names the one new knowledge bases get.
  public let embedders: [String: any Embedder]
  public let defaultModel: EmbeddingModel

  public init(_ embedders: [any Embedder]) {
    var byName: [String: any Embedder] = [:]
    for embedder in embedders where byName[embedder.model.name] == nil { byName[embedder.model.name] = embedder }
    self.embedders = byName
    self.defaultModel = embedders.first?.model ?? .offline
  }

  /// The models, the default first.
  public var models: [EmbeddingModel] {
    [self.defaultModel] + self.embedders.values.map(\.model).filter { $0 != self.defaultModel }.sorted { $0.name < $1.name }
  }

  public func embedder(for model: String) -> (any Embedder)? { self.embedders[model] }

  public init(environment: Environment) throws {
    let values = environment.values
    switch (values["EMBEDDING_PROVIDER"] ?? "offline").lowercased() {
    case "offline", "":
      self.init([OfflineEmbedder()])
    case "openai":
      guard let text = values["EMBEDDING_BASE_URL"], let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil
      else {
        throw Environment.InvalidValue(
          variable: "EMBEDDING_BASE_URL", value: values["EMBEDDING_BASE_URL"] ?? "", expected: "an http(s) URL such as https://api.openai.com/v1")
      }
      guard let model = values["EMBEDDING_MODEL"], !model.isEmpty, model.utf8.count <= 255 else {
        throw Environment.InvalidValue(variable: "EMBEDDING_MODEL", value: values["EMBEDDING_MODEL"] ?? "", expected: "a model name")
      }
      guard let dimension = Int(values["EMBEDDING_DIMENSION"] ?? ""), (1...16000).contains(dimension) else {
        throw Environment.InvalidValue(
          variable: "EMBEDDING_DIMENSION", value: values["EMBEDDING_DIMENSION"] ?? "", expected: "the model's dimension, 1 to 16000 (e.g. 384, 1536)")
      }
      var configuration = OpenAIEmbedder.Configuration(baseURL: url, apiKey: values["EMBEDDING_API_KEY"] ?? "", model: model, dimension: dimension)
      if let text = values["EMBEDDING_BATCH_SIZE"] {
        guard let size = Int(text), (1...2048).contains(size) else {
          throw Environment.InvalidValue(variable: "EMBEDDING_BATCH_SIZE", value: text, expected: "1 to 2048")
        }
        configuration.batchSize = size
      }
      if let text = values["EMBEDDING_TIMEOUT_SECONDS"] {
        guard let seconds = Int(text), (1...600).contains(seconds) else {
          throw Environment.InvalidValue(variable: "EMBEDDING_TIMEOUT_SECONDS", value: text, expected: "1 to 600")
        }
        configuration.timeout = .seconds(seconds)
      }
      self.init([OpenAIEmbedder(configuration: configuration), OfflineEmbedder()])
    case let other:
      throw Environment.InvalidValue(variable: "EMBEDDING_PROVIDER", value: other, expected: "offline or openai")
    }
  }
}
