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

/// `platform.agent.v1.UserService`: user administration over protobuf.
public struct UserAPI: Platform_Agent_V1_UserServiceHandler {
  private let admin: UserAdmin

  public init(admin: UserAdmin) {
    self.admin = admin
  }

  public static let requirements: [MethodDescriptor: Permission] = [
    // Anyone signed in may read their own account; UserAdmin checks the rest.
    Platform_Agent_V1_UserService.Method.getUser: .authenticated,
    Platform_Agent_V1_UserService.Method.listUsers: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.updateUserRoles: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.deactivateUser: UserAdmin.adminPermission,
    Platform_Agent_V1_UserService.Method.listAuditEvents: UserAdmin.adminPermission,
  ]

  public func getUser(_ request: Platform_Agent_V1_GetUserRequest, context: ServerContext) async throws -> Platform_Agent_V1_User {
    AuthAPI.message(try await self.admin.user(try Self.userID(request.id, field: "id"), caller: try context.requireCaller()))
  }

  public func listUsers(_ request: Platform_Agent_V1_ListUsersRequest, context: ServerContext) async throws -> Platform_Agent_V1_ListUsersResponse {
    let role: String?
    switch request.role {
    case .unspecified: role = nil
    case .admin: role = "admin"
    case .developer: role = "developer"
    case .analyst: role = "analyst"
    case .viewer: role = "viewer"
    case .UNRECOGNIZED(let value): throw IdentityError.invalidArgument(field: "role", reason: "unknown value \(value)")
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

  static func userID(_ text: String, field: String) throws -> UUID {
    guard let id = UUID(strict: text) else { throw IdentityError.invalidArgument(field: field, reason: "is not a UUID") }
    return id
  }
}
