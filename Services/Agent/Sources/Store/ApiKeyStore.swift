public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of agent_db.api_keys.
public struct ApiKeyStore: Sendable {
  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  static let columns =
    "id, user_id, name, key_prefix, permissions, rate_limit, status, expires_at, last_used_at, created_at"
  private typealias Row = (UUID, UUID, String, String, [String], Int, String, Date?, Date?, Date)

  private static func key(_ row: Row) -> ApiKey {
    ApiKey(
      id: row.0, userID: row.1, name: row.2, keyPrefix: row.3, permissions: row.4, rateLimit: row.5,
      status: ApiKey.Status(rawValue: row.6) ?? .inactive, expiresAt: row.7, lastUsedAt: row.8, createdAt: row.9)
  }

  private func keys(_ query: PostgresQuery) async throws -> [ApiKey] {
    try await self.database.query(query, logger: self.logger).decode(Row.self).map(Self.key)
  }

  /// Inserts a key unless the owner already has `maxActive` active ones; a repeated
  /// `requestID` of the same owner returns the key it made (`created` false).
  public func insert(
    owner: UUID, name: String, keyHash: String, keyPrefix: String, permissions: [String], rateLimit: Int,
    expiresAt: Date?, requestID: UUID?, maxActive: Int
  ) async throws -> (key: ApiKey, created: Bool)? {
    if let requestID,
      let earlier = try await self.keys(
        "SELECT \(unescaped: Self.columns) FROM api_keys WHERE request_id = \(requestID) AND user_id = \(owner)"
      ).first
    {
      return (earlier, false)
    }
    return try await self.database.withTransaction(logger: self.logger) { connection -> (key: ApiKey, created: Bool)? in
      // One owner's key creations take turns, so the quota holds under concurrent calls.
      _ = try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(owner.lowercasedString)))", logger: self.logger)
      let counted = try await connection.query(
        "SELECT count(*) FROM api_keys WHERE user_id = \(owner) AND status = 'active'", logger: self.logger)
      guard let count = try counted.first?.decode(Int.self), count < maxActive else { return nil }
      let rows = try await connection.query(
        """
        INSERT INTO api_keys (user_id, name, key_hash, key_prefix, permissions, rate_limit, expires_at, request_id)
        VALUES (\(owner), \(name), \(keyHash), \(keyPrefix), \(permissions), \(rateLimit), \(expiresAt), \(requestID))
        RETURNING \(unescaped: Self.columns)
        """, logger: self.logger)
      return try rows.decode(Row.self).first.map { (Self.key($0), true) }
    }
  }

  /// A page of the owner's keys, newest first, after `cursor`.
  public func list(owner: UUID, includeRevoked: Bool, after cursor: (Date, UUID)?, limit: Int) async throws -> (keys: [ApiKey], more: Bool, total: Int) {
    let total = try await self.database.query(
      "SELECT count(*) FROM api_keys WHERE user_id = \(owner) AND (\(includeRevoked) OR status <> 'revoked')", logger: self.logger
    ).first?.decode(Int.self) ?? 0
    let (after, afterID) = (cursor?.0, cursor?.1)
    var page = try await self.keys(
      """
      SELECT \(unescaped: Self.columns) FROM api_keys
      WHERE user_id = \(owner) AND (\(includeRevoked) OR status <> 'revoked') AND (\(after)::timestamptz IS NULL OR (created_at, id) < (\(after), \(afterID)))
      ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
      """)
    let more = page.count > limit
    if more { page.removeLast() }
    return (page, more, total)
  }

  /// Revokes the owner's key (idempotent); nil when the owner has no such key.
  /// - Returns: the key, and whether this call revoked it (false when it was revoked before).
  public func revoke(id: UUID, owner: UUID) async throws -> (key: ApiKey, revokedNow: Bool)? {
    let rows = try await self.database.query(
      """
      UPDATE api_keys SET status = 'revoked', revoked_at = coalesce(revoked_at, now())
      WHERE id = \(id) AND user_id = \(owner)
      RETURNING \(unescaped: Self.columns), revoked_at = now()
      """, logger: self.logger)
    guard let row = rows.first else { return nil }
    let r = try row.decode((UUID, UUID, String, String, [String], Int, String, Date?, Date?, Date, Bool).self)
    return (Self.key((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9)), r.10)
  }

  /// Revokes every key of a user (deactivation).
  public func revokeAll(owner: UUID) async throws -> Int {
    try await self.database.query(
      "UPDATE api_keys SET status = 'revoked', revoked_at = now() WHERE user_id = \(owner) AND status <> 'revoked' RETURNING id",
      logger: self.logger
    ).count
  }

  /// The key whose hash is `keyHash`; its `last_used_at` is brought up to date at most once a
  /// minute.
  public func find(keyHash: String) async throws -> ApiKey? {
    guard let key = try await self.keys("SELECT \(unescaped: Self.columns) FROM api_keys WHERE key_hash = \(keyHash)").first
    else { return nil }
    if key.status == .active, (key.lastUsedAt.map { Date().timeIntervalSince($0) >= 60 } ?? true) {
      _ = try await self.database.query(
        """
        UPDATE api_keys SET last_used_at = now()
        WHERE id = \(key.id) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
        """, logger: self.logger)
    }
    return key
  }
}
