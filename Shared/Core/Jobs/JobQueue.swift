public import Foundation
public import Logging
internal import PostgresNIO

/// What a service's handlers use to start, look at and cancel background work in its own
/// database; a `JobWorker` (run by the platform server for the service's job handlers) does it.
public struct JobQueue: Sendable {
  /// The largest payload, as JSON.
  public static let maxPayloadBytes = 1 << 20

  private let store: JobStore

  public init(database: Database, logger: Logger) {
    self.store = JobStore(database: database, logger: logger)
  }

  /// Adds a job of `type` with `payload` (a JSON document); a dedup key already used returns
  /// the job that key made.
  /// - Returns: the job, and whether this call added it.
  /// - Throws: `JobError.invalid` for a bad type, payload or option.
  @discardableResult
  public func enqueue(_ type: String, payload: JSONValue = .object([:]), options: JobOptions = JobOptions()) async throws
    -> (job: Job, added: Bool)
  {
    let options = try Self.checked(type, payload: payload, options: options)
    return try await self.store.enqueue(type: type, payload: payload.jsonText, options: options)
  }

  /// `enqueue` inside the caller's transaction on `connection`, so that the job exists exactly
  /// when the caller's own writes do (the record it works on and the job that works on it are
  /// never one without the other).
  @discardableResult
  public func enqueue(
    _ type: String, payload: JSONValue = .object([:]), options: JobOptions = JobOptions(), in connection: DatabaseConnection
  ) async throws -> (job: Job, added: Bool) {
    let options = try Self.checked(type, payload: payload, options: options)
    return try await self.store.enqueue(type: type, payload: payload.jsonText, options: options, in: connection)
  }

  /// The options with the current trace id, after checking type, payload and options.
  private static func checked(_ type: String, payload: JSONValue, options: JobOptions) throws -> JobOptions {
    guard (1...100).contains(type.utf8.count), !type.unicodeScalars.contains("\0") else {
      throw JobError.invalid("type must be 1–100 bytes without NUL")
    }
    guard (0...100).contains(options.priority) else { throw JobError.invalid("priority must be 0–100") }
    guard (1...100).contains(options.maxAttempts) else { throw JobError.invalid("max attempts must be 1–100") }
    if let key = options.dedupKey, key.isEmpty || key.utf8.count > 200 || key.unicodeScalars.contains("\0") {
      throw JobError.invalid("a dedup key must be 1–200 bytes without NUL")
    }
    if let problem = payload.problem(maxDepth: NestingLimit.maximumDepth, maxBytes: Self.maxPayloadBytes) {
      throw JobError.invalid("payload: \(problem)")
    }
    var options = options
    if options.traceID == nil { options.traceID = TraceContext.current?.traceID }
    return options
  }

  /// The job with `id`, nil when there is none.
  public func job(_ id: UUID) async throws -> Job? {
    try await self.store.find(id: id)
  }

  /// Cancels job `id`: a queued job at once; a running one stops within a second.
  /// - Returns: the job after the request (still `running` until its worker has stopped it).
  /// - Throws: `JobError.notFound`.
  @discardableResult
  public func cancel(_ id: UUID) async throws -> Job {
    try await self.store.cancel(id: id)
  }
}
