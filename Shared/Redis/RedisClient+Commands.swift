public import NIOCore

/// The commands the platform uses, typed. Anything else goes through `send(_:)`.
extension RedisClient {
  /// When `set` writes.
  public enum SetCondition: Sendable {
    case always
    /// `NX`: only when the key does not exist.
    case ifAbsent
    /// `XX`: only when the key exists.
    case ifPresent
  }

  /// `PING`.
  public func ping() async throws {
    _ = try await self.send(RedisCommand("PING"))
  }

  /// `GET key`: the value, or nil when the key does not exist.
  public func get(_ key: String) async throws -> ByteBuffer? {
    let reply = try await self.send(RedisCommand("GET", .string(key)))
    guard case .bulkString(let value) = reply else { throw Self.unexpected(reply, to: "GET") }
    return value
  }

  /// `SET key value [PX ms] [NX|XX]`.
  /// - Returns: whether the value was written (false when the condition did not hold).
  @discardableResult
  public func set(
    _ key: String, to value: RedisArgument, expiration: Duration? = nil, condition: SetCondition = .always
  ) async throws -> Bool {
    var arguments: [RedisArgument] = [.string(key), value]
    if let expiration { arguments += ["PX", .integer(Self.milliseconds(expiration))] }
    switch condition {
    case .always: break
    case .ifAbsent: arguments.append("NX")
    case .ifPresent: arguments.append("XX")
    }
    let reply = try await self.send(RedisCommand("SET", arguments))
    switch reply {
    case .simpleString: return true
    case .bulkString(nil): return false
    default: throw Self.unexpected(reply, to: "SET")
    }
  }

  /// `DEL key…`: how many of the keys existed.
  @discardableResult
  public func delete(_ keys: [String]) async throws -> Int {
    try await self.integer(RedisCommand("DEL", keys.map { .string($0) }))
  }

  /// `EXISTS key…`: how many of the keys exist.
  public func exists(_ keys: [String]) async throws -> Int {
    try await self.integer(RedisCommand("EXISTS", keys.map { .string($0) }))
  }

  /// `PEXPIRE key ms`: whether the key exists (and now expires).
  @discardableResult
  public func expire(_ key: String, after duration: Duration) async throws -> Bool {
    try await self.integer(RedisCommand("PEXPIRE", .string(key), .integer(Self.milliseconds(duration)))) == 1
  }

  /// `PTTL key`: the time left, nil when the key does not exist or has no expiry.
  public func timeToLive(_ key: String) async throws -> Duration? {
    let milliseconds = try await self.integer(RedisCommand("PTTL", .string(key)))
    return milliseconds >= 0 ? .milliseconds(milliseconds) : nil
  }

  /// `INCRBY key n`: the new value.
  @discardableResult
  public func increment(_ key: String, by amount: Int64 = 1) async throws -> Int64 {
    Int64(try await self.integer(RedisCommand("INCRBY", .string(key), .integer(amount))))
  }

  /// `HSET key field value…`: how many fields were added.
  @discardableResult
  public func hashSet(_ key: String, fields: [(String, RedisArgument)]) async throws -> Int {
    var arguments: [RedisArgument] = [.string(key)]
    for (field, value) in fields { arguments += [.string(field), value] }
    return try await self.integer(RedisCommand("HSET", arguments))
  }

  /// `HGETALL key`: the fields and values; empty when the key does not exist.
  public func hashGetAll(_ key: String) async throws -> [String: ByteBuffer] {
    let reply = try await self.send(RedisCommand("HGETALL", .string(key)))
    guard let elements = reply.elements, elements.count % 2 == 0 else { throw Self.unexpected(reply, to: "HGETALL") }
    var fields: [String: ByteBuffer] = [:]
    for index in stride(from: 0, to: elements.count, by: 2) {
      guard let field = elements[index].string, let value = elements[index + 1].bytes else {
        throw Self.unexpected(reply, to: "HGETALL")
      }
      fields[field] = value
    }
    return fields
  }

  /// `PUBLISH channel message`: how many subscribers received it.
  @discardableResult
  public func publish(_ message: RedisArgument, to channel: String) async throws -> Int {
    try await self.integer(RedisCommand("PUBLISH", .string(channel), message))
  }

  private func integer(_ command: RedisCommand) async throws -> Int {
    let reply = try await self.send(command)
    guard case .integer(let value) = reply else { throw Self.unexpected(reply, to: command.name) }
    return Int(value)
  }

  static func unexpected(_ reply: RESPValue, to command: String) -> RedisError {
    let kind: String
    switch reply {
    case .simpleString: kind = "a status"
    case .error: kind = "an error"
    case .integer: kind = "an integer"
    case .bulkString: kind = "a bulk string"
    case .array: kind = "an array"
    }
    return RedisError(.unexpectedReply, "\(command) answered with \(kind)")
  }

  public static func milliseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
  }
}
