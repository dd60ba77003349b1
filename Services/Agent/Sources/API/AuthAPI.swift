internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
internal import SwiftProtobuf

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

extension IdentityError: SelfAuditedError {
  /// Failed and rate-limited logins and refused refresh tokens are audited where they are
  /// decided, with more to say.
  public var isAudited: Bool {
    switch self {
    case .invalidCredentials, .invalidRefreshToken, .rateLimited: true
    default: false
    }
  }
}

extension ApiKeyError: RPCErrorConvertible {
  public var rpcError: RPCError {
    switch self {
    case .invalid: RPCError(.unauthenticated, "The API key is invalid, revoked or expired")
    case .permissionDenied(let why): RPCError(.permissionDenied, why)
    case .quota(let limit): RPCError(.resourceExhausted, "At most \(limit) active API keys per user; revoke one first")
    case .secretShownOnce(let id):
      RPCError(.failedPrecondition, "request_id: key \(id.lowercasedString) was created by this request; its secret was shown once and is not shown again")
    }
  }
}

/// `platform.agent.v1.AuthService`: accounts, tokens and API keys over protobuf.
public struct AuthAPI: Platform_Agent_V1_AuthServiceHandler {
  private let accounts: Accounts
  private let apiKeys: ApiKeys

  public init(accounts: Accounts, apiKeys: ApiKeys) {
    self.accounts = accounts
    self.apiKeys = apiKeys
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
      Platform_Agent_V1_AuthService.Method.refreshToken, Platform_Agent_V1_AuthService.Method.verifyApiKey,
    ])

  public func register(_ request: Platform_Agent_V1_RegisterRequest, context: ServerContext) async throws -> Platform_Agent_V1_User {
    let requestID = try Self.optionalUUID(request.requestID, field: "request_id")
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
    let caller = try context.requireCaller()
    let requestID = try Self.optionalUUID(request.requestID, field: "request_id")
    let (key, secret) = try await self.apiKeys.create(
      caller: caller, name: request.name, permissions: request.permissions,
      expiresAt: request.hasExpireTime ? request.expireTime.date : nil, rateLimit: Int(request.rateLimitPerMinute),
      requestID: requestID)
    return .with {
      $0.apiKey = Self.message(key)
      $0.secret = secret
    }
  }

  public func listApiKeys(_ request: Platform_Agent_V1_ListApiKeysRequest, context: ServerContext) async throws -> Platform_Agent_V1_ListApiKeysResponse {
    let page = try await self.apiKeys.list(
      caller: try context.requireCaller(), includeRevoked: request.includeRevoked, pageSize: request.pageSize,
      pageToken: request.pageToken)
    return .with {
      $0.apiKeys = page.keys.map(Self.message)
      $0.nextPageToken = page.nextPageToken
      $0.totalSize = Int32(clamping: page.total)
    }
  }

  public func revokeApiKey(_ request: Platform_Agent_V1_RevokeApiKeyRequest, context: ServerContext) async throws -> Platform_Agent_V1_ApiKey {
    guard let id = UUID(strict: request.id) else { throw IdentityError.invalidArgument(field: "id", reason: "is not a UUID") }
    return Self.message(try await self.apiKeys.revoke(caller: try context.requireCaller(), id: id))
  }

  public func verifyApiKey(
    _ request: Platform_Agent_V1_VerifyApiKeyRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_VerifyApiKeyResponse {
    let verified = try await self.apiKeys.verify(request.key)
    return .with {
      $0.keyID = verified.keyID.lowercasedString
      $0.userID = verified.userID.lowercasedString
      $0.roles = verified.roles
      $0.permissions = verified.permissions
      $0.rateLimitPerMinute = Int32(clamping: verified.rateLimit)
      if let expiresAt = verified.expiresAt { $0.expireTime = Google_Protobuf_Timestamp(date: expiresAt) }
    }
  }

  static func optionalUUID(_ text: String, field: String) throws -> UUID? {
    guard !text.isEmpty else { return nil }
    guard let id = UUID(strict: text) else { throw IdentityError.invalidArgument(field: field, reason: "is not a UUID") }
    return id
  }

  // MARK: - Conversions

  static func message(_ user: User) -> Platform_Agent_V1_User {
    .with {
      $0.id = user.id.lowercasedString
      $0.email = user.email
      $0.name = user.name
      $0.roles = user.roles.compactMap(Self.role)
      var seen = Set<String>()
      $0.roleNames = user.roles.map { Role(storedName: $0)?.rawValue ?? $0 }.filter { seen.insert($0).inserted }
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

  static func message(_ key: ApiKey) -> Platform_Agent_V1_ApiKey {
    .with {
      $0.id = key.id.lowercasedString
      $0.userID = key.userID.lowercasedString
      $0.name = key.name
      $0.keyPrefix = key.keyPrefix
      $0.permissions = key.permissions
      $0.status =
        switch key.status {
        case .active: .active
        case .inactive: .inactive
        case .revoked: .revoked
        }
      if let expiresAt = key.expiresAt { $0.expireTime = Google_Protobuf_Timestamp(date: expiresAt) }
      if let lastUsed = key.lastUsedAt { $0.lastUsedTime = Google_Protobuf_Timestamp(date: lastUsed) }
      $0.createTime = Google_Protobuf_Timestamp(date: key.createdAt)
      $0.rateLimitPerMinute = Int32(clamping: key.rateLimit)
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
