public import Foundation
public import PlatformCore

/// A run of a workflow snapshot (workflow_db.workflow_executions).
public struct WorkflowExecution: Sendable, Equatable {
  /// pending → running → completed | failed | cancelled | timeout; a pending run may be
  /// cancelled or failed before it starts; resuming takes a failed, cancelled or timed-out run
  /// back to pending. Completed is final.
  public enum Status: String, Sendable, CaseIterable {
    case pending, running, completed, failed, cancelled, timeout

    public var isFinished: Bool { !(self == .pending || self == .running) }

    public func canMove(to next: Status) -> Bool {
      switch (self, next) {
      case (.pending, .running), (.pending, .failed), (.pending, .cancelled): true
      case (.running, .completed), (.running, .failed), (.running, .cancelled), (.running, .timeout): true
      // A runner that took over after a crash claims a running run again.
      case (.running, .running): true
      // ResumeWorkflowExecution.
      case (.failed, .pending), (.cancelled, .pending), (.timeout, .pending): true
      default: false
      }
    }

    /// The statuses a move to `self` may start from (for conditional updates).
    public var predecessors: [Status] { Status.allCases.filter { $0.canMove(to: self) } }
  }

  public var id: UUID
  public var workflowID: UUID
  public var snapshotID: UUID
  public var workflowVersion: Int
  public var userID: UUID
  public var status: Status
  public var input: JSONValue
  public var output: JSONValue?
  public var error: NodeFailure?
  public var currentNodeID: String?
  public var totalNodes: Int
  public var completedNodes: Int
  public var executionMilliseconds: Int?
  public var cost: Double?
  public var createdAt: Date
  public var startedAt: Date?
  public var completedAt: Date?
  public var resumeCount: Int
  public var scheduleID: String?
  public var deadline: Date?

  public static let maxInputBytes = 256 * 1024
}

/// Why a node (or a run) failed: a code, a message without secrets, and whether trying again
/// may help.
public struct NodeFailure: Error, Sendable, Equatable {
  public var code: String
  public var message: String
  public var retryable: Bool

  public init(code: String, message: String, retryable: Bool = false) {
    self.code = code
    self.message = message.truncated(toUTF8Bytes: 2000)
    self.retryable = retryable
  }

  public var json: JSONValue {
    .object(["code": .string(self.code), "message": .string(self.message), "retryable": .bool(self.retryable)])
  }

  public init?(stored: JSONValue?) {
    guard let object = stored?.objectValue, let code = object["code"]?.stringValue else { return nil }
    var retryable = false
    if case .bool(let value)? = object["retryable"] { retryable = value }
    self.init(code: code, message: object["message"]?.stringValue ?? "", retryable: retryable)
  }
}

/// One node's state within a run (workflow_db.workflow_node_executions).
public struct NodeExecution: Sendable, Equatable {
  /// pending → running → completed | failed | cancelled; pending → skipped (a branch not
  /// taken); running → pending (interrupted, to run again; or a retry's wait); failed and
  /// cancelled → pending on resume. Completed and skipped are final.
  public enum Status: String, Sendable, CaseIterable {
    case pending, running, completed, failed, skipped, cancelled

    /// Whether its outgoing edges are decided (the run can move past it).
    public var isSettled: Bool { self == .completed || self == .skipped }

    public func canMove(to next: Status) -> Bool {
      switch (self, next) {
      case (.pending, .running), (.pending, .skipped): true
      case (.running, .completed), (.running, .failed), (.running, .cancelled), (.running, .pending): true
      case (.failed, .pending), (.cancelled, .pending): true
      // Stopped with its service and not safe to run again (the run fails as interrupted).
      case (.cancelled, .failed): true
      default: false
      }
    }
  }

  public var nodeID: String
  public var nodeType: String
  public var status: Status
  public var attempts: Int
  public var input: JSONValue?
  public var output: JSONValue?
  public var error: NodeFailure?
  public var dataOverride: [String: JSONValue]?
  public var childExecutionID: String?
  public var cost: Double?
  public var startSequence: Int64?
  public var startedAt: Date?
  public var completedAt: Date?
  public var executionMilliseconds: Int?

  /// The output and size bounds of one node.
  public static let maxOutputBytes = 1 << 20
}

/// One entry of a run's history (workflow_db.workflow_execution_events).
public struct NodeEvent: Sendable, Equatable {
  public enum Kind: String, Sendable, CaseIterable {
    case started, retried, finished, failed, skipped, interrupted
  }

  public var id: Int64
  public var nodeID: String
  public var kind: Kind
  public var attempt: Int
  public var message: String?
  public var createdAt: Date
}
