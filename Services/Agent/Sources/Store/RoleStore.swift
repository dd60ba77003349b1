public import Foundation
public import Logging
public import PlatformCore
internal import PostgresNIO

/// A role as agent_db.roles holds it.
public struct RoleDefinition: Sendable, Equatable {
  public var name: String
  public var description: String
  public var permissions: [String]
  public var builtin: Bool
  /// Users (active or not) holding the role.
  public var userCount: Int
  public var createdAt: Date
  public var updatedAt: Date
}

/// The SQL of roles in agent_db.
public struct RoleStore: Sendable {
  private let database: Database
  private let logger: Logger

  public init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  private static let columns = """
    r.name, coalesce(r.description, ''), r.permissions::text, r.builtin,
    (SELECT count(*) FROM users u WHERE r.name = ANY(u.roles))::int8, r.created_at, r.updated_at
    """

  private static func role(_ row: PostgresRow) throws -> RoleDefinition {
    let r = try row.decode((String, String, String, Bool, Int, Date, Date).self)
    var permissions: [String] = []
    if case .array(let values)? = try? JSONValue(jsonText: r.2) { permissions = values.compactMap(\.stringValue) }
    return RoleDefinition(
      name: r.0, description: r.1, permissions: permissions, builtin: r.3, userCount: r.4, createdAt: r.5, updatedAt: r.6)
  }

  private static func json(_ permissions: [String]) -> String {
    JSONValue.array(permissions.map(JSONValue.string)).jsonText
  }

  /// Every role, the built-in ones first, then by name.
  public func list() async throws -> [RoleDefinition] {
    try await self.database.query(
      "SELECT \(unescaped: Self.columns) FROM roles r ORDER BY r.builtin DESC, r.name", logger: self.logger
    ).map(Self.role)
  }

  public enum InsertOutcome: Sendable, Equatable {
    case created(RoleDefinition)
    case exists
    case quota
  }

  /// Inserts a role unless one of that name exists or `maxRoles` do (roles are locked against
  /// other inserts while counted, so concurrent creations cannot pass the cap together).
  public func insert(name: String, description: String, permissions: [String], maxRoles: Int) async throws -> InsertOutcome {
    try await self.database.withTransaction(logger: self.logger) { connection in
      _ = try await connection.query("LOCK TABLE roles IN SHARE ROW EXCLUSIVE MODE", logger: self.logger)
      let count = try await connection.query("SELECT count(*) FROM roles", logger: self.logger).first?.decode(Int.self) ?? 0
      if try await !connection.query("SELECT 1 FROM roles WHERE name = \(name)", logger: self.logger).isEmpty { return .exists }
      guard count < maxRoles else { return .quota }
      let rows = try await connection.query(
        """
        WITH r AS (
          INSERT INTO roles (name, description, permissions) VALUES (\(name), \(description), \(Self.json(permissions))::jsonb)
          RETURNING *)
        SELECT \(unescaped: Self.columns) FROM r
        """, logger: self.logger)
      return try rows.first.map { .created(try Self.role($0)) } ?? .exists
    }
  }

  public enum ChangeOutcome: Sendable, Equatable {
    case changed(RoleDefinition?)
    case notFound
    case builtin
    /// Users still hold the role (how many).
    case held(Int)
  }

  /// Replaces a defined role's description and/or permissions.
  public func update(name: String, description: String?, permissions: [String]?) async throws -> ChangeOutcome {
    try await self.database.withTransaction(logger: self.logger) { connection in
      guard let builtin = try await connection.query(
        "SELECT builtin FROM roles WHERE name = \(name) FOR UPDATE", logger: self.logger
      ).first?.decode(Bool.self) else { return .notFound }
      if builtin { return .builtin }
      let rows = try await connection.query(
        """
        WITH r AS (
          UPDATE roles SET description = coalesce(\(description), description),
            permissions = coalesce(\(permissions.map(Self.json))::jsonb, permissions), updated_at = now()
          WHERE name = \(name) RETURNING *)
        SELECT \(unescaped: Self.columns) FROM r
        """, logger: self.logger)
      return .changed(try rows.first.map(Self.role))
    }
  }

  /// Deletes a defined role no user holds. The role's row is locked first, so a concurrent
  /// UpdateUserRoles (which share-locks the roles it grants) either finishes before the count,
  /// and is counted, or waits and then finds the role gone.
  public func delete(name: String) async throws -> ChangeOutcome {
    try await self.database.withTransaction(logger: self.logger) { connection in
      guard let builtin = try await connection.query(
        "SELECT builtin FROM roles WHERE name = \(name) FOR UPDATE", logger: self.logger
      ).first?.decode(Bool.self) else { return .notFound }
      if builtin { return .builtin }
      let holders = try await connection.query(
        "SELECT count(*) FROM users WHERE \(name) = ANY(roles)", logger: self.logger
      ).first?.decode(Int.self) ?? 0
      if holders > 0 { return .held(holders) }
      _ = try await connection.query("DELETE FROM roles WHERE name = \(name)", logger: self.logger)
      return .changed(nil)
    }
  }
}
