public import Foundation
public import Logging
public import PlatformCore

/// User administration: reading users, changing their roles, deactivating them, reading the
/// audit log. Every change is audited; none may leave the platform without an active admin.
public struct UserAdmin: Sendable {
  let store: IdentityStore
  let revocation: SessionRevocation
  let audit: AuditLog
  let logger: Logger

  public static let adminPermission: Permission = "agent:admin"

  public init(store: IdentityStore, revocation: SessionRevocation, audit: AuditLog, logger: Logger) {
    self.store = store
    self.revocation = revocation
    self.audit = audit
    self.logger = logger
  }

  /// Any user may read their own account; other accounts need agent:admin.
  public func user(_ id: UUID, caller: Caller) async throws -> User {
    guard caller.userID == id || caller.has(Self.adminPermission) else {
      throw ApiKeyError.permissionDenied("GetUser of another user requires the permission agent:admin")
    }
    guard let user = try await self.store.user(id: id) else { throw IdentityError.notFound("User not found") }
    return user
  }

  public func list(
    query: String, role: String?, includeInactive: Bool, pageSize: Int32, pageToken: String
  ) async throws -> (users: [User], nextPageToken: String, total: Int) {
    guard let limit = PageToken.pageSize(pageSize, default: 50, maximum: 200) else {
      throw IdentityError.invalidArgument(field: "page_size", reason: "must be 0 to 200")
    }
    guard query.utf8.count <= 256 else { throw IdentityError.invalidArgument(field: "query", reason: "is longer than 256 bytes") }
    let filter = ListFilter(query: query, role: role ?? "", includeInactive: includeInactive)
    var cursor: (Date, UUID)?
    if !pageToken.isEmpty {
      guard let decoded = PageToken.decode(pageToken, as: UserCursor.self), decoded.filter == filter else {
        throw IdentityError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
      }
      cursor = (Date(timeIntervalSince1970: Double(decoded.createdMicros) / 1_000_000), decoded.id)
    }
    let page = try await self.store.listUsers(
      query: query.isEmpty ? nil : query, role: role, includeInactive: includeInactive, after: cursor, limit: limit)
    var next = ""
    if page.more, let last = page.users.last {
      next = PageToken.encode(
        UserCursor(createdMicros: Int64((last.createdAt.timeIntervalSince1970 * 1_000_000).rounded(.down)), id: last.id, filter: filter))
    }
    return (page.users, next, page.total)
  }

  struct ListFilter: Codable, Equatable {
    var query: String
    var role: String
    var includeInactive: Bool
  }

  struct UserCursor: Codable {
    var createdMicros: Int64
    var id: UUID
    var filter: ListFilter
  }

  public func updateRoles(
    caller: Caller, userID: UUID, roles: [String], permissions: [String], isActive: Bool?
  ) async throws -> User {
    let roles = Array(Set(roles)).sorted()
    guard !roles.isEmpty, roles.count <= 16 else {
      throw IdentityError.invalidArgument(field: "roles", reason: "must name 1 to 16 roles")
    }
    let permissions = try ApiKeys.checkPermissions(permissions)
    let outcome = try await self.store.apply(.roles(roles, permissions: permissions, isActive: isActive), to: userID)
    let user = try self.user(from: outcome)
    await self.audit.recordOrLog(
      AuditEvent(
        subject: caller.userID.lowercasedString, resource: "user:\(userID.lowercasedString)", action: "role_change", decision: .allow,
        detail: ["roles": user.roles.joined(separator: ","), "is_active": "\(user.isActive)"]))
    if case .updated(_, true) = outcome { await self.endSessions(of: userID, by: caller) }
    return user
  }

  public func deactivate(caller: Caller, userID: UUID) async throws -> User {
    let outcome = try await self.store.apply(.deactivate, to: userID)
    let user = try self.user(from: outcome)
    if case .updated(_, true) = outcome { await self.endSessions(of: userID, by: caller) }
    return user
  }

  public func auditEvents(
    subject: String, action: String, from start: Date?, until end: Date?, pageSize: Int32, pageToken: String
  ) async throws -> (events: [StoredAuditEvent], nextPageToken: String) {
    guard let limit = PageToken.pageSize(pageSize, default: 100, maximum: 500) else {
      throw IdentityError.invalidArgument(field: "page_size", reason: "must be 0 to 500")
    }
    if let start, let end, start >= end {
      throw IdentityError.invalidArgument(field: "end_time", reason: "is not after start_time")
    }
    let filter = AuditFilter(subject: subject, action: action, start: start?.timeIntervalSince1970, end: end?.timeIntervalSince1970)
    var beforeID: Int64?
    if !pageToken.isEmpty {
      guard let cursor = PageToken.decode(pageToken, as: AuditCursor.self), cursor.filter == filter else {
        throw IdentityError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
      }
      beforeID = cursor.id
    }
    let page = try await self.store.auditEvents(
      subject: subject.isEmpty ? nil : subject, action: action.isEmpty ? nil : action, from: start, until: end,
      beforeID: beforeID, limit: limit)
    let next = page.more ? page.events.last.map { PageToken.encode(AuditCursor(id: $0.id, filter: filter)) } ?? "" : ""
    return (page.events, next)
  }

  struct AuditFilter: Codable, Equatable {
    var subject: String
    var action: String
    var start: Double?
    var end: Double?
  }

  struct AuditCursor: Codable {
    var id: Int64
    var filter: AuditFilter
  }

  private func user(from outcome: IdentityStore.AdminOutcome) throws -> User {
    switch outcome {
    case .updated(let user, _): return user
    case .notFound: throw IdentityError.notFound("User not found")
    case .lastAdmin: throw AdminError.lastAdmin
    case .unknownRole(let name): throw IdentityError.invalidArgument(field: "role_names", reason: "\(name) is not a role")
    }
  }

  /// A deactivated user's session ends (their tokens stop in every service within seconds).
  private func endSessions(of userID: UUID, by caller: Caller) async {
    do {
      try await self.revocation.revoke(userID, sessionID: nil)
    } catch {
      self.logger.error("A deactivated user's session was not ended", metadata: ["user_id": "\(userID)", "error": "\(error)"])
    }
    await self.audit.recordOrLog(
      AuditEvent(subject: caller.userID.lowercasedString, resource: "user:\(userID.lowercasedString)", action: "deactivate", decision: .allow))
  }

}

public enum AdminError: Error, Equatable, Sendable {
  case lastAdmin
}
