internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

extension AdminError: RPCErrorConvertible {
  public var rpcError: RPCError {
    switch self {
    case .lastAdmin: RPCError(.failedPrecondition, "This would leave no active admin; make another user admin first")
    }
  }
}

extension RoleError: RPCErrorConvertible {
  public var rpcError: RPCError {
    switch self {
    case .builtin(let name): RPCError(.failedPrecondition, "\(name) is a built-in role; built-in roles cannot change")
    case .held(let name, let users):
      RPCError(.failedPrecondition, "\(users) user(s) hold the role \(name); take it from them first (UpdateUserRoles)")
    case .quota(let maximum): RPCError(.resourceExhausted, "At most \(maximum) roles may exist; delete one first")
    }
  }
}

/// `platform.agent.v1.UserService`: user administration over protobuf.
public struct UserAPI: Platform_Agent_V1_UserServiceHandler {
  private let admin: UserAdmin
  private let roles: RoleAdmin

  public init(admin: UserAdmin, roles: RoleAdmin) {
    self.admin = admin
    self.roles = roles
  }

  public static let requirements: [MethodDescriptor: Permission] = [
    // Anyone signed in may read their own account; UserAdmin checks the rest.
    Platform_Agent_V1_UserService.Method.getUser: .authenticated,
    Platform_Agent_V1_UserService.Method.listUsers: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.updateUserRoles: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.deactivateUser: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.listAuditEvents: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.listRoles: .authenticated,
    Platform_Agent_V1_UserService.Method.createRole: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.updateRole: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.deleteRole: UserAdmin.adminPermission,
  ]

  public func getUser(_ request: Platform_Agent_V1_GetUserRequest, context: ServerContext) async throws -> Platform_Agent_V1_User {
    AuthAPI.message(try await self.admin.user(try Self.userID(request.id, field: "id"), caller: try context.requireCaller()))
  }

  public func listUsers(_ request: Platform_Agent_V1_ListUsersRequest, context: ServerContext) async throws -> Platform_Agent_V1_ListUsersResponse {
    var role: String?
    switch request.role {
    case .unspecified: role = nil
    case .admin: role = "admin"
    case .developer: role = "developer"
    case .analyst: role = "analyst"
    case .viewer: role = "viewer"
    case .UNRECOGNIZED(let value): throw IdentityError.invalidArgument(field: "role", reason: "unknown value \(value)")
    }
    if !request.roleName.isEmpty {
      guard role == nil else { throw IdentityError.invalidArgument(field: "role_name", reason: "cannot be combined with role") }
      role = try RoleAdmin.checkName(request.roleName, field: "role_name")
    }
    let page = try await self.admin.list(
      query: request.query, role: role, includeInactive: request.includeInactive, pageSize: request.pageSize,
      pageToken: request.pageToken)
    return .with {
      $0.users = page.users.map(AuthAPI.message)
      $0.nextPageToken = page.nextPageToken
      $0.totalSize = Int32(clamping: page.total)
    }
  }

  public func updateUserRoles(_ request: Platform_Agent_V1_UpdateUserRolesRequest, context: ServerContext) async throws -> Platform_Agent_V1_User {
    var roles: [String] = []
    for role in request.roles {
      switch role {
      case .admin: roles.append("admin")
      case .developer: roles.append("developer")
      case .analyst: roles.append("analyst")
      case .viewer: roles.append("viewer")
      case .unspecified, .UNRECOGNIZED: throw IdentityError.invalidArgument(field: "roles", reason: "holds an unspecified or unknown role")
      }
    }
    guard request.roleNames.count <= 16 else { throw IdentityError.invalidArgument(field: "role_names", reason: "at most 16") }
    for name in request.roleNames { roles.append(try RoleAdmin.checkName(name, field: "role_names")) }
    return AuthAPI.message(
      try await self.admin.updateRoles(
        caller: try context.requireCaller(), userID: try Self.userID(request.userID, field: "user_id"), roles: roles,
        permissions: request.permissions, isActive: request.hasIsActive ? request.isActive : nil))
  }

  public func deactivateUser(_ request: Platform_Agent_V1_DeactivateUserRequest, context: ServerContext) async throws -> Platform_Agent_V1_User {
    AuthAPI.message(
      try await self.admin.deactivate(caller: try context.requireCaller(), userID: try Self.userID(request.userID, field: "user_id")))
  }

  public func listAuditEvents(
    _ request: Platform_Agent_V1_ListAuditEventsRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_ListAuditEventsResponse {
    guard request.subjectID.utf8.count <= 64, request.action.utf8.count <= 32 else {
      throw IdentityError.invalidArgument(field: "subject_id", reason: "subject_id is at most 64 bytes and action at most 32")
    }
    let page = try await self.admin.auditEvents(
      subject: request.subjectID, action: request.action, from: request.hasStartTime ? request.startTime.date : nil,
      until: request.hasEndTime ? request.endTime.date : nil, pageSize: request.pageSize, pageToken: request.pageToken)
    return .with {
      $0.events = page.events.map { event in
        .with {
          $0.id = event.id
          $0.traceID = event.traceID
          $0.subjectID = event.subject
          $0.resource = event.resource
          $0.action = event.action
          $0.decision = event.decision
          $0.detail = event.detail
          $0.createTime = Google_Protobuf_Timestamp(date: event.createdAt)
        }
      }
      $0.nextPageToken = page.nextPageToken
    }
  }

  public func listRoles(_ request: Platform_Agent_V1_ListRolesRequest, context: ServerContext) async throws -> Platform_Agent_V1_ListRolesResponse {
    let roles = try await self.roles.list()
    return .with { $0.roles = roles.map(Self.message) }
  }

  public func createRole(_ request: Platform_Agent_V1_CreateRoleRequest, context: ServerContext) async throws -> Platform_Agent_V1_RoleDefinition {
    Self.message(
      try await self.roles.create(
        caller: try context.requireCaller(), name: request.role.name, description: request.role.description_p,
        permissions: request.role.permissions))
  }

  public func updateRole(_ request: Platform_Agent_V1_UpdateRoleRequest, context: ServerContext) async throws -> Platform_Agent_V1_RoleDefinition {
    var description = true, permissions = true
    if request.hasUpdateMask, !request.updateMask.paths.isEmpty {
      description = false
      permissions = false
      for path in request.updateMask.paths {
        switch path {
        case "description": description = true
        case "permissions": permissions = true
        default: throw IdentityError.invalidArgument(field: "update_mask", reason: "\(path.prefix(64).debugDescription) cannot be updated")
        }
      }
    }
    return Self.message(
      try await self.roles.update(
        caller: try context.requireCaller(), name: request.role.name, description: description ? request.role.description_p : nil,
        permissions: permissions ? request.role.permissions : nil))
  }

  public func deleteRole(_ request: Platform_Agent_V1_DeleteRoleRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
    try await self.roles.delete(caller: try context.requireCaller(), name: request.name)
    return Google_Protobuf_Empty()
  }

  static func message(_ role: RoleDefinition) -> Platform_Agent_V1_RoleDefinition {
    .with {
      $0.name = role.name
      $0.description_p = role.description
      $0.permissions = role.permissions
      $0.builtin = role.builtin
      $0.userCount = Int32(clamping: role.userCount)
      $0.createTime = Google_Protobuf_Timestamp(date: role.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: role.updatedAt)
    }
  }

  static func userID(_ text: String, field: String) throws -> UUID {
    guard let id = UUID(strict: text) else { throw IdentityError.invalidArgument(field: field, reason: "is not a UUID") }
    return id
  }
}
