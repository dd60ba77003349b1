public import Foundation
internal import NIOCore
public import PlatformRedis

/// A signed-in user's session (seed 002 §4.2.1): `session:{user_id}`, a hash with a sliding
/// expiry, so a session nobody used for `idleTimeout` is gone.
public struct Session: Sendable, Equatable {
  public var userID: UUID
  public var email: String
  public var roles: [String]
  public var permissions: [String]
  /// When the session was last used (whole seconds).
  public var lastActive: Date
  /// The id access tokens of this session carry (`sid`).
  public var sessionID: String?

  public init(
    userID: UUID, email: String, roles: [String], permissions: [String], lastActive: Date = Date(), sessionID: String? = nil
  ) {
    self.userID = userID
    self.email = email
    self.roles = roles
    self.permissions = permissions
    self.sessionID = sessionID
    self.lastActive = Date(timeIntervalSince1970: lastActive.timeIntervalSince1970.rounded(.down))
  }
}

/// Creates, touches and revokes sessions in Redis.
public struct SessionStore: Sendable {
  private let redis: RedisClient
  /// How long an unused session lives (default 15 minutes).
  public let idleTimeout: Duration

  /// Replaces the hash and sets its expiry in one step. KEYS[1]; ARGV: ttl ms, then field/value pairs.
  static let create = RedisScript(
    """
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return 1
    """)

  /// Reads the session and slides its expiry if it exists. KEYS[1]; ARGV: ttl ms, now (s).
  static let touch = RedisScript(
    """
    if redis.call('EXISTS', KEYS[1]) == 0 then return false end
    redis.call('HSET', KEYS[1], 'last_active', ARGV[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return redis.call('HGETALL', KEYS[1])
    """)

  /// Whether `session_id` of KEYS[1] is ARGV[2]; if so its expiry slides to ARGV[1] ms.
  static let check = RedisScript(
    """
    if redis.call('HGET', KEYS[1], 'session_id') ~= ARGV[2] then return 0 end
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return 1
    """)

  /// Deletes KEYS[1] if its `session_id` is ARGV[1].
  static let revokeSession = RedisScript(
    """
    if redis.call('HGET', KEYS[1], 'session_id') ~= ARGV[1] then return 0 end
    return redis.call('DEL', KEYS[1])
    """)

  /// Resumes session ARGV[2] of KEYS[1]: recreated (fields ARGV[3...]) when the hash expired,
  /// slid when it is that session, refused (0) when another session replaced it.
  static let resume = RedisScript(
    """
    local current = redis.call('HGET', KEYS[1], 'session_id')
    if current and current ~= ARGV[2] then return 0 end
    if not current then
      redis.call('DEL', KEYS[1])
      redis.call('HSET', KEYS[1], unpack(ARGV, 3))
    end
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return 1
    """)

  public init(redis: RedisClient, idleTimeout: Duration = .seconds(15 * 60)) {
    self.redis = redis
    self.idleTimeout = idleTimeout
  }

  static func key(_ userID: UUID) -> String { "session:\(userID.lowercasedString)" }

  /// Starts (or replaces) `session`.
  public func create(_ session: Session) async throws {
    _ = try await self.redis.evaluate(
      Self.create, keys: [Self.key(session.userID)],
      arguments: [.integer(RedisClient.milliseconds(self.idleTimeout))] + Self.fields(session))
  }

  /// The session of `userID`, its expiry slid forward; nil when there is none (expired,
  /// revoked, never created).
  public func touch(_ userID: UUID, now: Date = Date()) async throws -> Session? {
    let reply = try await self.redis.evaluate(
      Self.touch, keys: [Self.key(userID)],
      arguments: [.integer(RedisClient.milliseconds(self.idleTimeout)), .integer(Int64(now.timeIntervalSince1970))])
    guard let elements = reply.elements else { return nil }
    var fields: [String: String] = [:]
    for index in stride(from: 0, to: elements.count - 1, by: 2) {
      if let name = elements[index].string, let value = elements[index + 1].string { fields[name] = value }
    }
    guard let email = fields["email"], let roles = fields["roles"].flatMap(Self.strings),
      let permissions = fields["permissions"].flatMap(Self.strings), let lastActive = fields["last_active"].flatMap(Double.init)
    else { throw RedisError(.unexpectedReply, "session:\(userID) is not a session hash") }
    return Session(
      userID: userID, email: email, roles: roles, permissions: permissions,
      lastActive: Date(timeIntervalSince1970: lastActive), sessionID: fields["session_id"])
  }

  /// Continues `session` (which must have a session id) after a token refresh: it is recreated
  /// if it expired from idleness, and refused when a newer sign-in replaced it.
  /// - Returns: false when another session is the user's live one.
  public func resume(_ session: Session) async throws -> Bool {
    guard let sessionID = session.sessionID else { return false }
    let reply = try await self.redis.evaluate(
      Self.resume, keys: [Self.key(session.userID)],
      arguments: [.integer(RedisClient.milliseconds(self.idleTimeout)), .string(sessionID)] + Self.fields(session))
    return reply == .integer(1)
  }

  private static func fields(_ session: Session) -> [RedisArgument] {
    [
      "user_id", .string(session.userID.lowercasedString),
      "email", .string(session.email),
      "roles", .string(Self.json(session.roles)),
      "permissions", .string(Self.json(session.permissions)),
      "last_active", .integer(Int64(session.lastActive.timeIntervalSince1970)),
    ] + (session.sessionID.map { ["session_id", .string($0)] } ?? [])
  }

  /// Whether `sessionID` is the live session of `userID`; a live one's expiry slides forward.
  /// - Throws: `RedisError` when Redis cannot answer.
  public func isLive(_ userID: UUID, sessionID: String) async throws -> Bool {
    let reply = try await self.redis.evaluate(
      Self.check, keys: [Self.key(userID)],
      arguments: [.integer(RedisClient.milliseconds(self.idleTimeout)), .string(sessionID)])
    return reply == .integer(1)
  }

  /// Ends the session of `userID`.
  /// - Returns: whether there was one.
  @discardableResult
  public func revoke(_ userID: UUID) async throws -> Bool {
    try await self.redis.delete([Self.key(userID)]) == 1
  }

  /// Ends session `sessionID` of `userID`, leaving a newer one alone; any session when nil.
  /// - Returns: whether a session ended.
  @discardableResult
  public func revoke(_ userID: UUID, sessionID: String?) async throws -> Bool {
    guard let sessionID else { return try await self.revoke(userID) }
    return try await self.redis.evaluate(Self.revokeSession, keys: [Self.key(userID)], arguments: [.string(sessionID)]) == .integer(1)
  }

  private static func json(_ strings: [String]) -> String {
    (try? String(decoding: JSONEncoder().encode(strings), as: UTF8.self)) ?? "[]"
  }

  private static func strings(_ text: String) -> [String]? {
    try? JSONDecoder().decode([String].self, from: Data(text.utf8))
  }
}
