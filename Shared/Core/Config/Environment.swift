internal import Foundation

/// Reads typed settings from environment variables; a malformed value is an error naming the
/// variable (a service must not start on a setting it misread).
public struct Environment: Sendable {
  public var values: [String: String]

  public init(_ values: [String: String]) {
    self.values = values
  }

  /// The process's environment.
  public static var process: Environment {
    Environment(ProcessInfo.processInfo.environment)
  }

  /// An invalid environment variable.
  public struct InvalidValue: Error, CustomStringConvertible {
    public var variable: String
    public var value: String
    public var expected: String
    public var description: String { "\(self.variable)=\(self.value) is invalid: expected \(self.expected)" }

    public init(variable: String, value: String, expected: String) {
      self.variable = variable
      self.value = value
      self.expected = expected
    }
  }

  /// The variable's value; nil when it is unset or empty.
  public subscript(_ name: String) -> String? {
    guard let value = self.values[name], !value.isEmpty else { return nil }
    return value
  }

  public func string(_ name: String, default defaultValue: String) -> String {
    self[name] ?? defaultValue
  }

  public func int(_ name: String, default defaultValue: Int, range: ClosedRange<Int> = 0...Int.max) throws -> Int {
    guard let text = self[name] else { return defaultValue }
    guard let value = Int(text), range.contains(value) else {
      throw InvalidValue(variable: name, value: text, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
    }
    return value
  }

  public func seconds(_ name: String, default defaultValue: Duration) throws -> Duration {
    guard let text = self[name] else { return defaultValue }
    // Up to ten years: beyond that it is a mistake (and Int64 milliseconds overflow near 3e8 years).
    guard let value = Double(text), value >= 0, value <= 315_360_000 else {
      throw InvalidValue(variable: name, value: text, expected: "a number of seconds (0 to 315360000)")
    }
    return .milliseconds(Int64(value * 1000))
  }

  public func choice<T: RawRepresentable<String>>(_ name: String, default defaultValue: T) throws -> T
  where T: CaseIterable {
    guard let text = self[name] else { return defaultValue }
    guard let value = T(rawValue: text.lowercased()) else {
      throw InvalidValue(
        variable: name, value: text, expected: "one of " + T.allCases.map(\.rawValue).joined(separator: ", "))
    }
    return value
  }
}
