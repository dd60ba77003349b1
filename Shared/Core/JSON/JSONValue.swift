internal import Foundation
public import SwiftProtobuf

/// A JSON document: what JSONB columns hold and what `google.protobuf.Struct` carries.
public enum JSONValue: Sendable, Hashable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  /// The object's members, nil for any other kind.
  public var objectValue: [String: JSONValue]? {
    if case .object(let members) = self { return members }
    return nil
  }

  public var stringValue: String? {
    if case .string(let string) = self { return string }
    return nil
  }

  /// A whole number within ±2^53, nil for anything else.
  public var intValue: Int? {
    if case .number(let number) = self, number.rounded() == number, abs(number) < 9.007_199_254_740_992e15 { return Int(number) }
    return nil
  }

  /// The JSON type name (`object`, `array`, `string`, `number`, `integer`, `boolean`, `null`);
  /// whole numbers are `integer`.
  public var typeName: String {
    switch self {
    case .null: "null"
    case .bool: "boolean"
    case .number(let number): number.rounded() == number && abs(number) < 9.007_199_254_740_992e15 ? "integer" : "number"
    case .string: "string"
    case .array: "array"
    case .object: "object"
    }
  }

  /// How many values the document holds, nested ones included.
  public var nodeCount: Int {
    switch self {
    case .array(let values): 1 + values.reduce(0) { $0 + $1.nodeCount }
    case .object(let members): 1 + members.values.reduce(0) { $0 + $1.nodeCount }
    default: 1
    }
  }

  /// Whether every number in the document is finite. `google.protobuf.Value` can carry NaN and
  /// infinities, which JSON (and so a JSONB column) cannot.
  public var isFinite: Bool {
    switch self {
    case .number(let number): number.isFinite
    case .array(let values): values.allSatisfy(\.isFinite)
    case .object(let members): members.values.allSatisfy(\.isFinite)
    default: true
    }
  }

  /// Whether a string or a key holds a NUL character, which PostgreSQL text (and JSONB) cannot.
  public var containsNUL: Bool {
    switch self {
    case .string(let string): string.utf8.contains(0)
    case .array(let values): values.contains(where: \.containsNUL)
    case .object(let members): members.contains { $0.key.utf8.contains(0) || $0.value.containsNUL }
    default: false
    }
  }

  /// The deepest nesting of arrays and objects (a scalar is 0).
  public var depth: Int {
    switch self {
    case .array(let values): 1 + (values.map(\.depth).max() ?? 0)
    case .object(let members): 1 + (members.values.map(\.depth).max() ?? 0)
    default: 0
    }
  }
}

// MARK: - JSON text

extension JSONValue {
  /// Parses JSON text (RFC 8259, strictly: no comments, trailing commas or NaN).
  /// - Parameter maxDepth: the deepest nesting of arrays and objects accepted. The default,
  ///   `NestingLimit.maximumDepth`, suits documents this service stored itself (they were
  ///   checked against the configured limit, at most that, when written); text from a request
  ///   takes the configured limit.
  public init(jsonText: String, maxDepth: Int = NestingLimit.maximumDepth) throws(JSONParseError) {
    self = try JSONParser.parse(jsonText, maxDepth: maxDepth)
  }

  /// Compact JSON text with sorted keys (stable, so equal documents have equal text).
  public var jsonText: String {
    var text = ""
    self.write(to: &text)
    return text
  }

  private func write(to text: inout String) {
    switch self {
    case .null: text += "null"
    case .bool(let bool): text += bool ? "true" : "false"
    case .number(let number):
      if number.rounded() == number && abs(number) < 1e15 {
        text += String(Int64(number))
      } else if number.isFinite {
        text += "\(number)"
      } else {
        text += "null"
      }
    case .string(let string): JSONLogHandler.appendQuoted(string, to: &text)
    case .array(let values):
      text += "["
      for (index, value) in values.enumerated() {
        if index > 0 { text += "," }
        value.write(to: &text)
      }
      text += "]"
    case .object(let members):
      text += "{"
      for (index, key) in members.keys.sorted().enumerated() {
        if index > 0 { text += "," }
        JSONLogHandler.appendQuoted(key, to: &text)
        text += ":"
        members[key]!.write(to: &text)
      }
      text += "}"
    }
  }
}

// MARK: - google.protobuf.Struct

extension JSONValue {
  /// The value a `google.protobuf.Value` holds (an unset kind reads as null).
  public init(_ value: Google_Protobuf_Value) {
    switch value.kind {
    case .nullValue, .none: self = .null
    case .boolValue(let bool): self = .bool(bool)
    case .numberValue(let number): self = .number(number)
    case .stringValue(let string): self = .string(string)
    case .listValue(let list): self = .array(list.values.map(JSONValue.init))
    case .structValue(let object): self = JSONValue(object)
    }
  }

  /// The object a `google.protobuf.Struct` holds.
  public init(_ object: Google_Protobuf_Struct) {
    self = .object(object.fields.mapValues(JSONValue.init))
  }

  public var protobufValue: Google_Protobuf_Value {
    var value = Google_Protobuf_Value()
    switch self {
    case .null: value.nullValue = .nullValue
    case .bool(let bool): value.boolValue = bool
    case .number(let number): value.numberValue = number
    case .string(let string): value.stringValue = string
    case .array(let values):
      value.listValue = Google_Protobuf_ListValue.with { $0.values = values.map(\.protobufValue) }
    case .object: value.structValue = self.protobufStruct
    }
    return value
  }

  /// The members as a `google.protobuf.Struct` (empty for anything but an object).
  public var protobufStruct: Google_Protobuf_Struct {
    Google_Protobuf_Struct.with { $0.fields = (self.objectValue ?? [:]).mapValues(\.protobufValue) }
  }
}

// MARK: - Limits

extension JSONValue {
  /// Why this document, received in a request, cannot be kept: nested deeper than `maxDepth`,
  /// longer than `maxBytes` as JSON text, holding a NaN or an infinity (JSON cannot) or a NUL
  /// character (PostgreSQL text and JSONB cannot). Nil when it can.
  public func problem(maxDepth: Int, maxBytes: Int) -> String? {
    if self.depth > maxDepth { return "nested deeper than \(maxDepth) levels" }
    if !self.isFinite { return "numbers must be finite (no NaN or Infinity)" }
    if self.containsNUL { return "must not contain NUL characters" }
    if self.jsonText.utf8.count > maxBytes { return "larger than \(maxBytes) bytes as JSON" }
    return nil
  }

  /// The encoded size of this value as a `google.protobuf.Value` (without the tag and length
  /// that embed it), for paging responses by bytes.
  public var protobufValueSize: Int {
    switch self {
    case .null, .bool: 2
    case .number: 9
    case .string(let string): ResponseBudget.fieldSize(string.utf8.count)
    case .array(let values): ResponseBudget.fieldSize(values.reduce(0) { $0 + ResponseBudget.fieldSize($1.protobufValueSize) })
    case .object: ResponseBudget.fieldSize(self.protobufStructSize)
    }
  }

  /// The encoded size of the members as a `google.protobuf.Struct` (without the tag and
  /// length that embed it).
  public var protobufStructSize: Int {
    (self.objectValue ?? [:]).reduce(0) { size, member in
      size + ResponseBudget.fieldSize(ResponseBudget.fieldSize(member.key.utf8.count) + ResponseBudget.fieldSize(member.value.protobufValueSize))
    }
  }
}
