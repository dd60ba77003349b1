internal import Foundation
internal import GRPCRuntime
internal import SwiftProtobuf

/// A request body in protobuf JSON with placeholders filled in per request:
///
/// - `{{n}}`: the request's number (0, 1, 2, …);
/// - `{{uuid}}`: a random UUID;
/// - `{{random}}`: a random integer in 0..<2³¹;
/// - `{{var.NAME}}`: field NAME of variable set n mod count (`--variables`);
/// - `{{env.NAME}}`: the environment variable NAME, read once at start.
///
/// Values go in as JSON string content (escaped, without quotes; numbers and booleans as their
/// JSON text), so a placeholder sits inside quotes for a string field and bare for a number.
struct RequestTemplate: Sendable {
  enum Part: Sendable, Equatable {
    case text(String)
    case number
    case uuid
    case random
    case variable(String)
  }

  let parts: [Part]
  let variables: [[String: String]]

  /// Whether every request is the same message (nothing per request to fill in).
  var isConstant: Bool { self.parts.allSatisfy { if case .text = $0 { true } else { false } } }

  init(_ source: String, variables: [[String: String]], environment: [String: String]) throws {
    var parts: [Part] = []
    var literal = ""
    var rest = Substring(source)
    while let open = rest.range(of: "{{") {
      literal += rest[..<open.lowerBound]
      guard let close = rest[open.upperBound...].range(of: "}}") else {
        throw TemplateError("An unclosed '{{' in the request template")
      }
      let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
      rest = rest[close.upperBound...]
      let part: Part
      switch name {
      case "n": part = .number
      case "uuid": part = .uuid
      case "random": part = .random
      case _ where name.hasPrefix("env."):
        let key = String(name.dropFirst(4))
        guard let value = environment[key] else { throw TemplateError("The request template uses {{env.\(key)}} but \(key) is not set") }
        literal += Self.escaped(value)
        continue
      case _ where name.hasPrefix("var."):
        let key = String(name.dropFirst(4))
        guard !variables.isEmpty, variables.allSatisfy({ $0[key] != nil }) else {
          throw TemplateError("The request template uses {{var.\(key)}} but not every variable set (--variables) has '\(key)'")
        }
        part = .variable(key)
      default:
        throw TemplateError("Unknown placeholder {{\(name)}}: use n, uuid, random, var.NAME or env.NAME")
      }
      if !literal.isEmpty { parts.append(.text(literal)) }
      literal = ""
      parts.append(part)
    }
    literal += rest
    if !literal.isEmpty || parts.isEmpty { parts.append(.text(literal)) }
    self.parts = parts
    self.variables = variables
  }

  /// The JSON of request `number`.
  func render(number: Int) -> String {
    var json = ""
    for part in self.parts {
      switch part {
      case .text(let text): json += text
      case .number: json += String(number)
      case .uuid: json += UUID().uuidString.lowercased()
      case .random: json += String(Int.random(in: 0..<(1 << 31)))
      case .variable(let key): json += Self.escaped(self.variables[number % self.variables.count][key] ?? "")
      }
    }
    return json
  }

  /// `value` as the content of a JSON string.
  static func escaped(_ value: String) -> String {
    var out = ""
    for scalar in value.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out
  }

  /// Variable sets from a JSON array of objects; each value as text (strings as they are,
  /// numbers as their JSON text).
  static func variables(json data: Data) throws -> [[String: String]] {
    guard let array = try JSONSerialization.jsonObject(with: data) as? [[String: Any]], !array.isEmpty else {
      throw TemplateError("--variables must be a non-empty JSON array of objects")
    }
    return try array.map { object in
      try object.mapValues { value -> String in
        switch value {
        case let string as String: return string
        case let number as NSNumber: return number.stringValue
        default: throw TemplateError("--variables: values must be strings or numbers")
        }
      }
    }
  }
}

struct TemplateError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
