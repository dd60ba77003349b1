public import Foundation

/// One run of code (code_db.code_executions) as the service knows it.
public struct Execution: Sendable, Equatable {
  public enum Status: String, Sendable, CaseIterable {
    case pending, running, completed, failed, timeout, cancelled

    public var isFinished: Bool { self != .pending && self != .running }

    /// The lifecycle: pending → running → a finish; pending may also finish at once (not run: a
    /// blocked program, a cancelled wait, an interrupted service). A finished run never changes.
    public func canMove(to next: Status) -> Bool {
      switch (self, next) {
      case (.pending, .running): true
      case (.pending, .failed), (.pending, .cancelled): true
      case (.running, .completed), (.running, .failed), (.running, .timeout), (.running, .cancelled): true
      default: false
      }
    }
  }

  /// Why a run ended (TerminationReason).
  public enum Reason: String, Sendable {
    case exited = "exited"
    case memoryLimit = "memory_limit"
    case outputLimit = "output_limit"
    case cpuLimit = "cpu_limit"
    case timeLimit = "time_limit"
    case signal = "signal"
    case deniedSyscall = "denied_syscall"
    case compileError = "compile_error"
    case securityBlocked = "security_blocked"
    case cancelled = "cancelled"
    case sandboxError = "sandbox_error"
    case interrupted = "interrupted"
  }

  public struct Limits: Sendable, Equatable, Codable {
    public var timeoutMilliseconds: Int
    public var memoryMegabytes: Int
    public var cpuMillis: Int
    public var maxOutputBytes: Int

    public static let defaults = Limits(timeoutMilliseconds: 10_000, memoryMegabytes: 256, cpuMillis: 1000, maxOutputBytes: 1 << 20)

    /// Zero fields take the defaults; INVALID_ARGUMENT naming `limits.<field>` beyond the maxima.
    public static func checked(timeout: Int32, memory: Int32, cpu: Int32, output: Int32) throws(ExecutionError) -> Limits {
      func pick(_ value: Int32, _ field: String, _ range: ClosedRange<Int>, _ fallback: Int) throws(ExecutionError) -> Int {
        if value == 0 { return fallback }
        guard range.contains(Int(value)) else { throw .invalidArgument(field: "limits.\(field)", reason: "must be \(range.lowerBound) to \(range.upperBound), or 0 for \(fallback)") }
        return Int(value)
      }
      return Limits(
        timeoutMilliseconds: try pick(timeout, "timeout_ms", 100...60_000, Self.defaults.timeoutMilliseconds),
        memoryMegabytes: try pick(memory, "memory_mb", 32...1024, Self.defaults.memoryMegabytes),
        cpuMillis: try pick(cpu, "cpu_millis", 100...2000, Self.defaults.cpuMillis),
        maxOutputBytes: try pick(output, "max_output_bytes", 1...(1 << 20), Self.defaults.maxOutputBytes))
    }

    enum CodingKeys: String, CodingKey {
      case timeoutMilliseconds = "timeout_ms"
      case memoryMegabytes = "memory_mb"
      case cpuMillis = "cpu_millis"
      case maxOutputBytes = "max_output_bytes"
    }
  }

  public struct OutputFile: Sendable, Equatable {
    public var name: String
    public var contentType: String
    public var size: Int
    /// Empty in listings.
    public var content: [UInt8]
  }

  public var id: UUID
  public var userID: UUID
  public var agentID: UUID?
  public var language: Language
  public var code: String
  public var status: Status
  public var slot: String?
  public var stdout: String = ""
  public var stderr: String = ""
  public var exitCode: Int?
  public var signal: Int?
  public var stdoutTruncated = false
  public var stderrTruncated = false
  public var limits: Limits
  public var typeCheck: Bool
  public var executionMilliseconds: Int?
  public var memoryMegabytes: Int?
  public var cpuPercent: Double?
  public var securityScore: Int?
  public var findings: [SecurityFinding] = []
  public var reason: Reason?
  public var errorMessage: String?
  public var outputs: [OutputFile] = []
  public var outputsTruncated = false
  public var createdAt: Date
  public var startedAt: Date?
  public var completedAt: Date?
}

public enum ExecutionError: Error, Equatable, Sendable {
  case invalidArgument(field: String, reason: String)
  case notFound
  case busy(String)
  case unavailable(String)
}
