internal import Foundation
public import Logging

/// Writes one JSON object per log line to stderr: `ts`, `level`, `service` (the label),
/// `message`, `trace_id` when the work belongs to a trace, then the metadata.
public struct JSONLogHandler: LogHandler {
  public var logLevel: Logger.Level
  public var metadata: Logger.Metadata = [:]
  public var metadataProvider: Logger.MetadataProvider?
  private let label: String

  public init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
    self.label = label
    self.logLevel = level
    self.metadataProvider = metadataProvider
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { self.metadata[key] }
    set { self.metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var fields = self.metadata
    if let provided = self.metadataProvider?.get() { fields.merge(provided) { _, new in new } }
    if let extra = event.metadata { fields.merge(extra) { _, new in new } }

    var line = "{\"ts\":\"\(Self.timestamp())\",\"level\":\"\(event.level.rawValue)\",\"service\":"
    Self.appendQuoted(self.label, to: &line)
    line += ",\"message\":"
    Self.appendQuoted(event.message.description, to: &line)
    for key in fields.keys.sorted() {
      line += ","
      Self.appendQuoted(key, to: &line)
      line += ":"
      Self.append(fields[key]!, to: &line)
    }
    line += "}\n"
    Self.write(line)
  }

  private static func append(_ value: Logger.MetadataValue, to line: inout String) {
    switch value {
    case .string(let string): Self.appendQuoted(string, to: &line)
    case .stringConvertible(let convertible): Self.appendQuoted(convertible.description, to: &line)
    case .array(let values):
      line += "["
      for (index, value) in values.enumerated() {
        if index > 0 { line += "," }
        Self.append(value, to: &line)
      }
      line += "]"
    case .dictionary(let dictionary):
      line += "{"
      for (index, key) in dictionary.keys.sorted().enumerated() {
        if index > 0 { line += "," }
        Self.appendQuoted(key, to: &line)
        line += ":"
        Self.append(dictionary[key]!, to: &line)
      }
      line += "}"
    }
  }

  static func appendQuoted(_ text: String, to line: inout String) {
    line += "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": line += "\\\""
      case "\\": line += "\\\\"
      case "\n": line += "\\n"
      case "\r": line += "\\r"
      case "\t": line += "\\t"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: line.unicodeScalars.append(scalar)
      }
    }
    line += "\""
  }

  private static func timestamp() -> String {
    Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date())
  }

  private static func write(_ line: String) {
    var line = line
    line.withUTF8 { buffer in
      var offset = 0
      while offset < buffer.count {
        let written = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
      }
    }
  }
}

/// Installs the platform's log handler once per process.
public enum PlatformLogging {
  /// Adds the current trace's id (`trace_id`) to every log line written while handling a call.
  public static let traceMetadataProvider = Logger.MetadataProvider {
    guard let trace = TraceContext.current else { return [:] }
    return ["trace_id": .string(trace.traceID), "span_id": .string(trace.spanID)]
  }

  /// Bootstraps swift-log with JSON lines (or swift-log's text handler) at `level`.
  public static func bootstrap(format: ServiceConfiguration.LogFormat, level: Logger.Level) {
    LoggingSystem.bootstrap(
      { label, provider in
        switch format {
        case .json:
          return JSONLogHandler(label: label, level: level, metadataProvider: provider)
        case .text:
          var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
          handler.logLevel = level
          return handler
        }
      }, metadataProvider: Self.traceMetadataProvider)
  }
}
