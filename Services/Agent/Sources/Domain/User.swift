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
