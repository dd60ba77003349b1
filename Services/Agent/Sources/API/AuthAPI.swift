internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

extension IdentityError: RPCErrorConvertible {
  public var rpcError: RPCError {
    switch self {
    case .invalidArgument(let field, let reason): RPCError(.invalidArgument, "\(field): \(reason)")
    case .invalidCredentials: RPCError(.unauthenticated, "Invalid email or password")
    case .invalidRefreshToken: RPCError(.unauthenticated, "The refresh token is invalid, expired or already used")
    case .alreadyExists(let what): RPCError(.alreadyExists, what)
    case .registrationClosed: RPCError(.permissionDenied, "Registration is closed; ask an administrator for an account")
    case .rateLimited(let retryAfter):
      RPCError(
        .resourceExhausted, "Too many sign-in attempts; retry in \(max(1, retryAfter.components.seconds)) s",
        metadata: ["grpc-retry-pushback-ms": "\(max(retryAfter.wholeMilliseconds, 1))"])
    case .busy: RPCError(.resourceExhausted, "Too many sign-ins at once; retry shortly")
    case .notFound(let what): RPCError(.notFound, what)
    }
  }
}

/// `platform.agent.v1.AuthService`: accounts and tokens over protobuf.
public struct AuthAPI: Platform_Agent_V1_AuthServiceHandler {
  private let accounts: Accounts

  public init(accounts: Accounts) {
    self.accounts = accounts
  }

  /// Register, Login and RefreshToken need no credentials; the others need a signed-in caller.
  public static let accessPolicy = AccessPolicy(
    [
      Platform_Agent_V1_AuthService.Method.getCurrentUser: .authenticated,
      Platform_Agent_V1_AuthService.Method.logout: .authenticated,
      Platform_Agent_V1_AuthService.Method.createApiKey: .authenticated,
      Platform_Agent_V1_AuthService.Method.listApiKeys: .authenticated,
      Platform_Agent_V1_AuthService.Method.revokeApiKey: .authenticated,
    ],
    openMethods: [
      Platform_Agent_V1_AuthService.Method.register, Platform_Agent_V1_AuthService.Method.login,
      Platform_Agent_V1_AuthService.Method.refreshToken,
    ])

  public func register(_ request: Platform_Agent_V1_RegisterRequest, context: ServerContext) async throws -> Platform_Agent_V1_User {
    var requestID: UUID?
    if !request.requestID.isEmpty {
      guard let id = UUID(strict: request.requestID) else {
        throw IdentityError.invalidArgument(field: "request_id", reason: "is not a UUID")
      }
      requestID = id
    }
    return Self.message(
      try await self.accounts.register(email: request.email, password: request.password, name: request.name, requestID: requestID))
  }

  public func login(_ request: Platform_Agent_V1_LoginRequest, context: ServerContext) async throws -> Platform_Agent_V1_LoginResponse {
    let (tokens, user) = try await self.accounts.login(email: request.email, password: request.password, peer: context.peer)
    return .with {
      $0.tokens = Self.message(tokens)
      $0.user = Self.message(user)
    }
  }

  public func refreshToken(
    _ request: Platform_Agent_V1_RefreshTokenRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_RefreshTokenResponse {
    let tokens = try await self.accounts.refresh(token: request.refreshToken)
    return .with { $0.tokens = Self.message(tokens) }
  }

  public func getCurrentUser(_ request: Platform_Agent_V1_GetCurrentUserRequest, context: ServerContext) async throws -> Platform_Agent_V1_User {
    Self.message(try await self.accounts.currentUser(try context.requireCaller()))
  }

  public func logout(_ request: Platform_Agent_V1_LogoutRequest, context: ServerContext) async throws -> Platform_Agent_V1_LogoutResponse {
    try await self.accounts.logout(caller: try context.requireCaller())
    return Platform_Agent_V1_LogoutResponse()
  }

  public func createApiKey(
    _ request: Platform_Agent_V1_CreateApiKeyRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_CreateApiKeyResponse {
    throw RPCError(.unimplemented, "API keys are not available yet")
  }

  public func listApiKeys(_ request: Platform_Agent_V1_ListApiKeysRequest, context: ServerContext) async throws -> Platform_Agent_V1_ListApiKeysResponse {
    throw RPCError(.unimplemented, "API keys are not available yet")
  }

  public func revokeApiKey(_ request: Platform_Agent_V1_RevokeApiKeyRequest, context: ServerContext) async throws -> Platform_Agent_V1_ApiKey {
    throw RPCError(.unimplemented, "API keys are not available yet")
  }

  // MARK: - Conversions

  static func message(_ user: User) -> Platform_Agent_V1_User {
    .with {
      $0.id = user.id.lowercasedString
      $0.email = user.email
      $0.name = user.name
      $0.roles = user.roles.compactMap(Self.role)
      $0.permissions = user.permissions
      $0.isActive = user.isActive
      $0.emailVerified = user.emailVerified
      if let last = user.lastLoginAt { $0.lastLoginTime = Google_Protobuf_Timestamp(date: last) }
      $0.createTime = Google_Protobuf_Timestamp(date: user.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: user.updatedAt)
      if let deleted = user.deletedAt { $0.deleteTime = Google_Protobuf_Timestamp(date: deleted) }
    }
  }

  static func role(_ name: String) -> Platform_Agent_V1_Role? {
    switch Role(storedName: name) {
    case .admin: .admin
    case .developer: .developer
    case .analyst: .analyst
    case .viewer: .viewer
    case nil: nil
    }
  }

  static func message(_ tokens: IssuedTokens) -> Platform_Agent_V1_AuthTokens {
    .with {
      $0.accessToken = tokens.accessToken
      $0.tokenType = "Bearer"
      $0.expireTime = Google_Protobuf_Timestamp(date: tokens.accessExpiresAt)
      $0.expiresInSeconds = Int32(clamping: tokens.accessLifetime.components.seconds)
      $0.refreshToken = tokens.refreshToken
      $0.refreshExpireTime = Google_Protobuf_Timestamp(date: tokens.refreshExpiresAt)
    }
  }
}
