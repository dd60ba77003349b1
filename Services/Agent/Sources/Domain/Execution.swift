public import Foundation
public import PlatformCore

/// An agent run (agent_db.executions).
public struct Execution: Sendable, Equatable {
  /// The lifecycle: pending → running → completed | failed | cancelled | timeout. A pending run
  /// may also be cancelled or failed before it starts; a finished one never changes again.
  public enum Status: String, Sendable, CaseIterable {
    case pending
    case running
    case completed
    case failed
    case cancelled
    case timeout

    public var isFinished: Bool {
      switch self {
      case .pending, .running: false
      case .completed, .failed, .cancelled, .timeout: true
      }
    }

    public func canMove(to next: Status) -> Bool {
      switch (self, next) {
      case (.pending, .running), (.pending, .failed), (.pending, .cancelled): true
      case (.running, .completed), (.running, .failed), (.running, .cancelled), (.running, .timeout): true
      default: false
      }
    }

    /// The statuses a move to `self` may start from (for conditional updates).
    public var predecessors: [Status] { Status.allCases.filter { $0.canMove(to: self) } }
  }

  /// Why an execution did not complete (executions.error): a code and a message without
  /// secrets; `plugin` names the plugin that failed, if one did.
  public struct Failure: Sendable, Equatable, Error {
    public var code: String
    public var message: String
    public var details: [String: String]

    public init(code: String, message: String, details: [String: String] = [:]) {
      self.code = code
      self.message = message.truncated(toUTF8Bytes: 2000)
      self.details = details
    }

    public var json: JSONValue {
      .object(["code": .string(self.code), "message": .string(self.message), "details": .object(self.details.mapValues { .string($0) })])
    }

    public init?(stored: JSONValue?) {
      guard let object = stored?.objectValue, let code = object["code"]?.stringValue else { return nil }
      var details: [String: String] = [:]
      for (key, value) in object["details"]?.objectValue ?? [:] { details[key] = value.stringValue }
      self.init(code: code, message: object["message"]?.stringValue ?? "", details: details)
    }
  }

  public var id: UUID
  public var agentID: UUID
  public var userID: UUID
  public var workflowID: UUID?
  public var status: Status
  public var progress: Int
  public var input: JSONValue
  public var output: JSONValue?
  public var error: Failure?
  public var executionMilliseconds: Int?
  public var tokensUsed: Int?
  public var cost: Double?
  public var createdAt: Date
  public var startedAt: Date?
  public var completedAt: Date?
  public var retryCount: Int
  public var maxRetries: Int
  public var parentID: UUID?
  /// Where its events go and which (ExecutionCallbacks); nil without a callback.
  public var callbackURL: String?
  public var callbackEvents: [String]?

  public static let maxInputBytes = 256 * 1024
  public static let maxMessageBytes = 64 * 1024
  public static let defaultMaxRetries = 3
}

/// One log line of an execution (agent_db.execution_logs).
public struct ExecutionLog: Sendable, Equatable {
  public enum Level: String, Sendable, CaseIterable, Comparable {
    case debug, info, warning, error

    var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rank < rhs.rank }
  }

  public var id: Int64
  public var executionID: UUID
  public var level: Level
  public var message: String
  public var metadata: JSONValue
  public var createdAt: Date

  public static let maxMessageBytes = 4096
}

/// A file attached to an execution for its file_upload plugin (agent_db.execution_files).
public struct ExecutionFile: Sendable, Equatable {
  public var name: String
  public var contentType: String
  public var content: Data

  public init(name: String, contentType: String, content: Data) {
    self.name = name
    self.contentType = contentType
    self.content = content
  }

  public static let maxFiles = 20
  public static let maxTotalBytes = 2 << 20
  public static let maxNameBytes = 128

  /// The files, checked: at most `maxFiles` (and the plugin's `limit`), `maxTotalBytes` together,
  /// names the sandbox takes (no path, no leading dot, no control characters) and unique; an
  /// empty content type is application/octet-stream.
  public static func checked(_ files: [ExecutionFile], limit: Int) throws(AgentError) -> [ExecutionFile] {
    guard files.count <= min(limit, Self.maxFiles) else {
      throw .invalidArgument(field: "files", reason: "at most \(min(limit, Self.maxFiles)) files (the agent's file_upload max_files)")
    }
    guard files.reduce(0, { $0 + $1.content.count }) <= Self.maxTotalBytes else {
      throw .invalidArgument(field: "files", reason: "at most \(Self.maxTotalBytes) bytes together")
    }
    var names = Set<String>()
    return try files.map { file throws(AgentError) in
      let name = file.name
      guard (1...Self.maxNameBytes).contains(name.utf8.count), !name.hasPrefix("."), !name.contains("/"), !name.contains("\\"),
        !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
      else {
        throw .invalidArgument(field: "files.name", reason: "must be 1 to \(Self.maxNameBytes) bytes without '/', '\\', a leading '.' or control characters")
      }
      guard names.insert(name).inserted else { throw .invalidArgument(field: "files.name", reason: "\(name) is attached twice") }
      let type = file.contentType.isEmpty ? "application/octet-stream" : file.contentType
      guard type.utf8.count <= 100, type.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F || $0 == " " }) else {
        throw .invalidArgument(field: "files.content_type", reason: "must be up to 100 printable ASCII characters")
      }
      return ExecutionFile(name: name, contentType: type, content: file.content)
    }
  }
}

extension ExecutionLog {
  /// A line not yet written: its text and metadata cut to their caps, and when it was logged.
  public struct Pending: Sendable, Equatable {
    public var level: Level
    public var message: String
    /// JSON text, at most 8 KiB (else `{"truncated": true}`).
    public var metadata: String
    public var at: Date

    public init(_ level: Level, _ message: String, metadata: [String: JSONValue] = [:], at: Date = Date()) {
      self.level = level
      self.message = message.truncated(toUTF8Bytes: ExecutionLog.maxMessageBytes)
      let text = JSONValue.object(metadata).jsonText
      self.metadata = text.utf8.count > 8192 ? #"{"truncated":true}"# : text
      self.at = at
    }
  }
}
