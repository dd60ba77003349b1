public import PlatformCore

/// One way a value fails a schema, named by its path (`variables.tone`).
public struct SchemaViolation: Sendable, Hashable, CustomStringConvertible {
  public var path: String
  public var message: String
  public var description: String { "\(self.path): \(self.message)" }
}

/// The JSON schema of a persona's variables: a draft 2020-12 subset (type, properties,
/// required, enum, const, default, items, additionalProperties, minimum/maximum,
/// minLength/maxLength, minItems/maxItems, and the annotations title, description, examples,
/// format, $schema, $id, $comment). Other keywords are refused rather than silently ignored,
/// so a schema never promises a check it does not make.
public struct VariableSchema: Sendable, Hashable {
  public var types: Set<String>?
  public var properties: [String: VariableSchema] = [:]
  public var required: [String] = []
  public var allowedValues: [JSONValue]?
  public var defaultValue: JSONValue?
  /// `items` (zero or one element: arrays give the recursion its storage).
  private var itemSchemas: [VariableSchema] = []
  public var additionalProperties = true
  public var minLength: Int?
  public var maxLength: Int?
  public var minimum: Double?
  public var maximum: Double?
  public var minItems: Int?
  public var maxItems: Int?

  public var items: VariableSchema? { self.itemSchemas.first }

  static let knownTypes: Set<String> = ["object", "array", "string", "number", "integer", "boolean", "null"]
  static let annotations: Set<String> = ["title", "description", "examples", "format", "$schema", "$id", "$comment", "default"]

  /// Parses the variables schema of a persona; the top level describes an object.
  /// - Throws: `PersonaError.invalidArgument` naming the schema path (`persona.variables.properties.tone.type`).
  public init(variables: JSONValue) throws(PersonaError) {
    try self.init(parsing: variables, path: "persona.variables")
    if let types = self.types, !types.contains("object") {
      throw .invalidArgument(field: "persona.variables.type", reason: "the variables schema must describe an object")
    }
  }

  init(parsing json: JSONValue, path: String) throws(PersonaError) {
    guard case .object(let keywords) = json else {
      throw .invalidArgument(field: path, reason: "a schema must be a JSON object")
    }
    func fail(_ keyword: String, _ reason: String) -> PersonaError {
      .invalidArgument(field: "\(path).\(keyword)", reason: reason)
    }
    func count(_ keyword: String) throws(PersonaError) -> Int? {
      guard let value = keywords[keyword] else { return nil }
      guard case .number(let number) = value, number >= 0, number.rounded() == number, number < 1e9 else {
        throw fail(keyword, "must be a non-negative integer")
      }
      return Int(number)
    }
    func bound(_ keyword: String) throws(PersonaError) -> Double? {
      guard let value = keywords[keyword] else { return nil }
      guard case .number(let number) = value else { throw fail(keyword, "must be a number") }
      return number
    }

    for keyword in keywords.keys.sorted() {
      switch keyword {
      case "type":
        switch keywords[keyword]! {
        case .string(let type): self.types = [type]
        case .array(let values):
          let names = values.compactMap(\.stringValue)
          guard names.count == values.count, !names.isEmpty else { throw fail(keyword, "must be a type name or a list of them") }
          self.types = Set(names)
        default: throw fail(keyword, "must be a type name or a list of them")
        }
        if let unknown = self.types!.subtracting(Self.knownTypes).sorted().first {
          throw fail(keyword, "unknown type `\(unknown)`")
        }
      case "properties":
        guard case .object(let members) = keywords[keyword]! else { throw fail(keyword, "must be an object of schemas") }
        for (name, schema) in members {
          self.properties[name] = try VariableSchema(parsing: schema, path: "\(path).properties.\(name)")
        }
      case "required":
        guard case .array(let values) = keywords[keyword]! else { throw fail(keyword, "must be a list of property names") }
        let names = values.compactMap(\.stringValue)
        guard names.count == values.count, Set(names).count == names.count else {
          throw fail(keyword, "must be a list of distinct property names")
        }
        self.required = names
      case "enum":
        guard case .array(let values) = keywords[keyword]!, !values.isEmpty else { throw fail(keyword, "must be a non-empty list") }
        self.allowedValues = values
      case "const":
        self.allowedValues = [keywords[keyword]!]
      case "items":
        self.itemSchemas = [try VariableSchema(parsing: keywords[keyword]!, path: "\(path).items")]
      case "additionalProperties":
        guard case .bool(let allowed) = keywords[keyword]! else { throw fail(keyword, "must be true or false") }
        self.additionalProperties = allowed
      case "minLength": self.minLength = try count(keyword)
      case "maxLength": self.maxLength = try count(keyword)
      case "minItems": self.minItems = try count(keyword)
      case "maxItems": self.maxItems = try count(keyword)
      case "minimum": self.minimum = try bound(keyword)
      case "maximum": self.maximum = try bound(keyword)
      case _ where Self.annotations.contains(keyword):
        break
      default:
        throw fail(keyword, "unsupported keyword (supported: type, properties, required, enum, const, default, items, additionalProperties, minimum, maximum, minLength, maxLength, minItems, maxItems)")
      }
    }
    if let missing = self.required.first(where: { self.properties[$0] == nil }), self.additionalProperties == false {
      throw fail("required", "`\(missing)` is required but additionalProperties is false and it has no schema")
    }
    if let defaultValue = keywords["default"] {
      self.defaultValue = defaultValue
      if let violation = self.validate(defaultValue, path: "\(path).default").first {
        throw .invalidArgument(field: violation.path, reason: "the default fails its own schema: \(violation.message)")
      }
    }
  }

  /// Every way `value` fails the schema (empty when it conforms).
  public func validate(_ value: JSONValue, path: String) -> [SchemaViolation] {
    var violations: [SchemaViolation] = []
    self.validate(value, path: path, into: &violations)
    return violations
  }

  private func validate(_ value: JSONValue, path: String, into violations: inout [SchemaViolation]) {
    func violation(_ message: String) { violations.append(SchemaViolation(path: path, message: message)) }
    if let types = self.types {
      let type = value.typeName
      let matches = types.contains(type) || (type == "integer" && types.contains("number"))
      guard matches else {
        violation("expected \(types.sorted().joined(separator: " or ")), got \(type)")
        return
      }
    }
    if let allowed = self.allowedValues, !allowed.contains(value) {
      violation("must be one of " + allowed.map(\.jsonText).joined(separator: ", "))
    }
    switch value {
    case .string(let string):
      let length = string.count
      if let minLength = self.minLength, length < minLength { violation("must be at least \(minLength) characters") }
      if let maxLength = self.maxLength, length > maxLength { violation("must be at most \(maxLength) characters") }
    case .number(let number):
      if let minimum = self.minimum, number < minimum { violation("must be at least \(JSONValue.number(minimum).jsonText)") }
      if let maximum = self.maximum, number > maximum { violation("must be at most \(JSONValue.number(maximum).jsonText)") }
    case .array(let values):
      if let minItems = self.minItems, values.count < minItems { violation("must have at least \(minItems) items") }
      if let maxItems = self.maxItems, values.count > maxItems { violation("must have at most \(maxItems) items") }
      if let items = self.items {
        for (index, item) in values.enumerated() {
          items.validate(item, path: "\(path)[\(index)]", into: &violations)
        }
      }
    case .object(let members):
      for name in self.required where members[name] == nil {
        violations.append(SchemaViolation(path: "\(path).\(name)", message: "is required"))
      }
      for name in members.keys.sorted() {
        if let schema = self.properties[name] {
          schema.validate(members[name]!, path: "\(path).\(name)", into: &violations)
        } else if !self.additionalProperties {
          violations.append(SchemaViolation(path: "\(path).\(name)", message: "is not a declared variable"))
        }
      }
    case .null, .bool:
      break
    }
  }

  /// The variables with every missing top-level property that has a default filled in.
  /// - Returns: the completed variables and the names filled, sorted.
  public func applyingDefaults(to variables: [String: JSONValue]) -> (variables: [String: JSONValue], defaulted: [String]) {
    var completed = variables
    var defaulted: [String] = []
    for name in self.properties.keys.sorted() where completed[name] == nil {
      if let value = self.properties[name]!.defaultValue {
        completed[name] = value
        defaulted.append(name)
      }
    }
    return (completed, defaulted)
  }
}
