public import Foundation

/// A platform user (agent_db.users).
public struct User: Sendable, Equatable {
  public var id: UUID
  public var email: String
  public var name: String
  /// Role names: the built-in admin, developer, analyst, viewer, or roles an admin defined.
  public var roles: [String]
  /// Extra permissions beyond the roles'.
  public var permissions: [String]
  public var isActive: Bool
  public var emailVerified: Bool
  public var lastLoginAt: Date?
  public var createdAt: Date
  public var updatedAt: Date
  public var deletedAt: Date?

  /// Whether the user may sign in.
  public var canSignIn: Bool { self.isActive && self.deletedAt == nil }
}

/// What Login and RefreshToken hand out.
public struct IssuedTokens: Sendable {
  public var accessToken: String
  public var accessExpiresAt: Date
  public var accessLifetime: Duration
  public var refreshToken: String
  public var refreshExpiresAt: Date
}

/// An API key (agent_db.api_keys), without its secret.
public struct ApiKey: Sendable, Equatable {
  public enum Status: String, Sendable {
    case active, inactive, revoked
  }

  public var id: UUID
  public var userID: UUID
  public var name: String
  public var keyPrefix: String
  /// Empty: all of the owner's permissions.
  public var permissions: [String]
  /// Calls per minute.
  public var rateLimit: Int
  public var status: Status
  public var expiresAt: Date?
  public var lastUsedAt: Date?
  public var createdAt: Date
}

/// What a valid API key stands for right now.
public struct VerifiedApiKey: Sendable, Equatable {
  public var keyID: UUID
  public var userID: UUID
  /// The owner's built-in roles when the key grants all the owner's permissions; else none.
  public var roles: [String]
  public var permissions: [String]
  public var rateLimit: Int
  public var expiresAt: Date?
}

/// A row of auth_audit_log, as admins read it.
public struct StoredAuditEvent: Sendable, Equatable {
  public var id: Int64
  public var traceID: String
  public var subject: String
  public var resource: String
  public var action: String
  public var decision: String
  public var detail: [String: String]
  public var createdAt: Date
}
