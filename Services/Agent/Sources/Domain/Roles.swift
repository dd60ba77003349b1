internal import Foundation
public import PlatformCore

/// The roles admins define (seed 004): a name and the permissions it grants. The four built-in
/// roles are fixed; a defined role's permissions travel in its holders' access tokens, so every
/// service honours a role it has never heard of.
public struct RoleAdmin: Sendable {
  let store: RoleStore
  let audit: AuditLog

  /// Roles in all, built-in ones included: ListRoles answers every role in one reply.
  public static let maxRoles = 200

  public init(store: RoleStore, audit: AuditLog) {
    self.store = store
    self.audit = audit
  }

  public func list() async throws -> [RoleDefinition] {
    try await self.store.list()
  }

  public func create(caller: Caller, name: String, description: String, permissions: [String]) async throws -> RoleDefinition {
    let name = try Self.checkName(name, field: "role.name")
    let description = try Self.checkDescription(description)
    let permissions = try Self.checkPermissions(permissions)
    switch try await self.store.insert(name: name, description: description, permissions: permissions, maxRoles: Self.maxRoles) {
    case .created(let role):
      await self.record(caller, "role_create", role)
      return role
    case .exists: throw IdentityError.alreadyExists("A role named \(name) exists")
    case .quota: throw RoleError.quota(Self.maxRoles)
    }
  }

  /// Changes the description and/or the permissions (nil keeps each).
  public func update(caller: Caller, name: String, description: String?, permissions: [String]?) async throws -> RoleDefinition {
    let name = try Self.checkName(name, field: "role.name")
    let description = try description.map(Self.checkDescription)
    let permissions = try permissions.map(Self.checkPermissions)
    switch try await self.store.update(name: name, description: description, permissions: permissions) {
    case .changed(let role?):
      await self.record(caller, "role_update", role)
      return role
    case .changed(nil), .notFound: throw IdentityError.notFound("No role named \(name)")
    case .builtin: throw RoleError.builtin(name)
    case .held(let count): throw RoleError.held(name, users: count)
    }
  }

  public func delete(caller: Caller, name: String) async throws {
    let name = try Self.checkName(name, field: "name")
    switch try await self.store.delete(name: name) {
    case .changed:
      await self.audit.recordOrLog(
        AuditEvent(subject: caller.userID.lowercasedString, resource: "role:\(name)", action: "role_delete", decision: .allow))
    case .notFound: throw IdentityError.notFound("No role named \(name)")
    case .builtin: throw RoleError.builtin(name)
    case .held(let count): throw RoleError.held(name, users: count)
    }
  }

  private func record(_ caller: Caller, _ action: String, _ role: RoleDefinition) async {
    await self.audit.recordOrLog(
      AuditEvent(
        subject: caller.userID.lowercasedString, resource: "role:\(role.name)", action: action, decision: .allow,
        detail: ["permissions": role.permissions.joined(separator: ",")]))
  }

  /// A role name: a lowercase ASCII letter, then up to 49 lowercase letters, digits, `_` or `-`.
  public static func checkName(_ name: String, field: String) throws(IdentityError) -> String {
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_-".utf8)
    guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first), name.utf8.count <= 50,
      name.utf8.allSatisfy(allowed.contains)
    else {
      throw .invalidArgument(
        field: field, reason: "\(name.prefix(50).debugDescription) is not a role name (a-z, then a-z 0-9 _ -, at most 50)")
    }
    return name
  }

  static func checkDescription(_ description: String) throws(IdentityError) -> String {
    guard description.count <= 1000, description.utf8.count <= 4000,
      !description.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" })
    else { throw .invalidArgument(field: "role.description", reason: "must be at most 1,000 characters without control characters") }
    return description
  }

  static func checkPermissions(_ permissions: [String]) throws(IdentityError) -> [String] {
    let checked = try ApiKeys.checkPermissions(permissions, field: "role.permissions")
    guard !checked.isEmpty else { throw .invalidArgument(field: "role.permissions", reason: "a role grants at least one permission") }
    return checked
  }
}

public enum RoleError: Error, Equatable, Sendable {
  case builtin(String)
  case held(String, users: Int)
  case quota(Int)
}
