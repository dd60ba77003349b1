public import PlatformCore
internal import Foundation

/// Variable references in node data: `{{input.<path>}}`, `{{nodes.<id>.output.<path>}}` and,
/// inside an iteration, `{{item.<path>}}` and `{{index}}`. A string that is exactly one
/// reference takes the referenced value with its type; references inside longer text are
/// replaced by the value's text. Resolution is one pass: a resolved value is never scanned
/// again, so references cannot nest or expand recursively.
public enum References {
  /// The most segments a path may have.
  public static let maxSegments = 32
  /// The most references one node's data may hold.
  public static let maxReferences = 1000

  /// A reference as written, split into its path: `nodes.a.output.items[0]` is
  /// `["nodes", "a", "output", "items", "0"]`; nil when it is not a path.
  public static func path(_ text: Substring) -> [String]? {
    let trimmed = text.trimming(" \t")
    guard !trimmed.isEmpty, trimmed.utf8.count <= 1000 else { return nil }
    var segments: [String] = []
    var current = ""
    var index = trimmed.startIndex
    while index < trimmed.endIndex {
      let character = trimmed[index]
      switch character {
      case ".":
        guard !current.isEmpty else { return nil }
        segments.append(current)
        current = ""
      case "[":
        if !current.isEmpty {
          segments.append(current)
          current = ""
        }
        guard let close = trimmed[index...].firstIndex(of: "]") else { return nil }
        let number = trimmed[trimmed.index(after: index)..<close]
        guard !number.isEmpty, number.allSatisfy(\.isASCIIDigit) else { return nil }
        segments.append(String(number))
        index = close
        if trimmed.index(after: index) < trimmed.endIndex, trimmed[trimmed.index(after: index)] == "." {
          index = trimmed.index(after: index)
        }
      default:
        guard character.isASCIILetter || character.isASCIIDigit || character == "_" || character == "-" else { return nil }
        current.append(character)
      }
      guard segments.count <= Self.maxSegments else { return nil }
      index = trimmed.index(after: index)
    }
    if !current.isEmpty { segments.append(current) }
    guard !segments.isEmpty, segments.count <= Self.maxSegments else { return nil }
    return segments
  }

  /// The `{{…}}` spans of `text`: each with its inside, in order.
  static func spans(in text: String) -> [(range: Range<String.Index>, inner: Substring)] {
    var spans: [(Range<String.Index>, Substring)] = []
    var searchFrom = text.startIndex
    while let open = text.range(of: "{{", range: searchFrom..<text.endIndex) {
      guard let close = text.range(of: "}}", range: open.upperBound..<text.endIndex) else { break }
      spans.append((open.lowerBound..<close.upperBound, text[open.upperBound..<close.lowerBound]))
      searchFrom = close.upperBound
      if spans.count > Self.maxReferences { break }
    }
    return spans
  }

  /// Every reference path in the strings of `value` (keys excluded), in order; what is not a path
  /// is reported as `invalid`.
  public static func paths(in value: JSONValue) -> (paths: [[String]], invalid: [String]) {
    var paths: [[String]] = []
    var invalid: [String] = []
    func walk(_ value: JSONValue) {
      switch value {
      case .string(let text):
        for span in Self.spans(in: text) {
          if let path = Self.path(span.inner) { paths.append(path) } else { invalid.append(String(span.inner.prefix(100))) }
        }
      case .array(let values): values.forEach(walk)
      case .object(let members): members.values.forEach(walk)
      default: break
      }
    }
    walk(value)
    return (paths, invalid)
  }

  public struct Failure: Error, Equatable, CustomStringConvertible {
    public var reason: String
    public var description: String { self.reason }
  }

  /// `value` with its references replaced through `lookup` (an absent value reads as null,
  /// which is empty text inside a longer string).
  /// - Parameter maxBytes: the most the resolved value may hold, all its strings and the values
  ///   references bring in together (about its JSON size), so that data of a few kilobytes cannot
  ///   expand a large upstream output a thousand times over.
  public static func resolve(
    _ value: JSONValue, maxBytes: Int = 1 << 20, lookup: ([String]) -> JSONValue?
  ) throws(Failure) -> JSONValue {
    var remaining = maxBytes
    return try Self.resolve(value, remaining: &remaining, limit: maxBytes, lookup: lookup)
  }

  private static func resolve(
    _ value: JSONValue, remaining: inout Int, limit: Int, lookup: ([String]) -> JSONValue?
  ) throws(Failure) -> JSONValue {
    func spend(_ bytes: Int) throws(Failure) {
      remaining -= bytes
      if remaining < 0 { throw Failure(reason: "the data expands to more than \(limit) bytes") }
    }
    switch value {
    case .string(let text):
      let spans = Self.spans(in: text)
      guard !spans.isEmpty else {
        try spend(text.utf8.count + 2)
        return value
      }
      if spans.count == 1, spans[0].range == text.startIndex..<text.endIndex {
        guard let path = Self.path(spans[0].inner) else { throw Failure(reason: "{{\(spans[0].inner.prefix(100))}} is not a reference") }
        let found = lookup(path) ?? .null
        try spend(Self.size(of: found, upTo: remaining + 1))
        return found
      }
      var result = ""
      var last = text.startIndex
      for span in spans {
        result += text[last..<span.range.lowerBound]
        guard let path = Self.path(span.inner) else { throw Failure(reason: "{{\(span.inner.prefix(100))}} is not a reference") }
        let found = lookup(path) ?? .null
        // Measured before it is written out as text.
        guard Self.size(of: found, upTo: remaining + 1) + result.utf8.count <= remaining else {
          throw Failure(reason: "the data expands to more than \(limit) bytes")
        }
        result += Self.text(of: found)
        last = span.range.upperBound
      }
      result += text[last...]
      try spend(result.utf8.count + 2)
      return .string(result)
    case .array(let values):
      try spend(2)
      var resolved: [JSONValue] = []
      resolved.reserveCapacity(values.count)
      for element in values { resolved.append(try Self.resolve(element, remaining: &remaining, limit: limit, lookup: lookup)) }
      return .array(resolved)
    case .object(let members):
      try spend(2)
      var resolved: [String: JSONValue] = [:]
      for (key, member) in members {
        try spend(key.utf8.count + 3)
        resolved[key] = try Self.resolve(member, remaining: &remaining, limit: limit, lookup: lookup)
      }
      return .object(resolved)
    default:
      try spend(8)
      return value
    }
  }

  /// About how many bytes `value` takes as JSON, counted only up to `limit` (so measuring a large
  /// value costs no more than the limit).
  static func size(of value: JSONValue, upTo limit: Int) -> Int {
    var total = 0
    func walk(_ value: JSONValue) {
      guard total <= limit else { return }
      switch value {
      case .null, .bool, .number: total += 8
      case .string(let text): total += text.utf8.count + 2
      case .array(let values):
        total += 2
        for element in values where total <= limit { walk(element) }
      case .object(let members):
        total += 2
        for (key, member) in members where total <= limit {
          total += key.utf8.count + 3
          walk(member)
        }
      }
    }
    walk(value)
    return total
  }

  /// A value as text inside a string: strings as they are, whole numbers without a fraction,
  /// null as nothing, arrays and objects as JSON.
  public static func text(of value: JSONValue) -> String {
    switch value {
    case .null: ""
    case .bool(let bool): bool ? "true" : "false"
    case .string(let string): string
    case .number(let number): number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : "\(number)"
    case .array, .object: value.jsonText
    }
  }

  /// The value at `path` below `value`: object members by name, array elements by index.
  public static func value(at path: ArraySlice<String>, in value: JSONValue) -> JSONValue? {
    var current = value
    for segment in path {
      switch current {
      case .object(let members):
        guard let next = members[segment] else { return nil }
        current = next
      case .array(let elements):
        guard let index = Int(segment), elements.indices.contains(index) else { return nil }
        current = elements[index]
      default:
        return nil
      }
    }
    return current
  }
}

extension Character {
  var isASCIILetter: Bool { self.isASCII && self.isLetter }
  var isASCIIDigit: Bool { self.isASCII && self.isNumber }
}

extension StringProtocol {
  func trimming(_ set: String) -> Substring {
    var text = Substring(self)
    while let first = text.first, set.contains(first) { text = text.dropFirst() }
    while let last = text.last, set.contains(last) { text = text.dropLast() }
    return text
  }
}
