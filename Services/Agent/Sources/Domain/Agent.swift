public import Foundation
public import PlatformCore

/// Why an agent, plugin or execution request was refused.
public typealias AgentError = ServiceError

/// An AI agent (agent_db.agents): a persona, model settings and ordered plugins.
public struct Agent: Sendable, Equatable {
  public enum Status: String, Sendable, CaseIterable {
    case active
    case inactive
    case archived
  }

  public var id: UUID
  public var ownerID: UUID
  public var personaID: UUID
  public var name: String
  public var description: String
  public var status: Status
  public var settings: ModelSettings
  public var metadata: JSONValue
  public var version: Int
  public var createdAt: Date
  public var updatedAt: Date
  public var deletedAt: Date?

  public static let maxNameCharacters = 100
  public static let maxDescriptionBytes = 8192
  public static let maxMetadataBytes = 16384
  /// Plugins an agent may hold, enabled or not.
  public static let maxPlugins = 32
}

/// The model settings of an agent (agents.settings): validated, defaults filled in.
public struct ModelSettings: Sendable, Equatable {
  public var temperature: Double
  public var maxTokens: Int
  public var topP: Double
  /// The model that runs the agent (`extra.model`), one this service has.
  public var model: String
  /// Further provider settings, kept verbatim (`model` included).
  public var extra: [String: JSONValue]

  public static let temperatureRange = 0.0...2.0
  public static let maxTokensRange = 1...128_000
  public static let topPRange = 0.0...1.0
  public static let maxExtraBytes = 8192

  /// Checks the settings a caller gave (nil fields take the seed's defaults) against the models
  /// this service can run; INVALID_ARGUMENT names `<field>.temperature` and so on.
  public static func checked(
    temperature: Double?, maxTokens: Int?, topP: Double?, extra: [String: JSONValue], models: ModelCatalog, field: String
  ) throws(AgentError) -> ModelSettings {
    let temperature = temperature ?? 0.7
    guard temperature.isFinite, Self.temperatureRange.contains(temperature) else {
      throw .invalidArgument(field: "\(field).temperature", reason: "must be 0 to 2")
    }
    let maxTokens = maxTokens ?? 4000
    guard Self.maxTokensRange.contains(maxTokens) else {
      throw .invalidArgument(field: "\(field).max_tokens", reason: "must be 1 to 128000")
    }
    let topP = topP ?? 1.0
    guard topP.isFinite, Self.topPRange.contains(topP) else { throw .invalidArgument(field: "\(field).top_p", reason: "must be 0 to 1") }
    if let problem = JSONValue.object(extra).problem(maxDepth: 8, maxBytes: Self.maxExtraBytes) {
      throw .invalidArgument(field: "\(field).extra", reason: problem)
    }
    var extra = extra
    let model: String
    switch extra["model"] {
    case nil, .null?:
      model = models.defaultModel
    case .string(let name)?:
      guard models.has(name) else {
        throw .invalidArgument(field: "\(field).extra.model", reason: "is not a model of this service; available: \(models.names.joined(separator: ", "))")
      }
      model = name
    default:
      throw .invalidArgument(field: "\(field).extra.model", reason: "must be a string")
    }
    extra["model"] = .string(model)
    return ModelSettings(temperature: temperature, maxTokens: maxTokens, topP: topP, model: model, extra: extra)
  }

  /// As stored in agents.settings.
  public var json: JSONValue {
    var object = self.extra
    object["temperature"] = .number(self.temperature)
    object["max_tokens"] = .number(Double(self.maxTokens))
    object["top_p"] = .number(self.topP)
    object["model"] = .string(self.model)
    return .object(object)
  }

  /// Read back from agents.settings (written by `json`).
  public init(stored: JSONValue, models: ModelCatalog) {
    var object = stored.objectValue ?? [:]
    func number(_ key: String) -> Double? {
      if case .number(let value)? = object.removeValue(forKey: key) { return value }
      return nil
    }
    self.temperature = number("temperature") ?? 0.7
    self.maxTokens = Int(number("max_tokens") ?? 4000)
    self.topP = number("top_p") ?? 1.0
    self.model = object["model"]?.stringValue ?? models.defaultModel
    self.extra = object
  }

  public init(temperature: Double, maxTokens: Int, topP: Double, model: String, extra: [String: JSONValue]) {
    self.temperature = temperature
    self.maxTokens = maxTokens
    self.topP = topP
    self.model = model
    self.extra = extra
  }
}

/// The models this service can run agents on: the offline planner always, plus the configured
/// OpenAI-compatible model (LLM_MODEL), each with its price.
public struct ModelCatalog: Sendable, Equatable {
  /// USD per million prompt and completion tokens.
  public typealias Price = ModelPrice

  /// The name of the deterministic planner that needs no model server.
  public static let offline = "offline-planner"

  public private(set) var names: [String]
  public private(set) var prices: [String: Price]
  public var defaultModel: String { self.names[0] }

  /// `names` in order (the first is the default) with their prices; the offline planner is
  /// always available, last unless named.
  public init(names: [String], prices: [String: Price] = [:]) {
    var unique: [String] = []
    for name in names where !name.isEmpty && !unique.contains(name) { unique.append(name) }
    if !unique.contains(Self.offline) { unique.append(Self.offline) }
    self.names = unique
    self.prices = prices
    self.prices[Self.offline] = .free
  }

  public func has(_ name: String) -> Bool { self.names.contains(name) }

  public func price(_ model: String) -> Price { self.prices[model] ?? .free }

  /// The provider's model (LLM_PROVIDER=openai, LLM_MODEL) first, then the offline planner;
  /// prices from AGENT_MODEL_PRICES (`model=prompt/completion` in USD per million tokens,
  /// comma-separated).
  public init(provider: ModelProvider, environment: Environment) throws {
    var names: [String] = []
    if case .openAI(let settings) = provider { names.append(settings.model) }
    let prices = try ModelPrice.table(parsing: environment["AGENT_MODEL_PRICES"] ?? "", variable: "AGENT_MODEL_PRICES")
    self.init(names: names, prices: prices)
  }
}

/// A plugin attached to an agent (agent_db.agent_plugins).
public struct AgentPlugin: Sendable, Equatable {
  public enum Kind: String, Sendable, CaseIterable {
    case codeExecutor = "code_executor"
    case textToSQL = "text_to_sql"
    case knowledgeRAG = "knowledge_rag"
    case webSearch = "web_search"
    case fileUpload = "file_upload"
  }

  public var id: UUID
  public var agentID: UUID
  public var name: String
  public var kind: Kind
  /// Validated for its kind (`PluginConfig`).
  public var config: JSONValue
  public var isEnabled: Bool
  public var orderIndex: Int
  public var createdAt: Date
  public var updatedAt: Date

  public static let maxNameCharacters = 100
}
