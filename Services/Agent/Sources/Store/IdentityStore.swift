public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// The SQL of users, roles and refresh tokens in agent_db.
public struct IdentityStore: Sendable {
  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  static let userColumns =
    "id, email, name, roles, permissions, is_active, email_verified, last_login_at, created_at, updated_at, deleted_at"
  private typealias UserRow = (UUID, String, String, [String], [String], Bool, Bool, Date?, Date, Date, Date?)

  private static func user(_ row: UserRow) -> User {
    User(
      id: row.0, email: row.1, name: row.2, roles: row.3, permissions: row.4, isActive: row.5, emailVerified: row.6,
      lastLoginAt: row.7, createdAt: row.8, updatedAt: row.9, deletedAt: row.10)
  }

  private func users(_ query: PostgresQuery) async throws -> [User] {
    try await self.database.query(query, logger: self.logger).decode(UserRow.self).map(Self.user)
  }

  // MARK: - Users

  /// Inserts a user; nil when the email is taken (by anyone, any case: emails are stored
  /// lowercased). A repeated `requestID` returns the user the first request made.
  public func insertUser(
    email: EmailAddress, passwordHash: String, name: String, roles: [String], requestID: UUID?
  ) async throws -> (user: User, created: Bool)? {
    let inserted = try await self.users(
      """
      INSERT INTO users (email, password_hash, name, roles, request_id)
      VALUES (\(email.value), \(passwordHash), \(name), \(roles), \(requestID))
      ON CONFLICT DO NOTHING
      RETURNING \(unescaped: Self.userColumns)
      """)
    if let user = inserted.first { return (user, true) }
    if let requestID,
      let earlier = try await self.users(
        "SELECT \(unescaped: Self.userColumns) FROM users WHERE request_id = \(requestID) AND email = \(email.value)"
      ).first
    {
      return (earlier, false)
    }
    return nil
  }

  /// The user with `email` and its password hash (deleted users included: the caller decides).
  public func userForLogin(email: EmailAddress) async throws -> (user: User, passwordHash: String)? {
    let rows = try await self.database.query(
      "SELECT password_hash, \(unescaped: Self.userColumns) FROM users WHERE email = \(email.value)", logger: self.logger)
    guard let row = rows.first else { return nil }
    let r = try row.decode((String, UUID, String, String, [String], [String], Bool, Bool, Date?, Date, Date, Date?).self)
    return (Self.user((r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11)), r.0)
  }

  public func user(id: UUID) async throws -> User? {
    try await self.users("SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(id)").first
  }

  public func recordLogin(userID: UUID) async throws {
    _ = try await self.database.query("UPDATE users SET last_login_at = now() WHERE id = \(userID)", logger: self.logger)
  }

  /// Whether any active admin exists.
  public func hasActiveAdmin() async throws -> Bool {
    let rows = try await self.database.query(
      "SELECT 1 FROM users WHERE 'admin' = ANY(roles) AND is_active AND deleted_at IS NULL LIMIT 1", logger: self.logger)
    return !rows.isEmpty
  }

  /// The permissions of the roles named, as the roles table defines them.
  public func permissions(ofRoles names: [String]) async throws -> [String: [String]] {
    var permissions: [String: [String]] = [:]
    for row in try await self.database.query(
      "SELECT name, permissions::text FROM roles WHERE name = ANY(\(names))", logger: self.logger)
    {
      let (name, json) = try row.decode((String, String).self)
      if case .array(let values)? = try? JSONValue(jsonText: json) { permissions[name] = values.compactMap(\.stringValue) }
    }
    return permissions
  }

  // MARK: - Administration

  /// A page of users, newest first, after `cursor`.
  public func listUsers(
    query: String?, role: String?, includeInactive: Bool, after cursor: (Date, UUID)?, limit: Int
  ) async throws -> (users: [User], more: Bool, total: Int) {
    // The query is a substring, not a pattern: LIKE's wildcards in it match only themselves.
    let pattern = query.map { LikePattern.containing($0.lowercased()) }
    let (after, afterID) = (cursor?.0, cursor?.1)
    let total = try await self.database.query(
      """
      SELECT count(*) FROM users
      WHERE (\(includeInactive) OR (is_active AND deleted_at IS NULL))
        AND (\(pattern)::text IS NULL OR lower(email) LIKE \(pattern) OR lower(name) LIKE \(pattern))
        AND (\(role)::text IS NULL OR \(role) = ANY(roles))
      """, logger: self.logger
    ).first?.decode(Int.self) ?? 0
    var page = try await self.users(
      """
      SELECT \(unescaped: Self.userColumns) FROM users
      WHERE (\(includeInactive) OR (is_active AND deleted_at IS NULL))
        AND (\(pattern)::text IS NULL OR lower(email) LIKE \(pattern) OR lower(name) LIKE \(pattern))
        AND (\(role)::text IS NULL OR \(role) = ANY(roles))
        AND (\(after)::timestamptz IS NULL OR (created_at, id) < (\(after), \(afterID)))
      ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
      """)
    let more = page.count > limit
    if more { page.removeLast() }
    return (page, more, total)
  }

  public enum AdminChange: Sendable {
    case roles([String], permissions: [String], isActive: Bool?)
    case deactivate
  }

  public enum AdminOutcome: Sendable, Equatable {
    case updated(User, deactivated: Bool)
    case notFound
    /// The change would leave no active admin.
    case lastAdmin
    /// The change grants a role the roles table does not define.
    case unknownRole(String)
  }

  /// Applies an admin's change to a user in one transaction, refusing one that would leave no
  /// active admin (the admins are locked while it is decided, so two demotions cannot each
  /// leave the other as the last).
  public func apply(_ change: AdminChange, to userID: UUID) async throws -> AdminOutcome {
    try await self.database.withTransaction(logger: self.logger) { connection -> AdminOutcome in
      let admins = try await connection.query(
        "SELECT id FROM users WHERE 'admin' = ANY(roles) AND is_active AND deleted_at IS NULL ORDER BY id FOR UPDATE",
        logger: self.logger
      ).decode(UUID.self)
      let current = try await connection.query(
        "SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(userID) FOR UPDATE", logger: self.logger
      ).decode(UserRow.self).first.map(Self.user)
      guard let current else { return .notFound }
      if case .roles(let roles, _, _) = change {
        // Share-locked, so a role cannot be deleted between this check and the commit.
        let names: [String] = try await connection.query(
          "SELECT name FROM roles WHERE name = ANY(\(roles)) FOR SHARE", logger: self.logger
        ).decode(String.self)
        let known = Set(names)
        if let unknown = roles.first(where: { !known.contains($0) }) { return .unknownRole(unknown) }
      }
      let staysAdmin: Bool
      switch change {
      case .roles(let roles, _, let isActive): staysAdmin = roles.contains("admin") && (isActive ?? current.isActive)
      case .deactivate: staysAdmin = false
      }
      if admins.contains(userID) && !staysAdmin && admins.count == 1 { return .lastAdmin }
      let rows: [PostgresRow]
      switch change {
      case .roles(let roles, let permissions, let isActive):
        rows = try await connection.query(
          """
          UPDATE users SET roles = \(roles), permissions = \(permissions), is_active = coalesce(\(isActive), is_active), updated_at = now()
          WHERE id = \(userID) RETURNING \(unescaped: Self.userColumns)
          """, logger: self.logger)
      case .deactivate:
        rows = try await connection.query(
          "UPDATE users SET is_active = false, updated_at = now() WHERE id = \(userID) RETURNING \(unescaped: Self.userColumns)",
          logger: self.logger)
      }
      guard let updated = try rows.decode(UserRow.self).first.map(Self.user) else { return .notFound }
      let deactivated = current.isActive && !updated.isActive
      if deactivated {
        _ = try await connection.query(
          "UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = 'deactivated' WHERE user_id = \(userID) AND revoked_at IS NULL",
          logger: self.logger)
        _ = try await connection.query(
          "UPDATE api_keys SET status = 'revoked', revoked_at = now() WHERE user_id = \(userID) AND status <> 'revoked'",
          logger: self.logger)
      }
      return .updated(updated, deactivated: deactivated)
    }
  }

  /// A page of the audit log, newest first.
  public func auditEvents(
    subject: String?, action: String?, from start: Date?, until end: Date?, beforeID: Int64?, limit: Int
  ) async throws -> (events: [StoredAuditEvent], more: Bool) {
    var events = try await self.database.query(
      """
      SELECT id, trace_id, subject_id, resource, action, decision, detail::text, created_at FROM auth_audit_log
      WHERE (\(subject)::text IS NULL OR subject_id = \(subject)) AND (\(action)::text IS NULL OR action = \(action))
        AND (\(start)::timestamptz IS NULL OR created_at >= \(start)) AND (\(end)::timestamptz IS NULL OR created_at < \(end))
        AND id < \(beforeID ?? Int64.max)
      ORDER BY id DESC LIMIT \(limit + 1)
      """, logger: self.logger
    ).decode((Int64, String, String, String, String, String, String, Date).self).map { row in
      var detail: [String: String] = [:]
      if case .object(let members)? = try? JSONValue(jsonText: row.6) {
        for (name, value) in members { detail[name] = value.stringValue ?? value.jsonText }
      }
      return StoredAuditEvent(
        id: row.0, traceID: row.1, subject: row.2, resource: row.3, action: row.4, decision: row.5, detail: detail, createdAt: row.7)
    }
    let more = events.count > limit
    if more { events.removeLast() }
    return (events, more)
  }

  // MARK: - Refresh tokens

  public func insertRefreshToken(
    userID: UUID, familyID: UUID, sessionID: String, tokenHash: String, expiresAt: Date
  ) async throws {
    _ = try await self.database.query(
      """
      INSERT INTO refresh_tokens (user_id, family_id, session_id, token_hash, expires_at)
      VALUES (\(userID), \(familyID), \(sessionID), \(tokenHash), \(expiresAt))
      """, logger: self.logger)
  }

  /// What presenting a refresh token found.
  public enum Redemption: Sendable, Equatable {
    /// Valid: it is marked used; its successor goes into the same family.
    case redeemed(userID: UUID, familyID: UUID, sessionID: String)
    /// Used before: a replay. The whole family is now revoked.
    case reused(userID: UUID, familyID: UUID)
    /// Revoked (by a logout, a replay of its family, a deactivation) and never used.
    case revoked(userID: UUID)
    case expired
    case unknown
  }

  /// Redeems the token whose hash is `tokenHash`, in one transaction: a valid token is marked
  /// used and `successor` (its replacement) is stored in the same family; a token used before
  /// revokes its family.
  public func redeem(tokenHash: String, successorHash: String, successorExpiresAt: Date) async throws -> Redemption {
    try await self.database.withTransaction(logger: self.logger) { connection in
      let rows = try await connection.query(
        """
        SELECT user_id, family_id, session_id, used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at <= now()
        FROM refresh_tokens WHERE token_hash = \(tokenHash) FOR UPDATE
        """, logger: self.logger)
      guard let row = rows.first else { return .unknown }
      let (userID, familyID, sessionID, used, revoked, expired) = try row.decode((UUID, UUID, String, Bool, Bool, Bool).self)
      if used {
        _ = try await connection.query(
          """
          UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()), revoke_reason = coalesce(revoke_reason, 'reuse')
          WHERE family_id = \(familyID)
          """, logger: self.logger)
        return .reused(userID: userID, familyID: familyID)
      }
      if revoked { return .revoked(userID: userID) }
      if expired { return .expired }
      _ = try await connection.query(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = \(tokenHash)", logger: self.logger)
      _ = try await connection.query(
        """
        INSERT INTO refresh_tokens (user_id, family_id, session_id, token_hash, expires_at)
        VALUES (\(userID), \(familyID), \(sessionID), \(successorHash), \(successorExpiresAt))
        """, logger: self.logger)
      return .redeemed(userID: userID, familyID: familyID, sessionID: sessionID)
    }
  }

  /// Revokes every live refresh token of a session (logout).
  public func revokeSession(_ sessionID: String, userID: UUID, reason: String) async throws -> Int {
    try await self.database.query(
      """
      UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = \(reason)
      WHERE session_id = \(sessionID) AND user_id = \(userID) AND revoked_at IS NULL
      RETURNING id
      """, logger: self.logger
    ).count
  }
}
