internal import Foundation
public import PlatformCore

/// A plugin's configuration, checked for its kind: every key known, every value in range, the
/// defaults filled in. INVALID_ARGUMENT names `<field>.<key>`.
public enum PluginConfig {
  public static let maxBytes = 8192

  /// The languages the code sandbox runs.
  public static let languages = ["python", "javascript", "typescript"]
  /// Knowledge search modes.
  public static let searchModes = ["hybrid", "vector", "keyword"]
  /// Where `file_upload` sends an execution's files.
  public static let uploadTargets = ["sandbox", "knowledge"]

  /// `config` checked for `kind`, with its defaults.
  public static func checked(_ config: [String: JSONValue], kind: AgentPlugin.Kind, field: String) throws(AgentError) -> JSONValue {
    if let problem = JSONValue.object(config).problem(maxDepth: 4, maxBytes: Self.maxBytes) {
      throw .invalidArgument(field: field, reason: problem)
    }
    var reader = Reader(config: config, field: field)
    var result: [String: JSONValue] = [:]
    switch kind {
    case .codeExecutor:
      result["language"] = .string(try reader.choice("language", Self.languages, default: "python"))
      result["timeout_ms"] = .number(Double(try reader.integer("timeout_ms", 100...60_000, default: 10_000)))
      result["memory_mb"] = .number(Double(try reader.integer("memory_mb", 32...1024, default: 256)))
      result["block_on_critical"] = .bool(try reader.bool("block_on_critical", default: true))
    case .textToSQL:
      result["database_id"] = .string(try reader.uuid("database_id").lowercasedString)
      result["execute"] = .bool(try reader.bool("execute", default: true))
      result["max_rows"] = .number(Double(try reader.integer("max_rows", 1...1000, default: 100)))
    case .knowledgeRAG:
      let ids = try reader.uuids("knowledge_base_ids", 1...10)
      result["knowledge_base_ids"] = .array(ids.map { .string($0.lowercasedString) })
      result["top_k"] = .number(Double(try reader.integer("top_k", 1...50, default: 5)))
      result["mode"] = .string(try reader.choice("mode", Self.searchModes, default: "hybrid"))
      result["min_score"] = .number(try reader.number("min_score", 0...1, default: 0))
    case .webSearch:
      result["max_results"] = .number(Double(try reader.integer("max_results", 1...20, default: 5)))
    case .fileUpload:
      let target = try reader.choice("target", Self.uploadTargets, default: "sandbox")
      result["target"] = .string(target)
      if target == "knowledge" {
        result["knowledge_base_id"] = .string(try reader.uuid("knowledge_base_id").lowercasedString)
      }
      result["max_files"] = .number(Double(try reader.integer("max_files", 1...20, default: 5)))
    }
    try reader.rejectUnknown()
    return .object(result)
  }

  /// Reads typed values out of a config object, remembering which keys it read.
  struct Reader {
    let config: [String: JSONValue]
    let field: String
    var read: Set<String> = []

    init(config: [String: JSONValue], field: String) {
      self.config = config
      self.field = field
    }

    func refuse(_ key: String, _ reason: String) -> AgentError { .invalidArgument(field: "\(self.field).\(key)", reason: reason) }

    mutating func value(_ key: String) -> JSONValue? {
      self.read.insert(key)
      guard let value = self.config[key], value != .null else { return nil }
      return value
    }

    mutating func integer(_ key: String, _ range: ClosedRange<Int>, default fallback: Int) throws(AgentError) -> Int {
      guard let value = self.value(key) else { return fallback }
      guard case .number(let number) = value, number.rounded() == number, let integer = Int(exactly: number), range.contains(integer) else {
        throw self.refuse(key, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
      }
      return integer
    }

    mutating func number(_ key: String, _ range: ClosedRange<Double>, default fallback: Double) throws(AgentError) -> Double {
      guard let value = self.value(key) else { return fallback }
      guard case .number(let number) = value, number.isFinite, range.contains(number) else {
        throw self.refuse(key, "must be a number from \(range.lowerBound) to \(range.upperBound)")
      }
      return number
    }

    mutating func bool(_ key: String, default fallback: Bool) throws(AgentError) -> Bool {
      guard let value = self.value(key) else { return fallback }
      guard case .bool(let flag) = value else { throw self.refuse(key, "must be true or false") }
      return flag
    }

    mutating func choice(_ key: String, _ choices: [String], default fallback: String) throws(AgentError) -> String {
      guard let value = self.value(key) else { return fallback }
      guard case .string(let text) = value, choices.contains(text.lowercased()) else {
        throw self.refuse(key, "must be one of \(choices.joined(separator: ", "))")
      }
      return text.lowercased()
    }

    mutating func uuid(_ key: String) throws(AgentError) -> UUID {
      guard let value = self.value(key) else { throw self.refuse(key, "is required") }
      guard case .string(let text) = value, let id = UUID(strict: text) else { throw self.refuse(key, "must be a UUID") }
      return id
    }

    mutating func uuids(_ key: String, _ count: ClosedRange<Int>) throws(AgentError) -> [UUID] {
      guard let value = self.value(key) else { throw self.refuse(key, "is required") }
      guard case .array(let items) = value, count.contains(items.count) else {
        throw self.refuse(key, "must be a list of \(count.lowerBound) to \(count.upperBound) UUIDs")
      }
      var ids: [UUID] = []
      for item in items {
        guard case .string(let text) = item, let id = UUID(strict: text) else { throw self.refuse(key, "must hold UUIDs only") }
        if !ids.contains(id) { ids.append(id) }
      }
      return ids
    }

    func rejectUnknown() throws(AgentError) {
      if let unknown = self.config.keys.sorted().first(where: { !self.read.contains($0) }) {
        throw self.refuse(unknown, "is not a setting of this plugin type (known: \(self.read.sorted().joined(separator: ", ")))")
      }
    }
  }
}
