public import Foundation
public import Logging
public import PlatformRedis
internal import NIOCore
internal import PlatformCore

/// Execution status and result in Redis (seed 002 §4.2.3): `execution:{id}:status` (the status
/// name) and, once finished, `execution:{id}:result` (the whole execution as JSON), each for an
/// hour, written through at every change. GetExecution answers a finished execution from here.
/// Redis trouble is logged and ignored: the database stays the truth.
public struct ExecutionCache: Sendable {
  let redis: RedisClient
  let logger: Logger
  public static let timeToLive = Duration.seconds(3600)

  public init(redis: RedisClient, logger: Logger) {
    self.redis = redis
    self.logger = logger
  }

  static func statusKey(_ id: UUID) -> String { "execution:\(id.lowercasedString):status" }
  static func resultKey(_ id: UUID) -> String { "execution:\(id.lowercasedString):result" }

  public func write(_ execution: Execution) async {
    do {
      let ttl = RedisArgument.integer(RedisClient.milliseconds(Self.timeToLive))
      var commands = [RedisCommand("SET", .string(Self.statusKey(execution.id)), .string(execution.status.rawValue), "PX", ttl)]
      if execution.status.isFinished {
        commands.append(RedisCommand("SET", .string(Self.resultKey(execution.id)), .string(Self.json(execution).jsonText), "PX", ttl))
      }
      // One round trip for both.
      for reply in try await self.redis.pipeline(commands) {
        if case .error(let message) = reply { throw RedisError(.server, message) }
      }
    } catch {
      self.logger.debug("Execution status not cached", metadata: ["execution_id": "\(execution.id)", "error": "\(error)"])
    }
  }

  static func modelOutputKey(_ id: UUID) -> String { "execution:\(id.lowercasedString):model_output" }

  /// The most pieces of model output one execution keeps for its watchers.
  static let maxModelOutputPieces = 10_000

  /// Appends a piece of the model's streamed answer for watchers (a list, an hour), each piece
  /// `round:text`. Past `maxModelOutputPieces` the rest is dropped: the output has the answer.
  public func appendModelOutput(_ id: UUID, round: Int, text: String) async {
    let key = Self.modelOutputKey(id)
    do {
      let replies = try await self.redis.pipeline([
        RedisCommand("RPUSH", .string(key), .string("\(round):\(text)")),
        RedisCommand("PEXPIRE", .string(key), .integer(RedisClient.milliseconds(Self.timeToLive))),
      ])
      if case .integer(let length)? = replies.first, length > Self.maxModelOutputPieces {
        _ = try await self.redis.send(RedisCommand("LTRIM", .string(key), 0, .integer(Int64(Self.maxModelOutputPieces - 1))))
      }
    } catch {
      self.logger.debug("Model output not published", metadata: ["execution_id": "\(id)", "error": "\(error)"])
    }
  }

  /// The pieces of model output from index `start` on (at most 500 at a time).
  public func modelOutput(_ id: UUID, from start: Int) async -> [(round: Int, text: String)] {
    guard
      case .array(let items?)? = try? await self.redis.send(
        RedisCommand("LRANGE", .string(Self.modelOutputKey(id)), .integer(Int64(start)), .integer(Int64(start + 499))))
    else { return [] }
    return items.compactMap { item in
      guard let piece = item.string, let colon = piece.firstIndex(of: ":"), let round = Int(piece[..<colon]) else { return nil }
      return (round, String(piece[piece.index(after: colon)...]))
    }
  }

  /// The finished execution, when Redis has it.
  public func finished(_ id: UUID) async -> Execution? {
    guard let buffer = try? await self.redis.get(Self.resultKey(id)), let value = try? JSONValue(jsonText: String(buffer: buffer)) else {
      return nil
    }
    return Self.execution(value)
  }

  static func json(_ e: Execution) -> JSONValue {
    // Seconds since 2001 as JSON's shortest round-trip decimal: the same Date comes back.
    func date(_ date: Date?) -> JSONValue { date.map { .number($0.timeIntervalSinceReferenceDate) } ?? .null }
    func number(_ value: Int?) -> JSONValue { value.map { .number(Double($0)) } ?? .null }
    return .object([
      "id": .string(e.id.lowercasedString), "agent_id": .string(e.agentID.lowercasedString), "user_id": .string(e.userID.lowercasedString),
      "workflow_id": e.workflowID.map { .string($0.lowercasedString) } ?? .null, "status": .string(e.status.rawValue),
      "progress": .number(Double(e.progress)), "input": e.input, "output": e.output ?? .null, "error": e.error?.json ?? .null,
      "execution_time_ms": number(e.executionMilliseconds), "tokens_used": number(e.tokensUsed), "cost": e.cost.map { .number($0) } ?? .null,
      "created_at": date(e.createdAt), "started_at": date(e.startedAt), "completed_at": date(e.completedAt),
      "retry_count": .number(Double(e.retryCount)), "max_retries": .number(Double(e.maxRetries)),
      "parent_execution_id": e.parentID.map { .string($0.lowercasedString) } ?? .null,
      "callback_url": e.callbackURL.map { .string($0) } ?? .null,
      "callback_events": e.callbackEvents.map { .array($0.map { .string($0) }) } ?? .null,
    ])
  }

  static func execution(_ value: JSONValue) -> Execution? {
    guard let o = value.objectValue, let id = o["id"]?.stringValue.flatMap(UUID.init(strict:)),
      let agentID = o["agent_id"]?.stringValue.flatMap(UUID.init(strict:)), let userID = o["user_id"]?.stringValue.flatMap(UUID.init(strict:)),
      let status = o["status"]?.stringValue.flatMap(Execution.Status.init(rawValue:)), let created = Self.date(o["created_at"])
    else { return nil }
    func int(_ key: String) -> Int? { if case .number(let n)? = o[key] { Int(n) } else { nil } }
    return Execution(
      id: id, agentID: agentID, userID: userID, workflowID: o["workflow_id"]?.stringValue.flatMap(UUID.init(strict:)), status: status,
      progress: int("progress") ?? 0, input: o["input"] ?? .object([:]), output: o["output"] == .null ? nil : o["output"],
      error: Execution.Failure(stored: o["error"]), executionMilliseconds: int("execution_time_ms"), tokensUsed: int("tokens_used"),
      cost: { if case .number(let n)? = o["cost"] { n } else { nil } }(), createdAt: created, startedAt: Self.date(o["started_at"]),
      completedAt: Self.date(o["completed_at"]), retryCount: int("retry_count") ?? 0, maxRetries: int("max_retries") ?? 3,
      parentID: o["parent_execution_id"]?.stringValue.flatMap(UUID.init(strict:)), callbackURL: o["callback_url"]?.stringValue,
      callbackEvents: { if case .array(let events)? = o["callback_events"] { events.compactMap(\.stringValue) } else { nil } }())
  }

  static func date(_ value: JSONValue?) -> Date? {
    if case .number(let seconds)? = value { return Date(timeIntervalSinceReferenceDate: seconds) }
    return nil
  }
}
